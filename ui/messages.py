"""Every message id a screen shows, per flow state, button, notice and guidance key.

Screens render a state; these tables say which text. Message ids are the English text (translated in
``ui/locale/<lang>/LC_MESSAGES/uketsuke.po``). Error classes map to text here (exception messages are
for technicians, never for the screen). Texts with ``{days}`` or ``{tries}`` are formatted after
translation.
"""

# flow state → (title, hint); hint may be ""
STATE_TEXT: dict[str, tuple[str, str]] = {
    "idle": ("Please place your card on the reader", "My Number card or smartphone"),
    "phone_help": ("How to use a smartphone",
                   "Hold the back of your smartphone flat over the reader and keep it still"),
    "reading": ("Reading your card", "Please do not move the card"),
    "phone_pin": ("Enter your smartphone PIN", "The 4-digit PIN of the certificate on your smartphone"),
    "phone_hold": ("Please hold your smartphone over the reader again",
                   "Keep it still until the next screen appears"),
    "cert_notice": ("About your certificate", ""),
    "unusable": ("This card cannot be used",
                 "The certificate on this card has expired. Please show your eligibility certificate "
                 "(shikaku kakuninsho), or ask the reception staff."),
    "choose_method": ("How would you like to confirm your identity?", "Please choose one"),
    "face": ("Face recognition", ""),
    "pin": ("Enter your PIN", "The 4-digit PIN of your My Number card"),
    "pin_checking": ("Checking your PIN", "Please do not move the card"),
    "visual": ("The staff will check your identity", "Please wait a moment"),
    "checking": ("Checking", "Please wait a moment"),
    "register": ("Register this card for use as a health insurance card?", "This is needed only once"),
    "consent": ("Sharing your medical information",
                "Do you agree that the doctors and pharmacists here may see your medical information "
                "(medication, health check-ups, treatment and more)?"),
    "consent_items": ("Choose what to share", "Tap an item to switch between agree and do not agree"),
    "prescription": ("How would you like your prescription?",
                     "An electronic prescription can be used at pharmacies that support it"),
    "done": ("Check-in complete", "Please take your card"),
    "removed": ("The card was removed", "The check-in was stopped. Please start again."),
    "more_time": ("Do you need more time?", ""),
    "failed": ("Could not complete check-in", "Please ask the reception staff"),
    "out_of_service": ("This reader is out of service", "Please ask the reception staff"),
    # not in the contract's table, but a state of the flow: the terminal registers the card
    "registering": ("Registering your card", "Please wait a moment"),
}

#: The same states for a smartphone (card_kind android/iphone) where the card wording would be wrong.
PHONE_STATE_TEXT: dict[str, tuple[str, str]] = {
    "reading": ("Reading your smartphone", "Please keep holding your smartphone over the reader"),
    "pin_checking": ("Checking your PIN", "Please keep holding your smartphone over the reader"),
    "unusable": ("This smartphone cannot be used",
                 "The certificate on your smartphone has expired. Please use your My Number card, "
                 "or ask the reception staff."),
    "done": ("Check-in complete", "You may put your smartphone away"),
}

#: face step → (title, hint)
FACE_STEP_TEXT: dict[str, tuple[str, str]] = {
    "card_face": ("Reading the card face", "Please leave the card on the reader"),
    "chip": ("Reading the photo on the card", "Please leave the card on the reader"),
    "capture": ("Please look at the camera", ""),
    "deciding": ("Checking your face", "Please wait a moment"),
}
FACE_STEPS = ("card_face", "chip", "capture", "deciding")
#: short labels of the face steps for the progress line
FACE_STEP_LABELS: dict[str, str] = {
    "card_face": "Card face",
    "chip": "Card photo",
    "capture": "Camera",
    "deciding": "Check",
}

#: guidance key during face capture (firmware.face.liveness.LivenessGuidance values and more) → text
FACE_PROMPT_TEXT: dict[str, str] = {
    "look_at_camera": "Please look at the camera",
    "face_forward": "Please face the camera straight on",
    "move_closer": "Please come a little closer",
    "move_back": "Please move back a little",
    "one_person": "Only one person at a time, please",
    "hold_still": "Please hold still",
    "blink": "Please blink",
    "turn_left": "Please slowly turn your face to the left",
    "turn_right": "Please slowly turn your face to the right",
    "no_face": "Please turn your face to the camera",
    "remove_mask": "Please take off your mask",
    "done": "Thank you",
    "timed_out": "Please try once more",
}

# error class name → explanation shown on the failed screen
ERROR_TEXT: dict[str, str] = {
    "CardRemoved": "The card was removed too early. Please place it again.",
    "NotMyNumberCard": "This card is not a My Number card.",
    "ReadError": "The card could not be read. Please place it again.",
    "LinkTimeout": "The card could not be read. Please place it again.",
    "Timeout": "The time limit has passed.",
    "CertificateUnusable": "The certificate on this card has expired. Please ask the reception staff.",
    "SecurityStatusNotSatisfied": "For a smartphone, please choose the smartphone option first.",
    "PinBlocked": "The PIN is locked. Please ask the reception staff.",
    "CardNotGenuine": "This card could not be confirmed as genuine. Please ask the reception staff.",
    # 照合番号B (card-face number): never "PIN locked" — the PIN is a different counter and still works.
    "CollationMismatch": "The number on the card face did not match. Please enter your PIN, or ask the reception staff.",
    "CollationBlocked": "The card face can no longer be checked at a reader. Your PIN still works: please enter it, or ask the reception staff.",
    "CollationRefused": "The card face could not be read clearly. Please enter your PIN, or ask the reception staff.",
    "CollationAlreadyFailed": "This card cannot be checked by its card face at this reader. Please enter your PIN, or ask the reception staff.",
    "CollationTriesLow": "To protect your card, the card face is not checked now. Please enter your PIN, or ask the reception staff.",
    "CollationLedgerUnavailable": "The card face cannot be checked at this reader right now. Please enter your PIN, or ask the reception staff.",
    # seed 000: a phone that cannot be read → show the マイナポータル eligibility screen at the counter
    "PhoneUnreadable": "The smartphone could not be read. Please show the eligibility screen of Mynaportal on your phone at reception.",
    "PhonePinBlocked": "The smartphone's PIN is locked. Please show the eligibility screen of Mynaportal at reception.",
    "VisualRefused": "The staff could not confirm your identity here. Please ask at reception.",
    "VisualTimeout": "No staff member could come to confirm your identity. Please ask at reception.",
}
DEFAULT_ERROR = "Something went wrong. Please ask the reception staff."


def error_text(lineage: tuple[str, ...]) -> str:
    """The text for the most specific error class (or base class) that has one."""
    return next((ERROR_TEXT[name] for name in lineage if name in ERROR_TEXT), DEFAULT_ERROR)


#: notice key (ScreenView.notice, from session.notice) → text; ``{days}`` is ScreenView.days_left
NOTICE_TEXT: dict[str, str] = {
    "face_no_match": "Your face did not match the photo on the card. Please try again, or choose another way.",
    "face_unsure": "The card face could not be read clearly. No try was used. Please try again, or choose another way.",
    "face_unavailable": "Face recognition cannot be used right now. No try was used. Please choose another way.",
    "pin_wrong": "The PIN is not correct.",
    # seed 001 Q17: a locked PIN is reset at the municipal office (市区町村の窓口で暗証番号の再設定)
    "pin_locked": "The PIN is now locked. It can be reset at your municipal office. Please choose another way.",
    "collation_mismatch": ERROR_TEXT["CollationMismatch"],
    "collation_blocked": ERROR_TEXT["CollationBlocked"],
    "collation_refused": ERROR_TEXT["CollationRefused"],
    "collation_already_failed": ERROR_TEXT["CollationAlreadyFailed"],
    "collation_tries_low": ERROR_TEXT["CollationTriesLow"],
    "collation_ledger_unavailable": ERROR_TEXT["CollationLedgerUnavailable"],
    "cert_expiring": "Your certificate expires in {days} days. Please renew it at your municipal office.",
    "cert_expiring_soon": "Your certificate expires soon. Please renew it at your municipal office.",
    "cert_grace": "Your certificate has expired. Only your insurance eligibility can be checked today; "
                  "consent is not asked. Please renew it at your municipal office.",
    "registration_refused": "Your certificate expires within 5 days, so this card cannot be registered now. "
                            "Please renew it at your municipal office, or ask the reception staff.",
    "registration_failed": "The registration could not be completed. Please ask the reception staff.",
    "terminal_offline": "The reception system cannot be reached right now. Your result is kept: "
                        "please tell the reception staff.",
    "visual_ng": "The staff could not confirm your identity here. Please ask the reception staff.",
    "face_tries_used": "Face recognition cannot be tried again at this visit. Please choose another way.",
    "face_not_live": "Your face could not be checked. Please face the camera and try again, or choose another way.",
    "phone_pin": "Your smartphone needs its PIN before it can be read.",
}
#: the flow's names for some notices (firmware/flow/checkin.py) → the key above
NOTICE_ALIASES: dict[str, str] = {
    "renewal_alert": "cert_expiring",
    "grace_eligibility_only": "cert_grace",
    "registration_refused_expiry": "registration_refused",
}
#: notices a screen says by its own title and hint rather than as a notice line
SILENT_NOTICES = frozenset({"card_unusable", "phone_expired"})


def notice_text(key: str) -> str:
    """The text of a notice key: one of NOTICE_TEXT (or its flow alias), or an error class name."""
    key = NOTICE_ALIASES.get(key, key)
    if not key or key in SILENT_NOTICES:
        return ""
    if key in NOTICE_TEXT:
        return NOTICE_TEXT[key]
    if key[0].isupper():  # the flow names the error that dropped a method (CollationRefused, …)
        return error_text((key,))
    return ""

#: button event → label (pin_digit and consent_toggle are labelled by their digit / item)
BUTTONS: dict[str, str] = {
    "cancel": "Cancel",
    "language": "Language",
    "phone_help": "Using a smartphone",
    "call_staff": "Call staff",
    "back": "Back",
    "choose_face": "Face recognition",
    "choose_pin": "PIN",
    "choose_visual": "Staff check",
    "proxy": "For someone else",
    "pin_delete": "Delete",
    "pin_submit": "Confirm",
    "notice_ok": "OK",
    "register_yes": "Register",
    "register_no": "Do not register",
    "consent_all": "Agree",
    "consent_choose": "Choose items",
    "consent_same": "Same as last time",
    "consent_none": "Do not agree",
    "consent_done": "Done",
    "prescription_electronic": "Electronic prescription",
    "prescription_paper": "Paper prescription",
    "more_time_yes": "Yes",
    "more_time_no": "No",
}

#: The reference's consent items (docs/reference/card-protocol.md), ORCA field prefix → label, in the
#: order of the policy shipped with the firmware. The flow's policy file (firmware/consent_policy.toml)
#: decides which items are asked, in what order and with which label msgid; this table is the
#: fallback when a view is built without the policy, and puts those labels in the catalogue.
CONSENT_ITEMS: dict[str, str] = {
    "PharmacistsInfo": "Medication information",  # 薬剤情報
    "SpecificHealthCheckupsInfo": "Specific health checkup information",  # 特定健診情報
    "DiagnosisInfo": "Medical treatment information",  # 診療情報
    "OperationInfo": "Surgery information",  # 手術情報
    "DiagnosisName": "Diagnoses",  # 傷病名
    "InfectiousInfo": "Infectious diseases",  # 感染症
    "AllergyInfo": "Other allergies",  # その他アレルギー
    "ContraindicationInfo": "Drug allergies",  # 薬剤アレルギー
    "TestInfo": "Test results",  # 検査
    "PrescriptionInfo": "Prescriptions",  # 処方
}
CONSENT_ON = "Agree"
CONSENT_OFF = "Do not agree"

#: the terminal's eligibility answer on the done screen
ANSWER_LABEL = "Insurance eligibility"
ANSWER_TEXT: dict[str | None, str] = {
    "valid": "Valid",
    "invalid": "Please ask at reception",
    "no_record": "Please ask at reception",
    None: "Being checked",
}

PIN_TRIES_LEFT = "PIN tries left: {tries}"
PIN_LAST_TRY = "If the next PIN is wrong, the PIN will be locked."
FACE_TRIES_LEFT = "Face tries left: {tries}"
MORE_TIME_FOR = "The time for this step is almost up."
PROXY_ON = "On"
PROXY_OFF = "Off"

OTHER_TEXT = (ANSWER_LABEL, PIN_TRIES_LEFT, PIN_LAST_TRY, FACE_TRIES_LEFT, MORE_TIME_FOR, PROXY_ON, PROXY_OFF,
              CONSENT_ON, CONSENT_OFF)

ALL_MESSAGE_IDS = sorted(
    {text for table in (STATE_TEXT, PHONE_STATE_TEXT, FACE_STEP_TEXT) for pair in table.values() for text in pair
     if text}
    | set(ERROR_TEXT.values()) | {DEFAULT_ERROR} | set(BUTTONS.values()) | set(NOTICE_TEXT.values())
    | set(FACE_PROMPT_TEXT.values()) | set(FACE_STEP_LABELS.values()) | set(CONSENT_ITEMS.values())
    | set(ANSWER_TEXT.values()) | set(OTHER_TEXT)
)
