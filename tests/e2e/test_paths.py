"""Every path of the check-in end to end over the real stacks: the card in pcscd through the vpcd driver
(pyscard on the kiosk), results over mosquitto to the reference terminal, every screen answered by
touch events the way the window posts them. Each scenario of ui/scenarios.py is one test, ending in
the message the terminal received and its verification of the proof."""

import base64

import pytest

from firmware.app import Kiosk
from firmware.card.cvc import load_issuer_keys
from firmware.config import Broker, CardPolicy, Clock, Config, Devices, Timeouts
from hal.sim.card import VirtualCard
from hal.sim.card.catalogue import make_catalogue
from hal.sim.vpcd import VpcdCard
from terminal.app import ReferenceTerminal
from tests.hil.card.conftest import VPCD_PORT, pcscd, wait_until_empty  # noqa: F401 - fixture
from tests.services import Mosquitto
from ui.demo import wire_simulation
from ui.scenarios import SCENARIOS, play

pytestmark = [pytest.mark.e2e, pytest.mark.hil]


class VpcdHand:
    """The patient's hand at a PC/SC reader: a virtual card inserted into pcscd through vpcd."""

    def __init__(self, reader_name: str):
        self.reader_name = reader_name
        self.card = None  # what the simulated card camera looks at (its profile_dir)
        self._vpcd = None

    def present(self, profile_dir) -> None:
        self.remove()
        self.card = VirtualCard(profile_dir)
        self._vpcd = VpcdCard(self.card, port=VPCD_PORT).insert()

    def remove(self) -> None:
        if self._vpcd is not None:
            self._vpcd.remove()
            self._vpcd = None
            wait_until_empty(self.reader_name)
        self.card = None


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    return make_catalogue(root, ca_dir=root / "ca")


@pytest.fixture(scope="module")
def stack(pcscd, catalogue, tmp_path_factory):  # noqa: F811 - the pcscd fixture
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    issuer_dir = next(iter(catalogue.values())).cvc_issuer_public_pem.parent
    config = Config(data_dir=tmp_path_factory.mktemp("var"),
                    broker=Broker(port=broker.port, keepalive_s=5, insecure_local=True),
                    devices=Devices(nfc=f"pcsc:{pcscd}"), card=CardPolicy(issuer_keys_dir=issuer_dir),
                    timeouts=Timeouts(context_s=5), clock=Clock(source="window"))
    terminal = ReferenceTerminal(config.broker, site=config.site_id, issuer_keys=load_issuer_keys(issuer_dir))
    terminal.start()
    assert terminal.wait_connected(10)
    kiosk = Kiosk(config)
    hand = VpcdHand(pcscd)
    kiosk.card_camera.follow(hand)
    wire_simulation(kiosk)  # a no-op here (the reader is not simulated): the camera follows the hand
    kiosk.start()
    yield kiosk, terminal, hand
    hand.remove()
    kiosk.stop()
    terminal.stop()
    broker.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_path_over_pcscd_and_mosquitto(stack, catalogue, scenario, caplog):
    kiosk, terminal, hand = stack
    line = play(scenario, kiosk, terminal, catalogue, hand=hand, timeout_s=120)
    print(scenario.name, line["seconds"], line["timeline"])
    assert line["final"] == scenario.ends
    info = catalogue[scenario.profile]
    for secret in filter(None, (info.pin, info.collation_b)):
        assert secret not in caplog.text, "a PIN or 照合番号B reached the logs"
    if scenario.ends != "done":
        assert line["result_id"] is None
        return
    assert line["terminal_received"], "the terminal never saw the result"
    with terminal.locked():
        (result,) = [r for r in terminal.view.results if r.id == line["result_id"]]
        verification = terminal.view.verifications.get(result.id)
    assert result.method.value == scenario.method and result.card_kind == info.kind
    cert = (info.directory / "ef" / "D392F000260100000001" / "000A.bin").read_bytes()
    assert base64.b64decode(result.cert_der_b64) == cert
    if scenario.method == "visual":
        assert verification is None or verification.verified is None  # staff saw the person: nothing to check
    else:
        assert verification is not None and verification.verified is True, verification
        assert verification.fresh, "the proof is over a challenge the terminal issued"
    if scenario.method == "face":
        assert result.genuineness_b64 and result.cvc_b64 and result.face_live is True
        assert result.face_score > result.face_threshold
    if scenario.method in ("pin", "smartphone"):
        assert result.signature_b64 and result.nonce_b64
    assert result.proxy is scenario.patient.get("proxy", False)
    if scenario.profile == "card-grace":
        assert result.eligibility_only and result.consent == {} and result.prescription is None
    else:
        assert set(result.consent) and result.prescription in ("electronic", "paper")
        assert all(entry.time is not None for entry in result.consent.values())
    if scenario.name == "consent-item-by-item":
        assert {k for k, v in result.consent.items() if v.flag == 1} == {"PharmacistsInfo", "AllergyInfo"}
        assert result.prescription == "paper"
    if scenario.name == "consent-same-as-before":
        assert result.consent_carried_over
        assert {k for k, v in result.consent.items() if v.flag == 1} == {"PharmacistsInfo", "DiagnosisInfo"}
    if scenario.name == "first-registration":
        assert result.registration is True
    expected_answer = scenario.registry.get("eligibility", "valid")
    assert line["answer"] == expected_answer, "the done screen shows the terminal's answer"
