"""What goes into each clinic file: a check-in's face result, a lookup's response, an error response.

Element names and codes are the reference's (docs/notes/clinic-files.md says which are our guesses).
A face file carries the check-in's consent answers and the registry's eligibility answer; it never
carries the certificate, the proofs, the face score, a PIN or the 12-digit number — the kiosk does
not send the last two, and the others are the terminal's business, not the clinic system's.

A check-in confirmed by staff (目視確認, ``method: visual``) says so in ``ProcessingResultMessage``:
the reference names no field for the confirmation method, and that is the one it lists for notices
(docs/notes/clinic-files.md). No staff name is written: who pressed OK stays in the terminal.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from firmware.card.certificate import CertStatus
from firmware.link.schemas import CONSENT_ITEMS, ConsentFlag, Method, ResultMessage
from hal.clock import JST
from terminal.clinic_files.documents import Fields, day, get, optional, ratio, text_at, timestamp
from terminal.registry import Answer, InsuredRecord

#: ReferenceClassification: 1 マイナンバーカード, 2 被保険者証情報.
BY_CARD, BY_NUMBER = "1", "2"
#: SegmentOfResult: 1 正常, 9 異常 (2 処理中 is never written: our answers are synchronous).
SEGMENT_OK, SEGMENT_FAILED = "1", "9"
#: ProcessingResultStatus: 1 正常, 2 エラー.
STATUS_OK, STATUS_ERROR = "1", "2"
#: PrescriptionIssueSelect: 1 電子処方箋, 2 紙.
PRESCRIPTION = {"electronic": "1", "paper": "2"}
#: A consent is usable for 24 h after it is given (<Item>AvailableTime).
CONSENT_AVAILABLE = dt.timedelta(hours=24)

#: Our notices in ProcessingResultMessage (the official codes are vendor-only: no code is written).
NOTICES = {
    CertStatus.EXPIRING: "電子証明書の有効期限が3か月以内に切れます。更新をご案内ください。",
    CertStatus.GRACE: "電子証明書の有効期限が切れています。資格確認のみ行いました(医療情報の同意なし)。",
}
#: How the holder was confirmed, when it was not the card reader's own check (staff looked at the card).
VISUAL_NOTICE = "本人確認は職員の目視確認により行いました。"
_NO_ANSWER = "資格情報を照会できませんでした。"

#: Our error codes (ErrorCode) for requests the terminal cannot answer; the real ones are vendor-only.
ERRORS = {
    "malformed": ("UKT001", "要求ファイルを読み取れません。"),
    "field": ("UKT002", "要求ファイルの項目が不正です。"),
    "unsupported": ("UKT003", "この要求種別には対応していません。"),
    "too_large": ("UKT004", "要求ファイルが大きすぎます。"),
}


def header(now: dt.datetime, institution_code: str, charset: str, *, reference: str,
           arbitrary_id: str = "", segment: str = SEGMENT_OK, error: tuple[str, str] | None = None,
           confirmation_date: str | None = None) -> Fields:
    pairs: Fields = [
        ("ProcessExecutionTime", timestamp(now)),
        ("QualificationConfirmationDate", confirmation_date or day(now.astimezone(JST).date())),
        ("MedicalInstitutionCode", institution_code),
        ("ArbitraryFileIdentifier", arbitrary_id),
        ("ReferenceClassification", reference),
        ("SegmentOfResult", segment),
    ]
    if error is not None:
        pairs += [("ErrorCode", error[0]), ("ErrorMessage", error[1])]
    pairs.append(("CharacterCodeIdentifier", charset))
    return pairs


def qualification(insured: InsuredRecord | None) -> Fields:
    """ResultOfQualificationConfirmation's insurance part (empty without a record)."""
    if insured is None:
        return []
    fields = optional([
        ("InsuredCardClassification", insured.card_classification),
        ("InsurerNumber", insured.insurer_number),
        ("InsuredCardSymbol", insured.symbol),
        ("InsuredIdentificationNumber", insured.number),
        ("InsuredBranchNumber", insured.branch),
        ("PersonalFamilyClassification", insured.personal_family),
        ("InsuredName", insured.insured_name),
        ("Name", insured.name),
        ("NameKana", insured.name_kana),
        ("Sex1", insured.sex),
        ("Birthdate", day(insured.birthdate)),
        ("Address", insured.address),
        ("PostNumber", insured.post_number),
        ("InsuredCertificateIssuanceDate", day(insured.issued) if insured.issued else None),
        ("InsuredCardValidDate", day(insured.valid_from) if insured.valid_from else None),
        ("InsuredCardExpirationDate", day(insured.valid_until) if insured.valid_until else None),
        ("InsuredPartialContributionRatio", ratio(insured.share_percent)),
        ("PreschoolClassification", insured.preschool),
        ("ReasonOfLoss", insured.reason_of_loss),
    ])
    if insured.elderly_share_percent is not None:
        fields.append(("ElderlyRecipientCertificateInfo",
                       [("ElderlyRecipientContributionRatio", ratio(insured.elderly_share_percent))]))
    if insured.limit_category is not None:  # provided by law since 2024-10-07: no consent flag
        fields.append(("LimitApplicationCertificateRelatedInfo",
                       [("LimitApplicationCertificateClassification", insured.limit_category)]))
    return fields


def consent_fields(result: ResultMessage) -> Fields:
    """``<Item>ConsFlg/ConsTime/AvailableTime`` for every ORCA item (none in the grace period).

    An item the patient was not asked about (not in the result) is written as 0 同意なし without a
    time. A flag other than 1 has no AvailableTime: there is nothing to use.
    """
    if result.eligibility_only:
        return []
    fields: Fields = []
    for item in CONSENT_ITEMS:
        answer = result.consent.get(item)
        flag = answer.flag if answer else ConsentFlag.NO
        fields.append((f"{item}ConsFlg", str(int(flag))))
        if answer is not None and answer.time is not None:
            fields.append((f"{item}ConsTime", timestamp(answer.time)))
            if flag == ConsentFlag.YES:
                fields.append((f"{item}AvailableTime", timestamp(answer.time + CONSENT_AVAILABLE)))
    return fields


def body(answer: Answer, *, prescription: str | None = None, notice: str | None = None,
         consent: Fields | None = None, status: str = STATUS_OK) -> Fields:
    """MessageBody: one ResultOfQualificationConfirmation for 有効/無効; none for 該当資格なし/複数該当."""
    pairs: Fields = [("ProcessingResultStatus", status)]
    if answer.validity is not None:
        pairs.append(("QualificationValidity", str(answer.validity)))
    if prescription is not None:
        pairs.append(("PrescriptionIssueSelect", prescription))
    if answer.validity is None:  # and still what else there is to say (a visual check, the certificate)
        notice = _NO_ANSWER + (notice or "")
    if notice:
        pairs.append(("ProcessingResultMessage", notice))
    if answer.validity in (1, 2, 3):
        record = qualification(answer.insured) + (consent or [])
        if record:
            pairs.append(("ResultList", [("ResultOfQualificationConfirmation", record)]))
    return pairs


def face_notice(result: ResultMessage) -> str | None:
    """ProcessingResultMessage of a face file: the certificate's notice, then a visual check's."""
    notices = [NOTICES.get(result.cert_status), VISUAL_NOTICE if result.method == Method.VISUAL else None]
    return "".join(filter(None, notices)) or None


def face_fields(result: ResultMessage, answer: Answer, now: dt.datetime, institution_code: str,
                charset: str) -> Fields:
    """The ``face/`` file of one verified (or staff-confirmed) check-in."""
    status = STATUS_OK if answer.validity is not None else STATUS_ERROR
    return [
        ("MessageHeader", header(now, institution_code, charset, reference=BY_CARD)),
        ("MessageBody", body(answer, prescription=PRESCRIPTION.get(result.prescription or ""),
                             notice=face_notice(result), consent=consent_fields(result), status=status)),
    ]


# --- requests (req/) ---------------------------------------------------------------------------

_DIGITS8 = re.compile(r"^( {2}\d{6}|\d{6}|\d{8})$")
_BRANCH = re.compile(r"^(\d{2})?$")
_DATE = re.compile(r"^\d{8}$")
_INSTITUTION = re.compile(r"^\d{10}$")


class RequestError(ValueError):
    """A request file's field is missing or wrong; ``kind`` keys :data:`ERRORS`."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class SearchInfo:
    """A number-based lookup (OQSsiquc01req: QualificationConfirmSearchInfo) and its header ids."""

    insurer_number: str
    symbol: str
    number: str
    branch: str
    birthdate: dt.date | None
    confirmation_date: str
    arbitrary_id: str


def _short(value: str, limit: int) -> str:
    if len(value) > limit:
        raise RequestError("field", f"a field is longer than {limit} characters")
    return value


def search_info(fields: Fields) -> SearchInfo:
    """The request's search fields, checked (the message of an error never repeats the file's text)."""
    if not isinstance(get(fields, "MessageBody", "QualificationConfirmSearchInfo"), list):
        raise RequestError("malformed", "no MessageBody/QualificationConfirmSearchInfo")
    insurer = text_at(fields, "MessageBody", "QualificationConfirmSearchInfo", "InsurerNumber")
    number = text_at(fields, "MessageBody", "QualificationConfirmSearchInfo", "InsuredIdentificationNumber").strip()
    symbol = text_at(fields, "MessageBody", "QualificationConfirmSearchInfo", "InsuredCardSymbol").strip()
    branch = text_at(fields, "MessageBody", "QualificationConfirmSearchInfo", "InsuredBranchNumber").strip()
    birth = text_at(fields, "MessageBody", "QualificationConfirmSearchInfo", "Birthdate").strip()
    date = text_at(fields, "MessageHeader", "QualificationConfirmationDate").strip()
    arbitrary = text_at(fields, "MessageHeader", "ArbitraryFileIdentifier")
    if not _DIGITS8.match(insurer.rstrip() if insurer.strip() else ""):
        raise RequestError("field", "InsurerNumber must be 8 digits (or 6, padded with spaces)")
    if not number:
        raise RequestError("field", "InsuredIdentificationNumber is missing")
    if not _BRANCH.match(branch):
        raise RequestError("field", "InsuredBranchNumber must be 2 digits or empty")
    birthdate = None
    if birth:
        try:
            birthdate = dt.datetime.strptime(birth, "%Y%m%d").date() if _DATE.match(birth) else None
        except ValueError:
            birthdate = None
        if birthdate is None:
            raise RequestError("field", "Birthdate must be yyyyMMdd")
    if date and not _DATE.match(date):
        raise RequestError("field", "QualificationConfirmationDate must be yyyyMMdd")
    return SearchInfo(insurer.strip().rjust(8), _short(symbol, 38), _short(number, 38), branch, birthdate,
                      date, _short(arbitrary, 64))


def response_fields(info: SearchInfo, answer: Answer, now: dt.datetime, institution_code: str,
                    charset: str) -> Fields:
    """The ``res/`` answer to a number-based lookup."""
    return [
        ("MessageHeader", header(now, institution_code, charset, reference=BY_NUMBER,
                                 arbitrary_id=info.arbitrary_id,
                                 confirmation_date=info.confirmation_date or None)),
        ("MessageBody", body(answer, status=STATUS_OK if answer.validity is not None else STATUS_ERROR)),
    ]


def error_fields(kind: str, now: dt.datetime, institution_code: str, charset: str,
                 arbitrary_id: str = "") -> Fields:
    """The ``res/`` answer to a request the terminal could not read (SegmentOfResult 9)."""
    return [
        ("MessageHeader", header(now, institution_code, charset, reference=BY_NUMBER, arbitrary_id=arbitrary_id,
                                 segment=SEGMENT_FAILED, error=ERRORS[kind])),
        ("MessageBody", [("ProcessingResultStatus", STATUS_ERROR)]),
    ]
