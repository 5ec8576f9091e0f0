"""The terminal's checks of a result's user-authentication certificate: its chain and its status.

- **Chain**: the certificate must be issued directly by one of the terminal's trust anchors
  (:mod:`terminal.trust`): an anchor whose name is the certificate's issuer and whose key verifies
  its signature (``cryptography``'s ``verify_directly_issued_by``), and which was valid when the
  certificate was issued (its notBefore). JPKI user certificates are issued by the root itself
  (EF 000B), so there is no intermediate to walk. The J-LIS roots of 2015 and 2023 share one name:
  each is tried. An anchor's own expiry today does not matter (RFC 5280 treats an anchor as a name
  and a key); a certificate's does, below.
- **Status**: the terminal recomputes ``cert_status`` from the certificate's dates with the kiosk's
  rules (:func:`firmware.card.certificate.status_at`, Japan time, the same configurable grace
  boundary ``months`` / ``month_end``; a smartphone certificate gets no grace), at the time of the
  check-in, and flags a claim it cannot reproduce. The check-in time is the result's ``ts`` (the
  kiosk's clock when the result was made), never after the result's arrival and, for a proof over a
  challenge of ours, never before that challenge was issued; the kiosk judged the status at the tap,
  up to :data:`VISIT_SLACK` before, so a claim is accepted if the certificate had that status at
  some instant of ``[check-in - VISIT_SLACK, check-in]``. A result kept in the outbox for days is
  judged at its check-in, not at its arrival.
- **Revocation is not checked**: a revoked certificate (a lost card, a death) is listed only in
  J-LIS's CRL/OCSP service, which the real terminal asks online; this reference terminal has no such
  service. ``revoked`` (a callable: certificate → reason or None) is the hook where one would go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from firmware.card.certificate import AuthCertificate, CertStatus, alert_from, grace_end, status_at
from firmware.link.schemas import Method, ResultMessage
from hal.clock import JST

#: How long before its result a visit may have judged the certificate (tap → done, every timeout).
VISIT_SLACK = dt.timedelta(minutes=30)
PHONE_KINDS = ("android", "iphone")
_ONE_TICK = dt.timedelta(microseconds=1)

#: Looks a certificate up in a revocation service: None if not revoked, else why (one line).
RevocationCheck = Callable[[x509.Certificate], "str | None"]


def chain_problem(certificate: x509.Certificate, anchors: Sequence[x509.Certificate]) -> str | None:
    """None if an anchor issued ``certificate`` directly (see the module docstring), else why not."""
    named = [anchor for anchor in anchors if anchor.subject == certificate.issuer]
    if not named:
        return "chain: the certificate's issuer is none of the terminal's trust anchors"
    for anchor in named:
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        if anchor.not_valid_before_utc <= certificate.not_valid_before_utc <= anchor.not_valid_after_utc:
            return None
        return "chain: the certificate was issued outside its trust anchor's validity"
    return ("chain: the certificate names a trust anchor as its issuer but is not signed by it "
            "(a look-alike CA)")


def checkin_time(result: ResultMessage, now: dt.datetime, challenge_issued: dt.datetime | None) -> dt.datetime:
    """When the check-in was (see the module docstring): the result's ``ts``, bounded by what we know.

    A ``ts`` without a time zone (our kiosk never writes one) says no instant: the arrival stands in.
    """
    at = min(result.ts, now) if result.ts.tzinfo is not None else now
    if challenge_issued is not None:
        at = max(at, challenge_issued)
    return at


def statuses_between(certificate: AuthCertificate, start: dt.datetime, end: dt.datetime, grace_allowed: bool,
                     grace_rule: str) -> set[CertStatus]:
    """Every status the certificate has at some instant of ``[start, end]``.

    The status changes only at notBefore, the alert date, just after notAfter and just after the
    grace end, so it is enough to look at both ends and at each of those inside.
    """
    before, after = certificate.not_before, certificate.not_after
    changes = (before, alert_from(after), after + _ONE_TICK, grace_end(after, grace_rule) + _ONE_TICK)
    instants = [start, end, *(t for t in changes if start <= t <= end)]
    return {status_at(before, after, t, grace_allowed, grace_rule) for t in instants}


def _jst_day(moment: dt.datetime) -> str:
    return moment.astimezone(JST).date().isoformat()


def _why_unusable(certificate: AuthCertificate, at: dt.datetime, grace_allowed: bool, grace_rule: str) -> str:
    if at < certificate.not_before:
        return f"the certificate is not valid before {_jst_day(certificate.not_before)} (Japan time)"
    expired = f"the certificate expired on {_jst_day(certificate.not_after)} (Japan time)"
    if not grace_allowed:
        return f"{expired}; a smartphone certificate has no grace period"
    return f"{expired} and its grace period ended on {_jst_day(grace_end(certificate.not_after, grace_rule))}"


def kind_problem(result: ResultMessage) -> str | None:
    """A method that the token kind cannot have (a phone has no 券面AP, a card is no smartphone)."""
    phone = result.card_kind in PHONE_KINDS
    if result.method == Method.SMARTPHONE and not phone:
        return f"a smartphone result names a {result.card_kind} token"
    if result.method in (Method.FACE, Method.PIN) and phone:
        return f"a {result.method} result names a phone ({result.card_kind}), which has no card to show"
    if result.method == Method.PIN and result.card_kind == "face-only":
        return "a PIN result names a face-only card, which has no PIN"
    return None


def _check_status(result: ResultMessage, certificate: AuthCertificate, grace_rule: str, at: dt.datetime,
                  problems: list[str]) -> bool:
    """The claimed status against the dates at the check-in, and what the status allows."""
    grace_allowed = result.card_kind not in PHONE_KINDS and result.method != Method.SMARTPHONE
    claimed = result.cert_status
    possible = statuses_between(certificate, at - VISIT_SLACK, at, grace_allowed, grace_rule)
    status = claimed
    ok = True
    if claimed not in possible:
        status = status_at(certificate.not_before, certificate.not_after, at, grace_allowed, grace_rule)
        problems.append(f"the result claims the certificate is {claimed.value}, but on {_jst_day(at)} "
                        f"(Japan time, grace rule {grace_rule}) it was {status.value}")
        ok = False
    if status == CertStatus.UNUSABLE:
        problems.append(_why_unusable(certificate, at, grace_allowed, grace_rule))
        ok = False
    elif status == CertStatus.GRACE and (not result.eligibility_only or result.consent):
        problems.append("a certificate in its grace period allows eligibility only, but the result "
                        + ("carries consent" if result.consent else "is not marked eligibility-only"))
        ok = False
    return ok


def check_certificate(result: ResultMessage, certificate: AuthCertificate, *, anchors: Sequence[x509.Certificate],
                      grace_rule: str, at: dt.datetime, problems: list[str],
                      revoked: RevocationCheck | None = None) -> bool:
    """Chain, status at the check-in ``at`` and what the status allows; appends why not to ``problems``."""
    ok = True
    wrong_kind = kind_problem(result)
    if wrong_kind:
        problems.append(wrong_kind)
        ok = False
    if anchors:
        why = chain_problem(certificate.x509, anchors)
        if why:
            problems.append(why)
            ok = False
    else:
        problems.append("chain unverified: the terminal has no trust anchors")

    try:
        ok &= _check_status(result, certificate, grace_rule, at, problems)
    except (OverflowError, ValueError):  # dates at the calendar's ends (9999-12-31 means "no expiry")
        problems.append("the certificate's validity dates cannot be judged (outside the calendar)")
        ok = False

    if revoked is not None:
        reason = revoked(certificate.x509)
        if reason:
            problems.append(f"revoked: {reason}")
            ok = False
    return ok
