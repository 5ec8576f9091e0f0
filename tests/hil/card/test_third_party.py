"""Other people's tools see our virtual card as a real one: OpenSC's JPKI driver, pcsc-tools, nfcpy.

The card is served the way a user would serve it, with ``card serve DIR --vpcd`` / ``--pn532-pty``
in a separate process.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.hil.card.conftest import missing, wait_for_card_state, wait_until_empty
from tests.hil.card.serve_main import serve_command

pytestmark = pytest.mark.hil

JPKI = "D392F000260100000001"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "opensc" if name in ("opensc-tool", "pkcs15-tool", "pkcs15-crypt") else "pcsc-tools"
        missing(f"{name} is not installed (apt-get install {package})")
    return path


class Served:
    """``card serve`` running in a subprocess until stopped with Ctrl-C (SIGINT)."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [*serve_command(), *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=os.getcwd(),
        )
        self.banner = self.process.stdout.readline()
        if "serving" not in self.banner:
            rest = self.process.communicate(timeout=10)[0]
            pytest.fail(f"card serve did not start: {self.banner}{rest}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=10)
        assert self.process.returncode == 0, output
        return output


@pytest.fixture
def served_vpcd(pcscd, card_profile):
    served = Served(str(card_profile), "--vpcd")
    wait_for_card_state(pcscd, present=True)
    yield served
    served.stop()
    wait_until_empty(pcscd)


def run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, input=stdin)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout


def reader_index(opensc_tool: str, name: str) -> str:
    listing = run(opensc_tool, "--list-readers")
    for line in listing.splitlines():
        if line.rstrip().endswith(name):
            assert re.match(r"\s*\d+\s+Yes", line), listing
            return line.split()[0]
    pytest.fail(f"opensc-tool does not list {name!r}:\n{listing}")


def test_opensc_jpki_driver_reads_and_signs(served_vpcd, pcscd, card_profile, tmp_path):
    opensc_tool, pkcs15_tool, pkcs15_crypt = (tool(n) for n in ("opensc-tool", "pkcs15-tool", "pkcs15-crypt"))
    assert "Virtual PCD 00 00" in served_vpcd.banner
    index = reader_index(opensc_tool, pcscd)
    assert run(opensc_tool, "-r", index, "-n").strip() == "jpki"

    listing = run(pkcs15_tool, "-r", index, "--list-certificates")
    assert "User Authentication Certificate" in listing and "Path           : 000a" in listing

    pem = run(pkcs15_tool, "-r", index, "--read-certificate", "01")
    certificate = x509.load_pem_x509_certificate(pem.encode())
    on_card = (card_profile / "ef" / JPKI / "000A.bin").read_bytes()
    assert on_card.startswith(certificate.public_bytes(serialization_der()))

    pins = run(pkcs15_tool, "-r", index, "--list-pins")
    assert re.search(r"User Authentication PIN.*?Tries left\s*:\s*3", pins, re.S), pins

    message = b"uketsuke terminal nonce"
    (tmp_path / "digest").write_bytes(hashlib.sha256(message).digest())
    run(pkcs15_crypt, "-r", index, "--sign", "-k", "01", "--sha-256", "--pkcs1",
        "-i", str(tmp_path / "digest"), "-o", str(tmp_path / "signature"), "--pin", "1234")
    signature = (tmp_path / "signature").read_bytes()
    certificate.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def serialization_der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_pcsc_tools_scriptor_talks_to_the_card(served_vpcd, pcscd):
    scriptor = tool("scriptor")
    script = f"00 A4 04 0C 0A {' '.join(JPKI[i:i + 2] for i in range(0, 20, 2))}\n00 A4 02 0C 02 00 06\n00 B0 00 00 20\n"
    output = run(scriptor, "-r", pcscd, stdin=script)
    assert output.count("90 00 : Normal processing.") == 3, output
    assert b"JPKIAPICCTOKEN2".hex(" ").upper() in output, output


def test_nfcpy_finds_the_served_pn532(card_profile):
    if not os.access("/dev", os.W_OK):
        pytest.skip("cannot create a link in /dev (not root)")
    import nfc
    import nfc.clf

    name = f"uketsuke-pn532-{uuid.uuid4().hex[:6]}"
    served = Served(str(card_profile), "--pn532-pty", name, "--baud", "921600")
    try:
        assert f"tty:{name}:pn532" in served.banner
        clf = nfc.ContactlessFrontend(f"tty:{name}:pn532")
        try:
            target = clf.sense(nfc.clf.RemoteTarget("106B"))
            assert target is not None
            tag = nfc.tag.activate(clf, target)
            answer = tag.send_apdu(0x00, 0xA4, 0x04, 0x0C, bytes.fromhex(JPKI))
            assert answer == b""
        finally:
            clf.close()
    finally:
        served.stop()
    assert not os.path.lexists(f"/dev/{name}")
