"""Structured, journald-friendly logging with a redaction filter.

Only entry points (the kiosk, the CLI) call :func:`configure`; library modules just use
``logging.getLogger(__name__)``. Each line on stderr starts with a syslog priority prefix (``<6>``),
which journald turns into the entry's priority, followed by ``logger: message key=value …``.
With ``json=True`` each line is one JSON object instead (for log shippers).

The redaction filter is the last line of defence, not the first: code must not log personal data in
the first place, but if it does, 12-digit numbers (個人番号), 14-digit 照合番号B, PINs and image or
key bytes never reach a handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7,
}

# A run of digits, possibly in groups joined by single spaces or hyphens ("1234 5678 9012").
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_FORMAT_SPEC = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgG]")
# A PIN named as such: pin=1234, "pin": "1234", PIN 1234, 暗証番号 1234, password=...
_PIN_FIELD = re.compile(
    r"(?i)((?:pin|passcode|password|暗証番号|照合番号)[\"']?\s*[:=]?\s*[\"']?)([0-9A-Za-z]{4,16})"
)
_SENSITIVE_KEYS = re.compile(r"(?i)pin|password|passcode|my_?number|kojin|collation|image|photo|frame|embedding")
_MAX_BYTES = 32  # bytes objects longer than this are image/key material, not identifiers


def redact_text(text: str) -> str:
    """Replace card numbers and PINs in ``text`` with placeholders."""
    text = _PIN_FIELD.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return _DIGIT_RUN.sub(_redact_digit_run, text)


def _redact_digit_run(match: re.Match) -> str:
    """12 digits (個人番号) or 14 (照合番号B) in one run, or >= 12 digits in separated groups.

    An unseparated run of another length (a millisecond timestamp, a serial) is left alone; a
    grouped run of 12 or more digits is redacted whole, so no part of a number leaks beside a year.
    """
    run = match.group(0)
    digits = sum(ch.isdigit() for ch in run)
    grouped = len(run) != digits
    if digits in (12, 14) or (grouped and digits >= 12):
        return "[NUMBER]"
    if grouped:  # e.g. "2035 123456789012": judge each group on its own
        return re.sub(r"[0-9]+", lambda m: "[NUMBER]" if len(m.group(0)) in (12, 14) else m.group(0), run)
    return run


def redact_value(value, key: str | None = None):
    """Redact one logged argument or extra field, whatever its type."""
    if key is not None and _SENSITIVE_KEYS.search(key):
        return "[REDACTED]"
    if isinstance(value, bytes | bytearray | memoryview):
        size = len(value)
        return f"<{size} bytes>" if size > _MAX_BYTES else redact_text(bytes(value).hex())
    if type(value).__module__ == "numpy":  # arrays are frames or embeddings
        return f"<array {getattr(value, 'shape', '')}>"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if redact_text(str(value)) == str(value) else "[NUMBER]"
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return redact_text(repr(value))


_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so no handler can see the original personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            args = {k: redact_value(v, str(k)) for k, v in args.items()}
        elif args:
            args = tuple(redact_value(a) for a in args)
        try:
            message = str(record.msg) % args if args else str(record.msg)
        except (TypeError, ValueError, KeyError):  # e.g. %d given "[NUMBER]": format everything as %s
            try:
                message = _FORMAT_SPEC.sub("%s", str(record.msg)) % args
            except (TypeError, ValueError, KeyError):
                message = f"{record.msg} {args!r}"
        record.msg = redact_text(message)
        record.args = None
        for key in set(vars(record)) - _RECORD_FIELDS:
            setattr(record, key, redact_value(getattr(record, key), key))
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def extra_fields(record: logging.LogRecord) -> dict:
    """The ``extra={...}`` fields a caller attached to a record."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}


class JournalFormatter(logging.Formatter):
    """``<prio>logger: message key=value`` — journald reads the ``<prio>`` prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        fields = " ".join(f"{k}={v}" for k, v in extra_fields(record).items())
        line = f"<{prio}>{record.name}: {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(), **extra_fields(record),
        }
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str | int = "INFO", json_lines: bool = False, stream=None,
              debug_modules: list[str] | None = None) -> logging.Handler:
    """Install one redacting handler on the root logger (entry points only). Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else JournalFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_uketsuke", False)]:
        root.removeHandler(old)
    handler._uketsuke = True
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in debug_modules or []:
        logging.getLogger(name).setLevel(logging.DEBUG)
    return handler
