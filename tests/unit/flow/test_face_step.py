"""The face step: the live capture runs beside the chip read, and the chip read is one per visit.

Real models and the simulated face camera, no card: the chip read is a function the test holds back
or fails, so what is checked is the order of things, not the wire.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from firmware.card.kenmen import split_card_face
from firmware.errors import CollationRefused, ReadError
from firmware.flow.session import FaceProgress, Proof
from firmware.steps.face import ChipFace, ChipRead, FaceEngine, capture_and_decide
from hal.camera.sim import SimCamera
from hal.sim.card.catalogue import FACE_PATH_SEED
from hal.sim.card.generator import make_profile
from hal.sim.card.profile import AID_KENMEN_KAKUNIN
from hal.sim.face_scene import Person
from ui.patient import Patient

PROOF = Proof(nonce=b"\1" * 32, challenge_id=None, fresh=False)


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    """(the card photo as the chip would give it, the person on it)."""
    directory = tmp_path_factory.mktemp("card") / "profile"
    make_profile(directory, face_seed=FACE_PATH_SEED)
    record = (directory / "ef" / AID_KENMEN_KAKUNIN / "0002.bin").read_bytes()
    face = split_card_face(record)
    photo = face.photo_greyscale()
    face.wipe()
    return photo, Person.holder(directory)


class _Try:
    """One capture_and_decide on a thread, with the holder reacting to the challenge like a patient."""

    def __init__(self, person, chip: ChipRead):
        self.progress = FaceProgress()
        self.steps: list[str] = []
        self.outcome = self.error = None
        publish = self.progress.publish

        def record(snapshot):
            self.steps.append(snapshot.step)
            publish(snapshot)

        self.progress.publish = record
        camera = SimCamera()
        camera.present(person)

        class _Session:
            face = self.progress

        self.patient = Patient(person=person)
        self.reactor = threading.Thread(target=self.patient._react, args=(_Session,), daemon=True)
        self.thread = threading.Thread(target=self._run, args=(camera, chip), daemon=True)

    def _run(self, camera, chip):
        try:
            self.outcome = capture_and_decide(FaceEngine.shared(), camera, chip, self.progress, 300, 20.0)
        except BaseException as exc:
            self.error = exc

    def start(self) -> _Try:
        self.reactor.start()
        self.thread.start()
        return self

    def join(self) -> _Try:
        self.thread.join(60)
        self.progress.stop.set()
        self.reactor.join(5)
        assert not self.thread.is_alive()
        return self


def _until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_live_capture_starts_once_collation_b_is_accepted_and_runs_while_the_photo_is_read(holder):
    photo, person = holder
    accept, release = threading.Event(), threading.Event()

    def slow_chip(opened):
        accept.wait(60)
        opened()
        release.wait(60)
        return ChipFace(photo.copy(), PROOF)

    chip = ChipRead(slow_chip).start()
    attempt = _Try(person, chip).start()
    time.sleep(0.5)
    assert attempt.steps == ["card_face"]  # no challenge before the card has accepted 照合番号B
    accept.set()
    # the live frames are taken, and the capture is done, before the chip has given its photo
    _until(lambda: "chip" in attempt.steps)
    assert attempt.steps.count("capture") > 5 and chip.poll() is None
    release.set()
    attempt.join()
    assert attempt.error is None and attempt.outcome.reason in ("match", "no_match", "not_live")
    assert attempt.steps[-1] == "deciding"
    assert attempt.outcome.score is not None  # decided on the photo that came late


def test_an_unreadable_card_face_ends_the_try_before_any_challenge(holder):
    _, person = holder
    release = threading.Event()

    def refused(opened):
        release.wait(60)
        raise CollationRefused("the card face was not read in time")

    attempt = _Try(person, ChipRead(refused).start()).start()
    release.set()
    attempt.join()
    assert isinstance(attempt.error, CollationRefused) and "capture" not in attempt.steps


def test_a_photo_read_that_fails_during_the_capture_ends_the_try(holder):
    _, person = holder
    release = threading.Event()

    def pulled(opened):
        opened()
        release.wait(60)
        raise ReadError("the card left the field")

    attempt = _Try(person, ChipRead(pulled).start()).start()
    _until(lambda: attempt.steps.count("capture") > 3)
    release.set()
    attempt.join()
    assert isinstance(attempt.error, ReadError)


def test_a_chip_read_already_done_serves_the_retries(holder):
    photo, person = holder
    calls = []

    def once(opened):
        calls.append(1)
        return ChipFace(photo.copy(), PROOF)

    chip = ChipRead(once).start()
    for _ in range(2):
        attempt = _Try(person, chip).start().join()
        assert attempt.error is None and attempt.outcome.score is not None
        assert "chip" not in attempt.steps  # the photo was there before the capture was ready
    assert calls == [1]


def test_chip_read_wipe_zeroes_a_photo_that_arrives_after_the_visit():
    photo = np.full((8, 8), 200, np.uint8)
    release = threading.Event()
    chip = ChipRead(lambda opened: (release.wait(5), ChipFace(photo, PROOF))[1]).start()
    chip.wipe()  # the visit is over while the chip is still being read
    release.set()
    chip.thread.join(5)
    assert not photo.any()
    with pytest.raises(CollationRefused):
        chip.poll()


def test_chip_read_waits_with_a_limit_and_gives_way_to_stop():
    chip = ChipRead(lambda opened: threading.Event().wait(1)).start()
    stop = threading.Event()
    with pytest.raises(ReadError):
        chip.wait(0.1, stop)
    stop.set()
    assert chip.wait(5, stop) is None
    done = np.ones((2, 2), np.uint8)
    finished = ChipRead.finished(ChipFace(done, PROOF))
    assert finished.wait(0, stop).photo is done  # an answer already there is not held back by stop
