"""The clinic file interface (terminal/clinic_files): golden face files in both encodings, every
written file reads back as the same fields, atomic and deduplicated writes, req/ → res/."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import os
import re
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.link.schemas import CONSENT_ITEMS, ResultMessage
from terminal.clinic_files import ClinicFiles, ClinicFilesError, FaceJob, face_file_name
from terminal.clinic_files.content import face_fields
from terminal.clinic_files.documents import (
    SHIFT_JIS,
    SUBSTITUTE,
    UTF8,
    DocumentError,
    build_document,
    fit_text,
    read_document,
    text_at,
)
from terminal.clinic_files.store import FaceStore
from terminal.registry import Answer, InsuredRecord, Registry, RegistryEntry
from tests.unit.terminal.samples import CASES, CHECKED_IN, ENCODINGS, HANAKO, golden_path, render, result

FACE_NAME = re.compile(r"^OQSsiquc01res_face_\d{10}\d{3}\d{17}_\d{14}\.xml$")


# --- golden files ------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", CASES)
def test_face_file_matches_its_golden_sample_byte_for_byte(case, encoding):
    assert render(case, encoding) == golden_path(case, encoding).read_bytes(), (
        "regenerate with python -m tests.unit.terminal.samples if the change is deliberate")


def test_golden_files_declare_their_encoding_and_character_code_identifier():
    sjis, utf8 = golden_path("valid", "sjis").read_bytes(), golden_path("valid", "utf8").read_bytes()
    assert sjis.startswith(b'<?xml version="1.0" encoding="Shift_JIS"?>\r\n')
    assert utf8.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\r\n')
    assert text_at(read_document(sjis), "MessageHeader", "CharacterCodeIdentifier") == SHIFT_JIS
    assert text_at(read_document(utf8), "MessageHeader", "CharacterCodeIdentifier") == UTF8
    assert "番号 花子".encode("cp932") in sjis and "番号 花子".encode() in utf8


@pytest.mark.parametrize("case,validity,records", [("valid", "1", 1), ("invalid", "2", 1), ("no-record", "4", 0),
                                                   ("multiple", "5", 0)])
def test_validity_and_result_list(case, validity, records):
    fields = read_document(golden_path(case, "utf8").read_bytes())
    assert text_at(fields, "MessageBody", "QualificationValidity") == validity
    result_list = dict(fields[1][1]).get("ResultList") or []
    assert len(result_list) == records


def test_consent_fields_as_the_reference_names_them():
    record = read_document(golden_path("valid", "utf8").read_bytes())
    confirmation = dict(dict(dict(record)["MessageBody"])["ResultList"])["ResultOfQualificationConfirmation"]
    values = dict(confirmation)
    assert [f"{item}ConsFlg" in values for item in CONSENT_ITEMS] == [True] * len(CONSENT_ITEMS)
    assert values["PharmacistsInfoConsFlg"] == "1"
    assert values["PharmacistsInfoConsTime"] == "20250303091530"
    assert values["PharmacistsInfoAvailableTime"] == "20250304091530"  # usable for 24 h
    assert values["DiagnosisNameConsFlg"] == "0" and "DiagnosisNameConsTime" not in values
    assert values["InsurerNumber"] == "99999999" and values["InsuredPartialContributionRatio"] == "030"
    assert dict(values["LimitApplicationCertificateRelatedInfo"]) == {"LimitApplicationCertificateClassification": "A01"}


def test_grace_period_file_has_no_consent_and_says_why():
    fields = read_document(golden_path("grace", "utf8").read_bytes())
    text = golden_path("grace", "utf8").read_text(encoding="utf-8")
    assert "ConsFlg" not in text and "PrescriptionIssueSelect" not in text
    assert "資格確認のみ" in text_at(fields, "MessageBody", "ProcessingResultMessage")


def test_six_digit_insurer_numbers_are_padded_with_spaces_to_eight():
    fields = read_document(golden_path("family", "sjis").read_bytes())
    confirmation = dict(dict(dict(fields)["MessageBody"])["ResultList"])["ResultOfQualificationConfirmation"]
    assert dict(confirmation)["InsurerNumber"] == "  999999"


def test_face_files_carry_no_proof_certificate_score_or_twelve_digit_number():
    message, answer = CASES["valid"]
    message = message.model_copy(update={"face_score": 0.8123, "signature_b64": base64.b64encode(b"sig" * 20).decode(),
                                         "nonce_b64": base64.b64encode(b"n" * 32).decode()})
    data = ClinicFiles("/x", Registry(), encoding="utf-8").face_document(message, answer).decode()
    for secret in (message.cert_der_b64, message.signature_b64, message.nonce_b64, "0.8123", message.id):
        assert secret not in data
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", data)


def test_file_name_shape():
    name = face_file_name("9999999999", "000", 42, CHECKED_IN)
    assert name == "OQSsiquc01res_face_9999999999000" + "00000000000000042" + "_20250303091530.xml"
    assert FACE_NAME.match(name)


def test_bad_configuration_is_one_clear_error():
    with pytest.raises(ValueError, match="10 digits"):
        ClinicFiles("/x", Registry(), institution_code="123")
    with pytest.raises(ValueError, match="shift_jis or utf-8"):
        ClinicFiles("/x", Registry(), encoding="latin-1")


# --- round trip (property) ---------------------------------------------------------------------

awkward = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
japanese = st.text(st.sampled_from("番号花子髙﨑𠮷ｱｲｳ　ー～－①㈱〓¥\\~&<>\"'ｶﾞ"), min_size=1, max_size=20)
strings = st.one_of(awkward, japanese)


def _insured(name, kana, symbol, number, address):
    return InsuredRecord(insurer_number="99999999", symbol=symbol[:38], number=number[:38], branch="00",
                         name=name[:100], name_kana=kana[:100], sex="1", birthdate=dt.date(1970, 1, 1),
                         address=address[:200])


def _fit_all(fields, charset):
    return [(tag, fit_text(value, charset)[0] if isinstance(value, str) else _fit_all(value, charset))
            for tag, value in fields]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=strings, kana=strings, symbol=strings, number=strings, address=strings,
       flags=st.lists(st.integers(0, 3), min_size=len(CONSENT_ITEMS), max_size=len(CONSENT_ITEMS)),
       charset=st.sampled_from([SHIFT_JIS, UTF8]))
def test_every_written_file_reads_back_as_the_same_fields(tmp_path_factory, name, kana, symbol, number, address,
                                                          flags, charset):
    try:
        insured = _insured(name, kana, symbol, number, address)
    except ValueError:  # the registry refuses control characters: nothing to write
        return
    consent = {item: {"flag": flag, "time": CHECKED_IN} for item, flag in zip(CONSENT_ITEMS, flags, strict=True)}
    message = result("valid", consent=consent)
    files = ClinicFiles(tmp_path_factory.mktemp("files"), Registry(),
                        encoding="shift_jis" if charset == SHIFT_JIS else "utf-8")
    files.open()
    written, _ = files.write_face(message, Answer(1, insured))
    data = (files.faces.folder / written).read_bytes()
    expected = _fit_all(face_fields(message, Answer(1, insured), message.ts, files.institution_code, charset), charset)
    assert read_document(data) == expected
    record = dict(dict(dict(expected)["MessageBody"])["ResultList"])["ResultOfQualificationConfirmation"]
    got = dict(record)["Name"]
    # the name survives unless the encoding cannot carry a character; then exactly those became 〓
    assert len(got) == len(insured.name)
    assert all(g == c or g == SUBSTITUTE for g, c in zip(got, insured.name, strict=True))
    if charset == UTF8:
        assert got == insured.name


def test_characters_shift_jis_cannot_carry_become_geta():
    assert fit_text("𠮷野家", SHIFT_JIS) == ("〓野家", 1)
    assert fit_text("𠮷野家", UTF8) == ("𠮷野家", 0)
    assert fit_text("髙﨑 ①㈱", SHIFT_JIS) == ("髙﨑 ①㈱", 0)  # cp932 extensions are kept
    assert fit_text("a\x00b\rc\ud800", UTF8) == ("a〓b〓c〓", 3)  # XML 1.0 cannot carry these at all


# --- atomic, deduplicated face files -----------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    clinic = ClinicFiles(tmp_path / "terminal", Registry())
    clinic.open()
    return clinic


def _listing(folder):
    return sorted(os.listdir(folder))


def test_one_file_per_result_id_even_across_restarts(tmp_path, files):
    message, answer = CASES["valid"]
    name, new = files.write_face(message, answer)
    assert new and FACE_NAME.match(name)
    assert files.write_face(message, answer) == (name, False)
    (files.faces.folder / name).unlink()  # the clinic program read and removed it
    again = ClinicFiles(tmp_path / "terminal", Registry())  # a restarted terminal gets the resend
    again.open()
    assert again.write_face(message, answer) == (name, False)
    assert _listing(again.faces.folder) == []
    other, new = again.write_face(CASES["family"][0], CASES["family"][1])
    assert new and int(other[32:49]) == 2  # the counter goes on after a restart


def test_no_temporary_is_left_and_only_whole_files_have_the_name(files, monkeypatch):
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append((os.path.basename(src), os.path.getsize(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    name, _ = files.write_face(*CASES["valid"])
    assert seen and seen[0][0].startswith(".") and seen[0][0].endswith(".tmp")
    assert seen[0][1] == (files.faces.folder / name).stat().st_size  # renamed only once complete
    assert _listing(files.faces.folder) == [name]


def test_full_disk_is_a_clear_error_and_nothing_is_committed(files, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ClinicFilesError, match="disk is full"):
        files.write_face(*CASES["valid"])
    assert _listing(files.faces.folder) == [] and files.faces.count == 0
    monkeypatch.undo()
    name, new = files.write_face(*CASES["valid"])  # the resend, once there is space
    assert new and _listing(files.faces.folder) == [name]


def test_crash_after_commit_is_finished_at_start_and_before_commit_is_dropped(tmp_path, files, monkeypatch):
    message, answer = CASES["valid"]
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(ClinicFilesError):
        files.write_face(message, answer)  # journaled, not yet renamed: as if the terminal died here
    monkeypatch.undo()
    stray = files.faces.folder / ".00000000-0000-4000-8000-00000000ffff.tmp"  # died before its commit
    stray.write_bytes(b"<?xml half")
    again = ClinicFiles(tmp_path / "terminal", Registry())
    again.open()
    names = _listing(again.faces.folder)
    assert len(names) == 1 and FACE_NAME.match(names[0])
    assert read_document((again.faces.folder / names[0]).read_bytes())


def test_torn_journal_line_is_not_a_commit(tmp_path, files):
    files.write_face(*CASES["valid"])
    with open(files.faces.journal, "ab") as f:
        f.write(b"00000000-0000-4000-8000-000000000002 OQSsiq")  # power lost mid-append
    again = FaceStore(tmp_path / "terminal")
    again.open()
    assert again.count == 1 and again.journal.read_bytes().endswith(b".xml\n")


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ClinicFilesError, match="not a folder"):
        ClinicFiles(blocker / "terminal", Registry()).open()


def test_writer_thread_reports_each_outcome(files, no_thread_leaks):
    outcomes = []
    files.start()
    try:
        files.submit(FaceJob(*CASES["valid"], lambda *outcome: outcomes.append(outcome)))
        files.submit(FaceJob(*CASES["valid"], lambda *outcome: outcomes.append(outcome)))
        deadline = dt.datetime.now() + dt.timedelta(seconds=5)
        while len(outcomes) < 2 and dt.datetime.now() < deadline:
            pass
    finally:
        files.stop()
    assert [o[0] for o in outcomes] == [CASES["valid"][0].id] * 2
    assert outcomes[0][1] == outcomes[1][1] and outcomes[0][2] is None


# --- req/ → res/ -------------------------------------------------------------------------------

def _request(insurer="99999999", symbol="ウケツケ", number="1234567", branch="01", birth="19890331",
             encoding="Shift_JIS", arbitrary="REQ0001") -> bytes:
    text = (f'<?xml version="1.0" encoding="{encoding}"?>\r\n<XmlMsg><MessageHeader>'
            f"<QualificationConfirmationDate>20250303</QualificationConfirmationDate>"
            f"<MedicalInstitutionCode>9999999999</MedicalInstitutionCode>"
            f"<ArbitraryFileIdentifier>{arbitrary}</ArbitraryFileIdentifier></MessageHeader>"
            f"<MessageBody><QualificationConfirmSearchInfo><InsurerNumber>{insurer}</InsurerNumber>"
            f"<InsuredCardSymbol>{symbol}</InsuredCardSymbol>"
            f"<InsuredIdentificationNumber>{number}</InsuredIdentificationNumber>"
            f"<InsuredBranchNumber>{branch}</InsuredBranchNumber><Birthdate>{birth}</Birthdate>"
            f"<LimitApplicationCertificateRelatedConsFlg>1</LimitApplicationCertificateRelatedConsFlg>"
            f"</QualificationConfirmSearchInfo></MessageBody></XmlMsg>")
    return text.encode("cp932" if encoding == "Shift_JIS" else "utf-8")


@pytest.fixture
def served(tmp_path):
    registry = Registry([RegistryEntry(sha256="a" * 64, insured=HANAKO),
                         RegistryEntry(sha256="b" * 64, qualification_validity=3,
                                       insured=HANAKO.model_copy(update={"number": "555"})),
                         RegistryEntry(sha256="c" * 64, insured=HANAKO.model_copy(update={"number": "777"})),
                         RegistryEntry(sha256="d" * 64, insured=HANAKO.model_copy(update={"number": "777"}))])
    clinic = ClinicFiles(tmp_path / "terminal", registry, clock=lambda: CHECKED_IN)
    clinic.open()
    return clinic


def _serve(clinic, name, data) -> dict:
    (clinic.requests_dir / name).write_bytes(data)
    assert clinic.poll() == 0  # a file is answered once it stood still for one poll
    assert clinic.poll() == 1
    assert _listing(clinic.requests_dir) == []
    response = clinic.responses_dir / name.replace("req_", "res_")
    return read_document(response.read_bytes())


@pytest.mark.parametrize("number,birth,validity", [("1234567", "19890331", "1"), ("555", "19890331", "3"),
                                                   ("1234567", "19900101", "4"), ("999", "", "4"),
                                                   ("777", "19890331", "5")])
def test_number_lookup_answers_from_the_registry(served, number, birth, validity):
    fields = _serve(served, "OQSsiquc01req_20250303091530123.xml", _request(number=number, birth=birth))
    assert text_at(fields, "MessageHeader", "ReferenceClassification") == "2"
    assert text_at(fields, "MessageHeader", "ArbitraryFileIdentifier") == "REQ0001"
    assert text_at(fields, "MessageHeader", "SegmentOfResult") == "1"
    assert text_at(fields, "MessageBody", "QualificationValidity") == validity
    has_record = "ResultList" in dict(dict(fields)["MessageBody"])
    assert has_record == (validity in ("1", "3"))


def test_utf8_request_and_six_digit_insurer(served):
    served.registry.put(RegistryEntry(sha256="e" * 64, insured=HANAKO.model_copy(
        update={"insurer_number": "  123456", "number": "42"})))
    fields = _serve(served, "OQSsiquc01req_x.xml", _request(insurer="123456", number="42", symbol="", encoding="UTF-8"))
    assert text_at(fields, "MessageBody", "QualificationValidity") == "1"


@pytest.mark.parametrize("data,code", [
    (b"not xml at all", "UKT001"),
    (b'<?xml version="1.0" encoding="UTF-8"?><XmlMsg><MessageBody>', "UKT001"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><XmlMsg>&a;</XmlMsg>', "UKT001"),
    (b'<?xml version="1.0" encoding="ISO-2022-JP"?><XmlMsg/>', "UKT001"),
    (b"<Other/>", "UKT001"),
    (b"<XmlMsg><MessageHeader/></XmlMsg>", "UKT001"),
    (b"<XmlMsg><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>12</InsurerNumber>"
     b"</QualificationConfirmSearchInfo></MessageBody></XmlMsg>", "UKT002"),
    (None, "UKT002"),  # a bad birth date
    (b"\xff\xfe\x00<", "UKT001"),
])
def test_malformed_requests_get_an_error_response(served, data, code):
    data = data if data is not None else _request(birth="1989-03-31")
    fields = _serve(served, "OQSsiquc01req_bad.xml", data)
    assert text_at(fields, "MessageHeader", "SegmentOfResult") == "9"
    assert text_at(fields, "MessageHeader", "ErrorCode") == code
    assert text_at(fields, "MessageBody", "ProcessingResultStatus") == "2"


def test_unsupported_and_oversized_requests_and_foreign_names(served):
    fields = _serve(served, "OQSmuquc01req_bulk.xml", _request())
    assert text_at(fields, "MessageHeader", "ErrorCode") == "UKT003"
    fields = _serve(served, "OQSsiquc01req_big.xml", b"<XmlMsg>" + b" " * 70_000 + b"</XmlMsg>")
    assert text_at(fields, "MessageHeader", "ErrorCode") == "UKT004"
    (served.requests_dir / "notes.txt").write_text("not a request")
    served.poll(), served.poll()
    assert _listing(served.requests_dir) == ["notes.txt"]  # left alone, not answered


def test_response_folder_full_keeps_the_request_for_later(served, monkeypatch):
    (served.requests_dir / "OQSsiquc01req_1.xml").write_bytes(_request())
    served.poll()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    assert served.poll() == 0
    assert _listing(served.requests_dir) == ["OQSsiquc01req_1.xml"] and _listing(served.responses_dir) == []
    assert any("disk is full" in p for p in served.problems)
    monkeypatch.undo()
    assert served.poll() == 1 and _listing(served.responses_dir) == ["OQSsiquc01res_1.xml"]


def test_document_reader_refuses_entities():
    with pytest.raises(DocumentError, match="DOCTYPE"):
        read_document(b'<!DOCTYPE XmlMsg SYSTEM "file:///etc/passwd"><XmlMsg/>')
    assert read_document(build_document([("A", "x")], UTF8).data) == [("A", "x")]


# --- the terminal's ack waits for the file ------------------------------------------------------

class _Client:
    def __init__(self):
        self.published = []

    def publish(self, topic, payload, qos=0):
        self.published.append((topic, payload))


def _terminal(files):
    from firmware.config import Broker
    from terminal.app import ReferenceTerminal

    terminal = ReferenceTerminal(Broker(insecure_local=True), site="s1", registry=files.registry, files=files)
    terminal._client = _Client()
    return terminal


def _deliver(terminal, message: ResultMessage):
    terminal._on_message(None, None, SimpleNamespace(topic="uketsuke/v1/s1/r1/result", payload=message.to_json()))


def _acks(terminal):
    return [p for t, p in terminal._client.published if t.endswith("/ack")]


def test_verified_result_is_acked_after_its_file_and_a_failed_write_is_not_acked(tmp_path, monkeypatch,
                                                                                 no_thread_leaks):
    from tests.proofs import Pki, pin_result

    holder = Pki().holder()
    files = ClinicFiles(tmp_path / "terminal", Registry([RegistryEntry(sha256=__import__("hashlib").sha256(
        holder.cert_der).hexdigest(), insured=HANAKO)]))
    terminal = _terminal(files)
    files.start()
    try:
        good = pin_result(holder, None)
        _deliver(terminal, good)
        assert terminal.wait_for(lambda view: good.id in view.acknowledged, 5)
        assert len(_acks(terminal)) == 1
        name = terminal.view.face_files[good.id]
        assert text_at(read_document((files.faces.folder / name).read_bytes()),
                       "MessageBody", "ResultList", "ResultOfQualificationConfirmation", "Name") == "番号 花子"
        _deliver(terminal, good)  # a resend: acked again, no second file
        assert terminal.wait_for(lambda view: len(_acks(terminal)) == 2, 5)
        assert _listing(files.faces.folder) == [name]

        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        second = pin_result(holder, None)
        _deliver(terminal, second)
        assert terminal.wait_for(lambda view: view.file_errors, 5)
        assert second.id not in terminal.view.acknowledged and len(_acks(terminal)) == 2
        assert "disk is full" in terminal.view.file_errors[0]
        monkeypatch.undo()
        _deliver(terminal, second)  # the kiosk's resend tries the file again
        assert terminal.wait_for(lambda view: second.id in view.acknowledged, 5)
        assert len(_listing(files.faces.folder)) == 2

        forged = pin_result(holder, None, forged=True)  # not verified: no file, acked at once
        _deliver(terminal, forged)
        assert forged.id in terminal.view.acknowledged and forged.id not in terminal.view.face_files
    finally:
        files.stop()
