# uketsuke — the two commands that matter are `make run` and `make test` (see README.md).
# Both set the machine up first: apt packages (with sudo when not root) and a venv in .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_PACKAGES := python3-venv python3-dev gcc pkg-config \
	pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc \
	mosquitto mosquitto-clients openssl fonts-ipaexfont-gothic \
	chromium chromium-driver
export PYGAME_HIDE_SUPPORT_PROMPT := 1

.PHONY: setup run test lint bench schemas screenshots clean

setup: .stamp-apt .stamp-venv

.stamp-apt:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES)
	touch $@

.stamp-venv: pyproject.toml .stamp-apt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## The kiosk on simulated devices, an in-process broker and the reference terminal beside it.
## With no display (or HEADLESS=1) it plays a scripted check-in and saves screenshots.
run: setup
	$(BIN)/uketsuke run --demo

## The whole suite: unit, hardware-in-the-loop (pcscd+vpcd, PN532 pty emulator, mosquitto), e2e.
test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

## The link's JSON Schemas (docs/schemas/*.schema.json) from firmware/link/schemas.py; commit them.
## A unit test fails while they are stale (tests/unit/link/test_schema_export.py).
schemas: setup
	$(BIN)/python -m firmware.link.export_schemas

## The README's staff-page screenshot (docs/screenshots/staff-page.png), taken by the real-browser test
## (headless chromium against a terminal and kiosk links on a private mosquitto); commit it.
screenshots: setup
	UKETSUKE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/hil/staff/test_staff_browser.py

## Benchmarks with side-by-side baselines; results go to bench/results/*.json.
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .stamp-* screenshots var .pytest_cache
