"""Hostile import files (manifests, battle logs, fine-tuning metadata): each is refused with an ImportFailed
that names the file, leaving every table exactly as it was, or imported completely and correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from db.backup import table_counts

importers = pytest.importorskip("workbench.importers")
battle_log = pytest.importorskip("workbench.arena.battle_log")

SYSTEMS = {"sys-a": Image.new("RGB", (32, 32), (250, 0, 0)), "sys-b": Image.new("RGB", (32, 32), (0, 0, 250))}


@pytest.fixture
def study(workbench) -> str:
    """A preference study that already knows its two systems (battle logs must name known systems)."""
    workbench.create_study("imports", kind="preference", k=1)
    workbench.add_item("imports", Image.new("RGB", (32, 32), (9, 9, 9)), "seed item", outputs=SYSTEMS)
    workbench.create_study("curation", kind="curation")
    return "imports"


def _run(workbench, study: str, case, path: Path) -> dict:
    importer = case.check["importer"]
    if importer == "manifest":
        return importers.import_manifest(workbench, study, path, systems=case.check.get("systems"))
    if importer == "battles":
        return battle_log.import_battles(workbench, study, path)
    return importers.import_finetune_metadata(workbench, "curation", path)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hostile_import(
    workbench, db_url: str, study: str, hostile_dir: Path, hostile_cases: dict, import_name: str
) -> None:
    case = hostile_cases[import_name]
    path = hostile_dir / case.path
    before = table_counts(db_url)
    try:
        result = _run(workbench, study, case, path)
    except importers.ImportFailed as exc:
        assert case.expect != "ok", f"{case.name}: a valid file was refused: {exc}"
        assert path.name in str(exc), f"{case.name}: the error does not name the file: {exc}"
        assert table_counts(db_url) == before, f"{case.name}: refused, but rows were written (half-import)"
        return
    assert case.expect != "error", f"{case.name}: a hostile file was imported: {result}"
    after = table_counts(db_url)
    table, rows = case.check["table"], case.check["rows"]
    assert result["imported"] == rows and after[table] == before[table] + rows, (result, before, after)
