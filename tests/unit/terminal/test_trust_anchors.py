"""Trust anchors (#11): the J-LIS roots shipped with the terminal, PEM files and folders, and one
clear error for a source that is not a CA certificate (also through ``uketsuke terminal listen``)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from hal.sim.card.throwaway_pki import ThrowAwayCa, new_rsa_key, user_certificate
from terminal.trust import JLIS_DIR, TrustAnchorError, jlis_anchors, load_trust_anchors

#: The published roots' SHA-256 fingerprints (terminal/trust/jlis/README.md): a changed file fails here.
JLIS_FINGERPRINTS = {
    "auth_ca_2015.pem": "4DCFC4CA0AAF9FB2A3081B3F0C991C320B3ACC008667A341EEAEC5AF1D58CA7D",
    "auth_ca_2023.pem": "64114F29620C24ED2631D46476A040E7EE740D956089C00B036A6A8118C322B5",
    "sign_ca_2015.pem": "19645405A1FE14377434BD55957628AC4038557C542403A2243F21C706FC9355",
    "sign_ca_2023.pem": "D227F6CDE11D35C5252178F106F843D24651944975413B539FA2FB68DBFA365F",
}
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def ca():
    return ThrowAwayCa.create("user authentication", NOW)


def pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_the_shipped_jlis_roots_are_the_published_ones():
    for name, fingerprint in JLIS_FINGERPRINTS.items():
        (certificate,) = load_trust_anchors([JLIS_DIR / name])
        assert certificate.fingerprint(hashes.SHA256()).hex().upper() == fingerprint, name
    anchors = jlis_anchors()
    assert [a.fingerprint(hashes.SHA256()).hex().upper() for a in anchors] == [
        JLIS_FINGERPRINTS["auth_ca_2015.pem"], JLIS_FINGERPRINTS["auth_ca_2023.pem"]]
    assert all("JPKI for user authentication" in a.subject.rfc4514_string() for a in anchors)
    assert load_trust_anchors(["jlis"]) == anchors


def test_files_folders_and_duplicates(ca, tmp_path):
    other = ThrowAwayCa.create("digital signature", NOW)
    (tmp_path / "one.pem").write_bytes(pem(ca.certificate))
    (tmp_path / "both.pem").write_bytes(pem(ca.certificate) + pem(other.certificate))
    (tmp_path / "notes.txt").write_text("not a certificate, and not *.pem")
    assert load_trust_anchors([tmp_path / "one.pem"]) == (ca.certificate,)
    # the folder's files in name order (both.pem, one.pem), each anchor once
    assert load_trust_anchors([tmp_path, tmp_path / "one.pem", "jlis"]) == (
        ca.certificate, other.certificate, *jlis_anchors())


def test_a_bad_source_is_one_clear_error(ca, tmp_path):
    user = user_certificate(ca, new_rsa_key(), purpose="user authentication", not_before=NOW,
                            not_after=NOW + dt.timedelta(days=30))
    (tmp_path / "user.pem").write_bytes(pem(user))
    (tmp_path / "garbage.pem").write_text("hello")
    (tmp_path / "empty").mkdir()
    for source, why in ((tmp_path / "user.pem", "is not a CA certificate"),
                        (tmp_path / "garbage.pem", "not a PEM certificate"),
                        (tmp_path / "missing.pem", "no such file or folder"),
                        (tmp_path / "empty", "holds no *.pem file")):
        with pytest.raises(TrustAnchorError, match=why.replace("*", r"\*")):
            load_trust_anchors([source])


def test_terminal_listen_refuses_a_bad_anchor_in_one_line(ca, tmp_path):
    user = user_certificate(ca, new_rsa_key(), purpose="user authentication", not_before=NOW,
                            not_after=NOW + dt.timedelta(days=30))
    (tmp_path / "user.pem").write_bytes(pem(user))
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "terminal", "listen", "--no-files",
                           "--trust-anchors", str(tmp_path / "user.pem")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "is not a CA certificate" in proc.stderr and "Traceback" not in proc.stderr
