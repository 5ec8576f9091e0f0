"""A representative view of every check-in state, for the screen tests (synthetic values only)."""

from __future__ import annotations

import numpy as np

from ui.messages import CONSENT_ITEMS
from ui.screens import ScreenView

SHUFFLED = (7, 3, 0, 9, 1, 5, 2, 8, 6, 4)


def synthetic_preview(width: int = 160, height: int = 120) -> np.ndarray:
    """Not a face: left half red, right half blue, so mirroring and placement can be seen."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = (220, 40, 40)
    frame[:, width // 2:] = (40, 40, 220)
    return frame


def consent_items(on: tuple[str, ...] = ("PharmacistsInfo", "OperationInfo")) -> tuple[tuple[str, str, bool], ...]:
    return tuple((key, label, key in on) for key, label in CONSENT_ITEMS.items())


def representative(state: str, language: str = "ja", **changes) -> ScreenView:
    values: dict = {
        "idle": dict(problems=("speaker: missing, simulated",)),
        "phone_help": dict(t_s=0.3),
        "reading": dict(t_s=0.5),
        "phone_pin": dict(card_kind="android", pin_length=2, pin_tries_left=3),
        "phone_hold": dict(card_kind="android", t_s=1.5),
        "cert_notice": dict(notice="cert_expiring", days_left=42, cert_status="expiring"),
        "unusable": dict(card_kind="card", cert_status="unusable"),
        "choose_method": dict(methods=("face", "pin", "visual"), notice="face_no_match", face_tries_left=2,
                              pin_tries_left=3),
        "face": dict(face_step="capture", face_prompt="turn_left", preview=synthetic_preview(),
                     face_box=(40.0, 20.0, 60.0, 80.0), face_tries_left=3),
        "pin": dict(pin_length=3, pin_tries_left=1, notice="pin_wrong", pin_keys=SHUFFLED),
        "pin_checking": dict(t_s=0.2),
        "visual": dict(t_s=0.2),
        "checking": dict(t_s=0.2),
        "register": dict(days_left=200),
        "consent": dict(previous_consent_available=True),
        "consent_items": dict(consent_items=consent_items()),
        "prescription": dict(),
        "done": dict(answer="valid"),
        "removed": dict(),
        "more_time": dict(more_time_for="pin"),
        "failed": dict(error_kind="CollationBlocked"),
        "out_of_service": dict(problems=("nfc: reader gone", "clock: not synchronised")),
        "registering": dict(t_s=0.4),
    }[state]
    return ScreenView(state=state, language=language, token=("visit", 3), **(values | changes))


#: extra views worth every size check: the other branches of a screen
VARIANTS: dict[str, ScreenView] = {
    "cert_notice-grace": ScreenView(state="cert_notice", cert_status="grace", notice="cert_grace"),
    "unusable-phone": ScreenView(state="unusable", card_kind="iphone"),
    "choose_method-face-only": ScreenView(state="choose_method", methods=("face", "visual"), proxy=True,
                                          notice="collation_ledger_unavailable"),
    "choose_method-locked": ScreenView(state="choose_method", methods=("face", "visual"), notice="pin_locked"),
    "face-card_face": ScreenView(state="face", face_step="card_face"),
    "face-chip": ScreenView(state="face", face_step="chip"),
    "face-deciding": ScreenView(state="face", face_step="deciding"),
    "face-no-preview": ScreenView(state="face", face_step="capture", face_prompt="move_closer"),
    "register-refused": ScreenView(state="register", notice="registration_refused", days_left=3),
    "consent-first-visit": ScreenView(state="consent"),
    "done-offline": ScreenView(state="done", terminal_online=False),
    "done-no_record": ScreenView(state="done", answer="no_record"),
    "phone_help-late": ScreenView(state="phone_help", t_s=1.5),
    "pin-empty-last-try": ScreenView(state="pin", pin_tries_left=1),
    "pin-unshuffled": ScreenView(state="pin", pin_keys=tuple(range(10)), pin_length=4),
    "phone_pin-asked": ScreenView(state="phone_pin", card_kind="android", notice="phone_pin"),
    "choose_method-dropped-face": ScreenView(state="choose_method", methods=("pin", "visual"),
                                             notice="CollationRefused"),
    "cert_notice-flow-keys": ScreenView(state="cert_notice", notice="renewal_alert", days_left=12),
    "register-refused-flow-key": ScreenView(state="register", notice="registration_refused_expiry"),
    "unusable-phone-left": ScreenView(state="unusable", notice="phone_expired"),
}
