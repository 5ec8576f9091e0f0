import pytest

from hal.contracts import BeepPattern, Camera, Indicators, Speaker, StatusColour, Utterance
from hal.errors import BackendUnavailable, BadBackend
from hal.registry import BACKENDS, open_device, parse_spec


def test_spec_keeps_the_argument_whole():
    spec = parse_spec("nfc", "nfcpy:tty:S0:pn532")
    assert (spec.kind, spec.argument, spec.text) == ("nfcpy", "tty:S0:pn532", "nfcpy:tty:S0:pn532")
    assert parse_spec("nfc", "pcsc:Virtual PCD 00 00").argument == "Virtual PCD 00 00"


@pytest.mark.parametrize(("role", "text"), [("nfc", "usb"), ("camera", "webcam:0"), ("lamp", "sim")])
def test_unknown_backend_lists_what_is_allowed(role, text):
    with pytest.raises(BadBackend) as caught:
        parse_spec(role, text)
    assert "must be one of" in str(caught.value) or "allowed" in str(caught.value)


@pytest.mark.parametrize("role", sorted(BACKENDS))
def test_every_role_has_a_sim_backend(role):
    device = open_device(role, "sim")
    assert device.spec == "sim"
    device.start()
    device.close()
    device.close()  # idempotent


def test_sim_camera_serves_copies():
    camera = open_device("camera", "sim:320x240")
    assert isinstance(camera, Camera)
    frame = camera.capture()
    assert frame.shape == (240, 320, 3)
    import numpy as np

    scene = np.full((10, 10, 3), 9, np.uint8)
    camera.show(scene)
    got = camera.capture()
    got.fill(0)
    assert camera.capture()[0, 0, 0] == 9
    with pytest.raises(ValueError):
        camera.show(np.zeros((4, 4), np.uint8))


def test_sim_indicators_and_speaker_record_history():
    lights = open_device("indicators", "sim")
    assert isinstance(lights, Indicators)
    lights.set_status(StatusColour.OK)
    lights.beep(BeepPattern.ERROR)
    assert lights.history == [("status", StatusColour.OK, False), ("beep", BeepPattern.ERROR)]
    speaker = open_device("speaker", "sim")
    assert isinstance(speaker, Speaker)
    speaker.say(Utterance("カードを置いてください"))
    assert speaker.history[-1][1].language == "ja"


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(BadBackend, match="four BCM pins"):
        open_device("indicators", "gpiozero:1,2")
    with pytest.raises(BadBackend, match="camera number"):
        open_device("camera", "picamera2:front")
    with pytest.raises(BadBackend, match="WIDTHxHEIGHT"):
        open_device("camera", "sim:big")


def test_picamera2_missing_gives_install_hint():
    camera = open_device("camera", "picamera2:0")  # module imports lazily: opening works anywhere
    with pytest.raises(BackendUnavailable, match="python3-picamera2"):
        camera.start()


def test_replay_camera_plays_a_folder(tmp_path):
    import cv2
    import numpy as np

    for index, value in enumerate((10, 200)):
        cv2.imwrite(str(tmp_path / f"{index}.png"), np.full((8, 8, 3), value, np.uint8))
    camera = open_device("camera", f"replay:{tmp_path}")
    camera.start()
    assert [int(camera.capture()[0, 0, 0]) for _ in range(3)] == [10, 200, 10]
    camera.close()
