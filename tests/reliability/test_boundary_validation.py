"""Every text and JSON value is checked where it enters: NUL, NaN and Infinity are refused with the field (and,
for imports, the file and line) named, on both backends, so a SQLite backup always restores on PostgreSQL.
Malformed import files get a clear ImportFailed instead of a traceback."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
from PIL import Image

from db.backup import restore, snapshot, table_counts
from workbench.importers import ImportFailed, import_finetune_metadata, import_manifest

IMG = Image.new("RGB", (16, 16), (10, 20, 30))
OUT = {"a": Image.new("RGB", (16, 16), (200, 0, 0)), "b": Image.new("RGB", (16, 16), (0, 0, 200))}


@pytest.fixture
def studies(workbench) -> None:
    workbench.create_study("p", kind="preference", k=1)
    workbench.create_study("c", kind="curation", k=1)


HOSTILE_CALLS = {
    "study name": lambda wb: wb.create_study("bad\x00name"),
    "guidelines": lambda wb: wb.create_study("g", guidelines="read\x00me"),
    "reason 2": lambda wb: wb.create_study("r", kind="curation", reasons=["ok", "b\x00d"]),
    "rater handle": lambda wb: wb.add_rater("ev\x00il"),
    "system name": lambda wb: wb.add_item("p", IMG, "x", outputs={"a\x00": IMG, "b": IMG}),
    "category": lambda wb: wb.add_item("p", IMG, "x", category="c\x00", outputs=OUT),
    "key": lambda wb: wb.add_item("p", IMG, "x", key="k\x00", outputs=OUT),
    "language": lambda wb: wb.add_item("p", IMG, "x", language="e\x00n", outputs=OUT),
    "metadata.score": lambda wb: wb.add_item("p", IMG, "x", metadata={"score": math.nan}, outputs=OUT),
    "metadata.deep[1]": lambda wb: wb.add_item("p", IMG, "x", metadata={"deep": [1, math.inf]}, outputs=OUT),
    "metadata.n": lambda wb: wb.add_item("p", IMG, "x", metadata={"n": "a\x00b"}, outputs=OUT),
    "a key in metadata": lambda wb: wb.add_item("p", IMG, "x", metadata={"k\x00": 1}, outputs=OUT),
    "filter_score": lambda wb: wb.add_candidate("c", IMG, "x", OUT["a"], filter_score=math.nan),
    "filter_reason": lambda wb: wb.add_candidate("c", IMG, "x", OUT["a"], filter_reason="r\x00"),
    "instruction is 3000000 characters": lambda wb: wb.add_item("p", IMG, "x" * 3_000_000, outputs=OUT),
}


@pytest.mark.parametrize("field", list(HOSTILE_CALLS))
def test_unstorable_values_are_refused_naming_the_field(workbench, studies, db_url: str, field: str) -> None:
    before = table_counts(db_url)
    with pytest.raises(ValueError) as refused:
        HOSTILE_CALLS[field](workbench)
    assert field.split(" is ")[0] in str(refused.value), str(refused.value)
    assert "DataError" not in type(refused.value).__name__
    assert table_counts(db_url) == before


def _manifest(tmp_path: Path, lines: list[str], name: str = "m.jsonl") -> Path:
    for n in ("s.png", "a.png", "b.png"):
        IMG.save(tmp_path / n)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ROW = '{"source": "s.png", "instruction": "make it red", "outputs": {"a": "a.png", "b": "b.png"}%s}'


def test_import_names_file_and_line_of_nan_metadata(workbench, studies, db_url: str, tmp_path: Path) -> None:
    path = _manifest(tmp_path, [ROW % "", ROW % ', "key": "k2"', ROW % ', "metadata": {"x": NaN}'])
    before = table_counts(db_url)
    with pytest.raises(ImportFailed, match=r"m\.jsonl:3: metadata\.x must be a finite number"):
        import_manifest(workbench, "p", path)
    assert table_counts(db_url) == before


def test_malformed_manifests_are_refused_clearly(workbench, studies, tmp_path: Path) -> None:
    path = _manifest(tmp_path, [ROW % (', "metadata": ' + "[" * 100_000 + "]" * 100_000)])
    with pytest.raises(ImportFailed, match=r"m\.jsonl:1: .*(nested|JSON)"):
        import_manifest(workbench, "p", path)
    path = _manifest(tmp_path, [ROW % ', "instruction": "other"'])
    with pytest.raises(ImportFailed, match=r"m\.jsonl:1: key 'instruction' is given twice"):
        import_manifest(workbench, "p", path)
    path = _manifest(tmp_path, [ROW % "", ROW % ', "key": "k"'])
    path.write_bytes(path.read_bytes().replace(b"make it red", b"make \xff red", 1))
    with pytest.raises(ImportFailed, match=r"m\.jsonl:1: not valid UTF-8"):
        import_manifest(workbench, "p", path)
    big = _manifest(
        tmp_path, ["source,instruction,output:a,output:b", "s.png," + "x" * 200_000 + ",a.png,b.png"], "m.csv"
    )
    with pytest.raises(ImportFailed, match=r"m\.csv:2: "):
        import_manifest(workbench, "p", big)
    huge = _manifest(
        tmp_path, ["source,instruction,output:a,output:b", "s.png," + "x" * 100_000 + ",a.png,b.png"], "m.csv"
    )
    with pytest.raises(ImportFailed, match=r"m\.csv:2: instruction is 100000 characters long"):
        import_manifest(workbench, "p", huge)


def test_a_csv_with_a_byte_order_mark_imports(workbench, studies, tmp_path: Path) -> None:
    path = _manifest(
        tmp_path, ["source,instruction,output:a,output:b", "s.png,make it red,a.png,b.png"], "m.csv"
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert import_manifest(workbench, "p", path)["imported"] == 1


def test_duplicate_targets_in_finetune_metadata_name_both_lines(workbench, studies, tmp_path: Path) -> None:
    for n in ("s.png", "t.png"):
        IMG.save(tmp_path / n)
    entry = '"t.png": {"ref_image_path": "s.png", "caption": "%s"}'
    path = tmp_path / "metadata.json"
    path.write_text("{\n " + entry % "one" + ",\n " + entry % "two" + "\n}\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"key 't\.png' is given twice \(line 2 and line 3\)"):
        import_finetune_metadata(workbench, "c", path)


def test_restore_refuses_a_file_that_is_not_a_snapshot(tmp_path: Path) -> None:
    for name, data in (("plain.txt", b"hello"), ("random.gz", gzip.compress(bytes(range(256)) * 4))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="not a workbench snapshot"):
            restore(tmp_path / name, f"sqlite:///{tmp_path / (name + '.db')}")


def test_restore_names_an_unportable_row_of_an_old_backup(tmp_path: Path) -> None:
    from workbench.service import Workbench

    url = f"sqlite:///{tmp_path / 'a.db'}"
    wb = Workbench(db_url=url, data_dir=tmp_path / "data")
    wb.init()
    wb.create_study("old")
    wb.close()
    snap = tmp_path / "snap.jsonl.gz"
    snapshot(url, snap)
    lines = gzip.decompress(snap.read_bytes()).decode().splitlines()
    lines = [line.replace('"guidelines": ""', '"guidelines": "x\\u0000y"') for line in lines]
    snap.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(ValueError, match=r"studies row 1: column 'guidelines' holds a NUL"):
        restore(snap, f"sqlite:///{tmp_path / 'b.db'}")


@pytest.mark.postgres
def test_a_sqlite_backup_after_hostile_writes_restores_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    from workbench.service import Workbench

    url = f"sqlite:///{tmp_path / 'a.db'}"
    wb = Workbench(db_url=url, data_dir=tmp_path / "data")
    wb.init()
    wb.create_study("p", kind="preference", k=1)
    wb.create_study("c", kind="curation", k=1)
    wb.add_item("p", IMG, "fine", outputs=OUT, metadata={"ok": 1.5})
    for call in HOSTILE_CALLS.values():
        with pytest.raises(ValueError):
            call(wb)
    wb.close()
    snap = tmp_path / "snap.jsonl.gz"
    counts = snapshot(url, snap)
    assert restore(snap, pg_url) == counts
