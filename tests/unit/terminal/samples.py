"""The project's own synthetic clinic-file samples (fictitious people, insurer 99999999): the golden
files under golden/ are these, written by the terminal. Regenerate with
``python -m tests.unit.terminal.samples`` after a deliberate change, and review the diff."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from firmware.link.schemas import Method, ResultMessage
from hal.clock import JST
from terminal.clinic_files import ClinicFiles
from terminal.clinic_files.content import face_fields
from terminal.registry import Answer, InsuredRecord, Registry

GOLDEN = Path(__file__).parent / "golden"
CHECKED_IN = dt.datetime(2025, 3, 3, 9, 15, 30, tzinfo=JST)
IDS = {"valid": "00000000-0000-4000-8000-000000000001", "family": "00000000-0000-4000-8000-000000000002",
       "invalid": "00000000-0000-4000-8000-000000000003", "no-record": "00000000-0000-4000-8000-000000000004",
       "multiple": "00000000-0000-4000-8000-000000000005", "grace": "00000000-0000-4000-8000-000000000006",
       "visual": "00000000-0000-4000-8000-000000000007"}

HANAKO = InsuredRecord(insurer_number="99999999", symbol="ウケツケ", number="1234567", branch="01", name="番号 花子",
                       name_kana="バンゴウ ハナコ", sex="2", birthdate=dt.date(1989, 3, 31),
                       address="東京都千代田区霞が関二丁目１番２号", post_number="100-8916",
                       issued=dt.date(2020, 4, 1), valid_from=dt.date(2020, 4, 1), share_percent=30,
                       limit_category="A01")
TARO = InsuredRecord(insurer_number="  999999", number="7654321", branch="02", personal_family="2",
                     insured_name="番号 一郎", name="番号 太郎", name_kana="バンゴウ タロウ", sex="1",
                     birthdate=dt.date(2017, 6, 1), share_percent=20, preschool="0")
ELDER = InsuredRecord(insurer_number="39999999", number="00001234", name="髙橋 ㈱子", sex="2",
                      birthdate=dt.date(1948, 1, 1), share_percent=10, elderly_share_percent=10,
                      reason_of_loss="01")


def result(name: str, **fields) -> ResultMessage:
    base = {"site": "demo-clinic", "reader": "demo-reader", "method": Method.PIN, "card_kind": "card",
            "cert_der_b64": base64.b64encode(b"not a certificate").decode(), "cert_status": "valid",
            "ts": CHECKED_IN, "prescription": "electronic",
            "consent": {item: {"flag": 1, "time": CHECKED_IN} for item in
                        ("PharmacistsInfo", "SpecificHealthCheckupsInfo", "DiagnosisInfo", "OperationInfo")}}
    return ResultMessage(id=IDS[name], **(base | fields))


#: name → (result, answer): 有効 本人, 有効 家族 (6-digit insurer), 無効, 該当資格なし, 複数該当, grace,
#: and a staff visual check (目視確認) this terminal's staff confirmed.
CASES = {
    "valid": (result("valid"), Answer(1, HANAKO)),
    "family": (result("family", prescription="paper", consent={"PharmacistsInfo": {"flag": 0, "time": CHECKED_IN}},
                      proxy=True), Answer(1, TARO)),
    "invalid": (result("invalid", cert_status="expiring"), Answer(2, ELDER)),
    "no-record": (result("no-record"), Answer(4)),
    "multiple": (result("multiple"), Answer(5)),
    "grace": (result("grace", cert_status="grace", eligibility_only=True, consent={}, prescription=None),
              Answer(1, HANAKO)),
    "visual": (result("visual", method=Method.VISUAL), Answer(1, HANAKO)),
}
ENCODINGS = {"sjis": "shift_jis", "utf8": "utf-8"}


def golden_path(case: str, encoding: str) -> Path:
    return GOLDEN / f"face-{case}.{encoding}.xml"


def render(case: str, encoding: str) -> bytes:
    files = ClinicFiles("/nonexistent", Registry(), encoding=ENCODINGS[encoding])
    message, answer = CASES[case]
    return files.face_document(message, answer)


def fields_of(case: str, encoding: str):
    message, answer = CASES[case]
    files = ClinicFiles("/nonexistent", Registry(), encoding=ENCODINGS[encoding])
    return face_fields(message, answer, message.ts, files.institution_code, files.charset)


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    for case in CASES:
        for encoding in ENCODINGS:
            golden_path(case, encoding).write_bytes(render(case, encoding))
    print(f"wrote {len(CASES) * len(ENCODINGS)} golden files under {GOLDEN}")
