"""The clinic file interface's XML documents: build them, encode them, read them back.

Shapes follow ``docs/notes/clinic-files.md`` (from the shared eligibility-interface reference, which
takes them from open clinic software; the official 外部インターフェイス仕様書 is vendor-only)::

    XmlMsg / MessageHeader   ProcessExecutionTime, QualificationConfirmationDate, MedicalInstitutionCode,
                             ArbitraryFileIdentifier, ReferenceClassification, SegmentOfResult,
                             [ErrorCode, ErrorMessage,] CharacterCodeIdentifier
           / MessageBody     ProcessingResultStatus, QualificationValidity, [PrescriptionIssueSelect,]
                             [ProcessingResultCode, ProcessingResultMessage,]
                             ResultList / ResultOfQualificationConfirmation …

A document is held as :data:`Fields`: ordered ``(tag, value)`` pairs where a value is text or more
pairs. That is what the writer serialises and what :func:`read_document` gives back, so a property
test can check that every written file reads back as the same fields.

Text is made fit for the file first (:func:`fit_text`): a character the file's encoding cannot carry
(Shift_JIS files are cp932, what Windows clinic software reads) or that XML 1.0 cannot carry at all
(controls, surrogates, U+FFFE/U+FFFF) becomes 〓 (U+3013 GETA MARK, the substitute Japanese systems
print for a character they lack). Nothing is dropped silently: the builder counts the substitutions.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.parsers import expat

from hal.clock import JST

#: ``(tag, text or nested pairs)``; order matters and tags may repeat (ResultList's children).
Fields = list[tuple[str, "str | Fields"]]

#: CharacterCodeIdentifier: 0 UTF-8, 1 Shift_JIS.
UTF8, SHIFT_JIS = "0", "1"
#: How each identifier is declared in the XML declaration, and which Python codec writes it.
DECLARED = {UTF8: "UTF-8", SHIFT_JIS: "Shift_JIS"}
CODEC = {UTF8: "utf-8", SHIFT_JIS: "cp932"}
#: Names an XML declaration may use for the two encodings (requests written by other programs).
_READABLE = {"utf-8": "utf-8", "utf8": "utf-8", "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932",
             "x-sjis": "cp932", "windows-31j": "cp932", "cp932": "cp932", "ms932": "cp932"}

SUBSTITUTE = "\u3013"  # 〓
NEWLINE = "\r\n"  # files are read by Windows clinic software; parsers do not care
_DECLARATION = re.compile(rb"^(\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"'][^>]*\?>")
_ANY_DECLARATION = re.compile(r"^\ufeff?<\?xml[^>]*\?>")


class DocumentError(ValueError):
    """A clinic file is not a document of the shape this interface reads (the reason is ours)."""


def encoding_id(name: str) -> str:
    """``"shift_jis"``/``"utf-8"`` (or ``"1"``/``"0"``) → CharacterCodeIdentifier."""
    key = name.strip().lower()
    if key in ("0", "utf-8", "utf8"):
        return UTF8
    if key in ("1", "shift_jis", "shift-jis", "sjis", "cp932"):
        return SHIFT_JIS
    raise ValueError(f"encoding must be shift_jis or utf-8 (CharacterCodeIdentifier 1 or 0), not {name!r}")


def _xml_char(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:  # XML 1.0 allows \t\n\r, but a parser turns \r into \n
        return False
    return not (0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF))


def _encodable(ch: str, codec: str) -> bool:
    try:
        return ch.encode(codec).decode(codec) == ch  # cp932 maps a few characters one way only
    except UnicodeError:
        return False


def fit_text(text: str, charset: str) -> tuple[str, int]:
    """``text`` with every character the file cannot carry replaced by 〓, and how many were."""
    codec = CODEC[charset]
    out, replaced = [], 0
    for ch in text:
        if _xml_char(ch) and (ch.isascii() or _encodable(ch, codec)):
            out.append(ch)
        else:
            out.append(SUBSTITUTE)
            replaced += 1
    return "".join(out), replaced


@dataclass
class Built:
    """The bytes of one file, and how many characters had to become 〓."""

    data: bytes
    substituted: int = 0
    fields: Fields = field(default_factory=list)


def fit_fields(fields: Fields, charset: str) -> tuple[Fields, int]:
    out: Fields = []
    total = 0
    for tag, value in fields:
        if isinstance(value, str):
            value, count = fit_text(value, charset)
        else:
            value, count = fit_fields(value, charset)
        total += count
        out.append((tag, value))
    return out, total


def _element(tag: str, value) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, str):
        element.text = value
    else:
        for child_tag, child in value:
            element.append(_element(child_tag, child))
    return element


def build_document(fields: Fields, charset: str) -> Built:
    """``XmlMsg`` with ``fields`` as its children, encoded per ``charset`` (CharacterCodeIdentifier)."""
    fitted, substituted = fit_fields(fields, charset)
    root = _element("XmlMsg", fitted)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    text = f'<?xml version="1.0" encoding="{DECLARED[charset]}"?>\n{body}\n'.replace("\n", NEWLINE)
    return Built(text.encode(CODEC[charset]), substituted, fitted)


def _refuse_doctype(*_args) -> None:
    raise DocumentError("a DOCTYPE or entity declaration is not allowed")


def decode(data: bytes) -> str:
    """The text of a file, by its XML declaration (none: UTF-8, as XML says)."""
    match = _DECLARATION.match(data)
    if match is None:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        codec = "utf-8"
    else:
        declared = match.group(2).decode("ascii").lower()
        codec = _READABLE.get(declared)
        if codec is None:
            raise DocumentError(f"encoding {declared!r} is not one of Shift_JIS or UTF-8")
        if match.group(1):
            data = data[3:]
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise DocumentError(f"the bytes are not {codec} as the file declares") from None


def _fields(element: ET.Element) -> Fields:
    return [(child.tag, _fields(child) if len(child) else (child.text or "")) for child in element]


def read_document(data: bytes, *, root: str = "XmlMsg") -> Fields:
    """Parse a clinic file back into :data:`Fields` (the root's children).

    Raises:
        DocumentError: not well-formed, a DOCTYPE (no entities are ever expanded), another root,
            or an encoding other than Shift_JIS/UTF-8.
    """
    text = _ANY_DECLARATION.sub("", decode(data), count=1)
    scan = expat.ParserCreate()  # a first pass that refuses DTDs, so no entity is ever declared
    scan.StartDoctypeDeclHandler = _refuse_doctype
    scan.EntityDeclHandler = _refuse_doctype
    try:
        scan.Parse(text, True)
        element = ET.fromstring(text)
    except expat.ExpatError as exc:
        raise DocumentError(f"not well-formed XML (line {exc.lineno}, column {exc.offset})") from None
    except ET.ParseError as exc:
        raise DocumentError(f"not well-formed XML (line {exc.position[0]}, column {exc.position[1]})") from None
    if element.tag != root:
        raise DocumentError(f"the root element must be {root}, not {element.tag[:40]!r}")
    return _fields(element)


def get(fields: Fields, *path: str) -> str | Fields | None:
    """The first value at ``path`` (tags), or None."""
    value: str | Fields | None = fields
    for tag in path:
        if not isinstance(value, list):
            return None
        value = next((v for t, v in value if t == tag), None)
    return value


def text_at(fields: Fields, *path: str) -> str:
    value = get(fields, *path)
    return value if isinstance(value, str) else ""


# --- values as the files spell them -----------------------------------------------------------

def timestamp(moment: dt.datetime) -> str:
    """yyyyMMddHHmmss, Japan time."""
    return moment.astimezone(JST).strftime("%Y%m%d%H%M%S")


def day(value: dt.date) -> str:
    """yyyyMMdd."""
    return value.strftime("%Y%m%d")


def ratio(percent: int) -> str:
    """A share of cost as the files carry it: 30 % → ``030``."""
    return f"{percent:03d}"


def optional(pairs: Iterable[tuple[str, str | None]]) -> Fields:
    """The pairs whose value is given (None leaves the element out)."""
    return [(tag, value) for tag, value in pairs if value is not None]
