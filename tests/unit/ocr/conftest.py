"""Shared fixtures for the card-face OCR tests: one loaded recogniser per session (loading takes ~0.3 s)."""

from pathlib import Path

import pytest

MODELS_OCR = Path(__file__).resolve().parents[3] / "models" / "ocr"


@pytest.fixture(scope="session")
def recognizer():
    from firmware.card.ocr.model import load_recognizer

    return load_recognizer(MODELS_OCR, threads=1)
