"""Write the link's JSON Schemas: ``python -m firmware.link.export_schemas [DIR]`` (``make schemas``).

One file per topic leaf, ``<leaf>.schema.json`` (draft 2020-12, from the pydantic models in
:mod:`firmware.link.schemas`), into ``docs/schemas/`` by default. The output is stable (sorted keys,
two-space indent, a final newline), so ``tests/unit/link/test_schema_export.py`` can fail when the
committed files no longer match the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from firmware.link.schemas import MESSAGES, SCHEMA_VERSION, TOPIC_ROOT

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_of(leaf: str) -> dict[str, Any]:
    """The JSON Schema of the message on topic ``leaf``, with its dialect, id and topic."""
    schema = MESSAGES[leaf].model_json_schema()
    schema["$schema"] = DIALECT
    schema["$id"] = f"urn:uketsuke:v{SCHEMA_VERSION}:{leaf}"
    schema["x-topic"] = f"{TOPIC_ROOT}/{{site}}/{{reader}}/{leaf}"
    schema["x-version"] = SCHEMA_VERSION
    return schema


def render(leaf: str) -> str:
    return json.dumps(schema_of(leaf), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema into ``directory`` (created if missing); remove stale ``*.schema.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for leaf in sorted(MESSAGES):
        path = directory / f"{leaf}.schema.json"
        path.write_text(render(leaf), encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob("*.schema.json")) - set(written):
        stale.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m firmware.link.export_schemas [DIR]", file=sys.stderr)
        return 2
    for path in export(Path(args[0]) if args else DEFAULT_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
