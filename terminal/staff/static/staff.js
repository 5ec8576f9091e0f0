// Keeps the live part of the staff page current: fetch /live every 2 s and swap it in when it changed.
// Not while a control in it has the focus (a half-chosen language would be reset). A 401 means the
// session ended (logout elsewhere, expiry, terminal restart): go to the login page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var last = live.innerHTML;
  function busy() {
    var focused = document.activeElement;
    return focused && focused !== document.body && live.contains(focused) && focused.tagName === "SELECT";
  }
  function refresh() {
    fetch("/live", { credentials: "same-origin", cache: "no-store" }).then(function (response) {
      if (response.status === 401) { window.location.assign("/login"); return null; }
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html !== null && html !== last && !busy()) {
        live.innerHTML = html;
        last = html;
      }
    }).catch(function () { /* the terminal is restarting: the next tick tries again */ });
  }
  window.setInterval(refresh, 2000);
}());
