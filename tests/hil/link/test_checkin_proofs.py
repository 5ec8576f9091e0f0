"""Whole check-ins to a verified ack (#11): the kiosk on simulated devices (reader, cameras) reads a
virtual card, proves the holder, and sends the result over a real mosquitto to a terminal that
trusts the cards' test CA and CVC issuer. The face path's genuineness proof is made by the kiosk
as it is in use (bound to the certificate of the tap) and verifies; so do the PIN path and a
certificate in its grace period (eligibility only) — each with no problem at all."""

import pytest

from firmware.app import Kiosk
from firmware.card.cvc import load_issuer_keys
from firmware.config import Broker, CardPolicy, Clock, Config, Timeouts
from hal.sim.card.catalogue import make_catalogue
from terminal.app import ReferenceTerminal
from ui.demo import demo_trust_anchors, wire_simulation
from ui.scenarios import BY_NAME, play

pytestmark = pytest.mark.hil

SCENARIOS = ("face", "pin", "card-grace")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    return make_catalogue(root, ca_dir=root / "ca", names=sorted({BY_NAME[name].profile for name in SCENARIOS}))


def test_face_pin_and_grace_check_ins_verify_end_to_end(mosquitto, catalogue, tmp_path, no_thread_leaks):
    issuer_dir = next(iter(catalogue.values())).cvc_issuer_public_pem.parent
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True),
                    card=CardPolicy(issuer_keys_dir=issuer_dir), timeouts=Timeouts(context_s=5),
                    clock=Clock(source="window"))
    terminal = ReferenceTerminal(config.broker, site=config.site_id, issuer_keys=load_issuer_keys(issuer_dir),
                                 trust_anchors=demo_trust_anchors(info.directory for info in catalogue.values()))
    terminal.start()
    kiosk = Kiosk(config)
    try:
        assert terminal.wait_connected(10) and terminal.trust_anchors
        wire_simulation(kiosk)
        kiosk.start()
        for name in SCENARIOS:
            line = play(BY_NAME[name], kiosk, terminal, catalogue, timeout_s=60)
            assert line["terminal_received"], name
            with terminal.locked():
                (result,) = [r for r in terminal.view.results if r.id == line["result_id"]]
                verification = terminal.view.verifications[result.id]
            assert (verification.verified, verification.fresh, verification.problems) == (True, True, ()), name
            assert result.method.value == BY_NAME[name].method
            if name == "face":
                assert result.genuineness_b64 and result.face_score > result.face_threshold
            if name == "card-grace":
                assert result.cert_status.value == "grace" and result.eligibility_only and not result.consent
    finally:
        kiosk.stop()
        terminal.stop()
