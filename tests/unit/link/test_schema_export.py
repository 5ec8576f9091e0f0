"""``docs/schemas/*.schema.json`` are what ``make schemas`` writes from the models today.

CI runs ``make test``, so this test is the check that the committed schemas are current: after a
model changes, run ``make schemas`` and commit the files.
"""

import json
from pathlib import Path

from firmware.link import export_schemas
from firmware.link.schemas import MESSAGES

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def test_the_committed_schemas_are_current(tmp_path):
    written = export_schemas.export(tmp_path)
    fresh = {path.name: path.read_text(encoding="utf-8") for path in written}
    committed = {path.name: path.read_text(encoding="utf-8") for path in COMMITTED.glob("*.schema.json")}
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"docs/schemas is stale ({', '.join(stale)}): run `make schemas` and commit the files"


def test_one_schema_per_topic_and_stable_output(tmp_path):
    first = [path.read_bytes() for path in export_schemas.export(tmp_path / "a")]
    again = [path.read_bytes() for path in export_schemas.export(tmp_path / "b")]
    assert first == again
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(f"{leaf}.schema.json" for leaf in MESSAGES)
    result = json.loads((tmp_path / "a" / "result.schema.json").read_text())
    assert result["$schema"].endswith("2020-12/schema") and result["x-topic"] == "uketsuke/v1/{site}/{reader}/result"


def test_a_stale_file_is_removed(tmp_path):
    (tmp_path / "gone.schema.json").write_text("{}")
    export_schemas.export(tmp_path)
    assert not (tmp_path / "gone.schema.json").exists()


def test_the_module_runs(tmp_path, capsys):
    assert export_schemas.main([str(tmp_path)]) == 0
    assert "result.schema.json" in capsys.readouterr().out
    assert export_schemas.main(["a", "b"]) == 2
