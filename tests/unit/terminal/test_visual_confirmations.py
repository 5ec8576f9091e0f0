"""目視確認 face files: each staff OK this terminal sent is spent on that reader's next visual result;
a visual result without one is flagged and gets no file (terminal/visual.py, terminal/app.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest

from firmware.link.schemas import AckMessage, CommandName, Method, Reply
from terminal.clinic_files import ClinicFiles
from terminal.clinic_files.content import NOTICES, VISUAL_NOTICE, face_notice
from terminal.clinic_files.documents import read_document, text_at
from terminal.registry import Registry
from terminal.visual import UNCONFIRMED, VisualConfirmations
from tests.unit.terminal.fakes import deliver, offline_terminal, visual_result
from tests.unit.terminal.samples import CASES, golden_path, result

T0 = dt.datetime(2025, 3, 3, 0, 15, tzinfo=dt.UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def book(clock):
    return VisualConfirmations(window_s=600, skew_s=60, clock=clock)


def _at(seconds: float, **fields):
    return visual_result(ts=T0 + dt.timedelta(seconds=seconds), **fields)


@pytest.fixture(scope="module")
def holder():
    from tests.proofs import Pki

    return Pki().holder()


def _visual(holder, **fields):
    """A visual result over a real certificate (the registry answers 有効 for it)."""
    return visual_result(cert_der_b64=base64.b64encode(holder.cert_der).decode(), **fields)


# --- the ledger --------------------------------------------------------------------------------

def test_an_ok_confirms_the_readers_next_visual_result_once(book, clock):
    book.sent("s1", "r1", "sato", "c1")
    clock.advance(120)
    ok = book.spend(_at(100))
    assert (ok.staff, ok.command_id, ok.at) == ("sato", "c1", T0)
    assert book.spend(_at(110)) is None  # spent: a second visual result is not confirmed by it


def test_an_ok_confirms_only_its_own_reader(book):
    book.sent("s1", "r1", "sato", "c1")
    assert book.spend(_at(5, reader="r2")) is None
    assert book.spend(_at(5, site="s2")) is None
    assert book.spend(_at(5)).command_id == "c1"


def test_window_and_clock_skew(book, clock):
    book.sent("s1", "r1", "sato", "c1")
    assert book.spend(_at(601)) is None  # built after the window: the OK was for another visit
    assert book.spend(_at(-61)) is None  # built before the OK, beyond the kiosk's clock skew
    assert book.spend(_at(-59)).command_id == "c1"  # a kiosk clock a little behind ours


def test_a_result_long_in_the_outbox_is_still_confirmed_by_its_time(book, clock):
    book.sent("s1", "r1", "sato", "c1")
    clock.advance(500)  # the broker was away; the result arrives late but was built in time
    assert book.spend(_at(30)).command_id == "c1"


def test_stale_oks_expire_and_older_ones_of_the_reader_are_dropped(book, clock):
    book.sent("s1", "r1", "sato", "old")  # that visit was cancelled after the OK
    clock.advance(300)
    book.sent("s1", "r1", "suzuki", "new")
    book.sent("s1", "r2", "sato", "other reader")
    clock.advance(20)
    assert book.spend(_at(310)).command_id == "new"  # the latest OK before the result
    assert [ok.command_id for ok in book.waiting] == ["other reader"]
    clock.advance(700)
    book.spend(_at(1000))
    assert book.waiting == []  # past the window: nothing left to confirm


def test_an_ok_the_kiosk_did_not_take_is_dropped(book):
    book.sent("s1", "r1", "sato", "taken")
    book.sent("s1", "r1", "sato", "not-waiting")
    book.sent("s1", "r1", "sato", "busy")
    assert book.answered("taken", Reply(id="taken", ok=True, detail={"accepted": True})) is None
    assert book.answered("not-waiting", Reply(id="not-waiting", ok=True, detail={"accepted": False})).command_id \
        == "not-waiting"
    assert book.answered("busy", Reply(id="busy", ok=False, error="the kiosk is busy")).command_id == "busy"
    assert [ok.command_id for ok in book.waiting] == ["taken"]


def test_other_methods_spend_nothing(book):
    book.sent("s1", "r1", "sato", "c1")
    assert book.spend(_at(5, method=Method.PIN)) is None
    assert len(book.waiting) == 1


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="window"):
        VisualConfirmations(window_s=0)


# --- the face file -----------------------------------------------------------------------------

def test_visual_golden_file_says_how_the_holder_was_confirmed():
    fields = read_document(golden_path("visual", "utf8").read_bytes())
    assert text_at(fields, "MessageBody", "ProcessingResultMessage") == VISUAL_NOTICE
    assert "目視確認".encode("cp932") in golden_path("visual", "sjis").read_bytes()
    assert text_at(fields, "MessageBody", "ResultList", "ResultOfQualificationConfirmation", "Name") == "番号 花子"
    assert text_at(read_document(golden_path("valid", "utf8").read_bytes()), "MessageBody",
                   "ProcessingResultMessage") == ""  # a card-reader check says nothing of the kind


def test_visual_notice_follows_the_certificates():
    message = result("visual", method=Method.VISUAL, cert_status="expiring")
    assert face_notice(message) == NOTICES[message.cert_status] + VISUAL_NOTICE
    assert face_notice(CASES["valid"][0]) is None


# --- the terminal: OK sent → face file; none → flagged, no file -------------------------------

@pytest.fixture
def terminal(tmp_path):
    files = ClinicFiles(tmp_path / "terminal", Registry())
    term = offline_terminal(files=files)
    files.start()
    yield term
    files.stop()


def _ack(terminal, result_id) -> AckMessage:
    acks = [AckMessage.model_validate_json(p) for p in terminal._client.on("ack")]
    return next(a for a in acks if a.id == result_id)


def test_a_confirmed_visual_check_gets_a_face_file_and_its_ack_waits_for_it(terminal, holder):
    sent = terminal.send_command("s1", "r1", CommandName.VISUAL_OK, staff="sato")
    assert json.loads(terminal._client.on("cmd")[0])["cmd"] == "visual_ok"
    deliver(terminal, "reply", Reply(id=sent.id, ok=True, detail={"accepted": True}))
    result = _visual(holder)
    deliver(terminal, "result", result)
    assert terminal.wait_for(lambda view: result.id in view.acknowledged, 5)
    with terminal.locked():
        name = terminal.view.face_files[result.id]
        assert terminal.view.visual_checks[result.id].staff == "sato"
    data = (terminal.files.faces.folder / name).read_bytes()
    assert VISUAL_NOTICE in text_at(read_document(data), "MessageBody", "ProcessingResultMessage")
    ack = _ack(terminal, result.id)
    assert ack.verified is None and UNCONFIRMED not in ack.problems


def test_a_visual_result_without_an_ok_is_flagged_and_gets_no_file(terminal, holder):
    result = _visual(holder)
    deliver(terminal, "result", result)
    assert result.id in terminal.view.acknowledged  # acked at once: there is no file to wait for
    assert _ack(terminal, result.id).problems == [UNCONFIRMED]
    assert terminal.view.visual_checks[result.id] is None and result.id not in terminal.view.face_files
    assert os.listdir(terminal.files.faces.folder) == []


def test_an_ok_the_kiosk_refused_confirms_nothing(terminal, holder):
    sent = terminal.send_command("s1", "r1", CommandName.VISUAL_OK, staff="sato")
    deliver(terminal, "reply", Reply(id=sent.id, ok=True, detail={"accepted": False}), correlation=sent.id.encode())
    result = _visual(holder)
    deliver(terminal, "result", result)
    assert _ack(terminal, result.id).problems == [UNCONFIRMED]


def test_an_ok_for_another_reader_confirms_nothing_and_a_resend_spends_nothing(terminal, holder):
    terminal.send_command("s1", "r2", CommandName.VISUAL_OK, staff="sato")
    result = _visual(holder)
    deliver(terminal, "result", result)
    assert terminal.view.visual_checks[result.id] is None
    other = _visual(holder, reader="r2")
    deliver(terminal, "result", other, reader="r2")
    assert terminal.wait_for(lambda view: other.id in view.face_files, 5)
    deliver(terminal, "result", other, reader="r2")  # the kiosk's resend: the same answer, no second file
    assert terminal.wait_for(lambda view: len(terminal._client.on("ack")) == 3, 5)
    assert len(os.listdir(terminal.files.faces.folder)) == 1
