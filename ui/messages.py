"""Every message id a screen shows, per flow state and per error class.

Screens render a state; this table says which text. Error classes map to text here (exception
messages are for technicians, never for the screen).
"""

# flow state → (title, hint)
STATE_TEXT: dict[str, tuple[str, str]] = {
    "idle": ("Please place your card on the reader", "My Number card or smartphone"),
    "reading": ("Reading your card", "Please do not move the card"),
    "done": ("Check-in complete", "Please take your card"),
    "failed": ("Could not complete check-in", "Please ask the reception staff"),
    "out_of_service": ("This reader is out of service", "Please ask the reception staff"),
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
}
DEFAULT_ERROR = "Something went wrong. Please ask the reception staff."


def error_text(lineage: tuple[str, ...]) -> str:
    """The text for the most specific error class (or base class) that has one."""
    return next((ERROR_TEXT[name] for name in lineage if name in ERROR_TEXT), DEFAULT_ERROR)

BUTTONS = {
    "cancel": "Cancel",
    "language": "Language",
}

ALL_MESSAGE_IDS = sorted(
    {text for pair in STATE_TEXT.values() for text in pair}
    | set(ERROR_TEXT.values()) | {DEFAULT_ERROR} | set(BUTTONS.values())
)
