"""Importers: happy paths for all four formats, and every refusal leaves the database untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import CurationCandidate, ImportedBattle, Item, Output
from workbench.arena.battle_log import import_battles
from workbench.importers import (
    ImportFailed,
    import_finetune_metadata,
    import_gedit_results,
    import_manifest,
)


def _counts(wb) -> tuple[int, int, int, int]:
    with wb.db.read.begin() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (Item, Output, CurationCandidate, ImportedBattle)
        )


@pytest.fixture
def tree(tmp_path: Path, solid) -> Path:
    """An import root with a few source and output images."""
    root = tmp_path / "import"
    for sub in ("src", "out/a", "out/b"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        solid(i).save(root / "src" / f"{i}.png")
        solid(100 + i).save(root / "out/a" / f"{i}.png")
        solid(200 + i).save(root / "out/b" / f"{i}.jpg")
    return root


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _items(n: int = 3) -> list[dict]:
    return [
        {"source": f"src/{i}.png", "instruction": f"edit {i}", "category": "color_alter", "key": f"k{i}",
         "output:a": f"out/a/{i}.png", "output:b": f"out/b/{i}.jpg"}
        for i in range(n)
    ]  # fmt: skip


def test_jsonl_and_csv_manifests(wb, tree):
    wb.create_study("p", k=1)
    report = import_manifest(wb, "p", _jsonl(tree / "m.jsonl", _items()))
    assert report["imported"] == 3 and _counts(wb)[:2] == (3, 6)
    csv_path = tree / "m.csv"
    csv_path.write_text(
        "source,instruction,language,output:a,output:b,key\nsrc/0.png,make it red,cn,out/a/1.png,out/b/2.jpg,c1\n"
    )
    assert import_manifest(wb, "p", csv_path)["imported"] == 1
    with wb.db.read.begin() as s:
        assert s.scalar(select(Item.language).where(Item.external_key == "c1")) == "cn"
    wb.add_rater("ann")
    shown = wb.next_item("p", "ann")
    assert Path(shown["left_path"]).is_file() and shown["left_path"].endswith(".png")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[2].update({"output:a": "out/a/missing.png"}), "file not found"),
        (lambda rows: rows[2].update({"source": "../outside.png"}), "contains '..'"),
        (lambda rows: rows[2].update({"source": "/etc/hostname"}), "outside the import root"),
        (lambda rows: rows[2].update({"key": "k0"}), "duplicate key 'k0'"),
        (lambda rows: rows[2].update({"output:zzz": "out/a/0.png"}), "unknown system"),
        (lambda rows: rows[2].pop("instruction"), "'instruction' must be a non-empty string"),
        (lambda rows: rows[2].update({"colour": "red"}), "unknown column"),
        (lambda rows: rows[2].pop("output:b"), "at least two systems"),
        (lambda rows: rows[2].update({"gold": "c"}), "gold 'c'"),
    ],
)
def test_bad_manifest_rows_import_nothing(wb, tree, mutate, message):
    wb.create_study("p", k=1)
    rows = _items()
    mutate(rows)
    manifest = _jsonl(tree / "m.jsonl", rows)
    with pytest.raises(ImportFailed, match=message) as err:
        import_manifest(wb, "p", manifest, systems=["a", "b"])
    assert str(err.value).startswith(f"{manifest}:3:")
    assert _counts(wb) == (0, 0, 0, 0)


def test_symlink_out_of_root_and_corrupt_image_are_refused(wb, tree, tmp_path):
    wb.create_study("p", k=1)
    secret = tmp_path / "secret.png"
    secret.write_bytes((tree / "src/0.png").read_bytes())
    os.symlink(secret, tree / "src" / "link.png")
    rows = _items()
    rows[1]["source"] = "src/link.png"
    with pytest.raises(ImportFailed, match=r"m.jsonl:2: .*outside the import root"):
        import_manifest(wb, "p", _jsonl(tree / "m.jsonl", rows))
    (tree / "src/bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rows = _items()
    rows[2]["source"] = "src/bad.png"
    with pytest.raises(ImportFailed, match=r"m.jsonl:3: not a readable image"):
        import_manifest(wb, "p", _jsonl(tree / "m.jsonl", rows))
    assert _counts(wb) == (0, 0, 0, 0)


def test_malformed_files_and_keys_already_in_the_study(wb, tree):
    wb.create_study("p", k=1)
    bad = tree / "bad.jsonl"
    bad.write_text(json.dumps(_items(1)[0]) + "\n{not json\n")
    with pytest.raises(ImportFailed, match=r"bad.jsonl:2: invalid JSON"):
        import_manifest(wb, "p", bad)
    import_manifest(wb, "p", _jsonl(tree / "m.jsonl", _items(2)))
    with pytest.raises(ImportFailed, match=r"m2.jsonl:2: duplicate item key 'k0' in study 'p'"):
        import_manifest(wb, "p", _jsonl(tree / "m2.jsonl", _items(3)[2:] + _items(1)))
    assert _counts(wb)[0] == 2
    with pytest.raises(ImportFailed, match="unknown study"):
        import_manifest(wb, "nope", tree / "m.jsonl")
    with pytest.raises(ImportFailed, match="unsupported manifest"):
        import_manifest(wb, "p", tree / "src/0.png")


def test_finetune_metadata_as_curation_candidates(wb, tree):
    wb.create_study("c", kind="curation", k=1)
    meta = {
        "out/a/0.png": {"ref_image_path": "src/0.png", "caption": "add a hat"},
        "out/a/1.png": {"ref_image_path": "src/1.png", "caption": "remove the car", "filter_score": 0.4},
    }
    (tree / "meta.json").write_text(json.dumps(meta, indent=2))
    assert import_finetune_metadata(wb, "c", tree / "meta.json")["imported"] == 2
    with pytest.raises(ImportFailed, match="duplicate candidate key"):
        import_finetune_metadata(wb, "c", tree / "meta.json")
    meta["out/a/2.png"] = {"ref_image_path": "../x.png", "caption": "c"}
    (tree / "meta2.json").write_text(json.dumps({"out/a/2.png": meta["out/a/2.png"]}, indent=2))
    with pytest.raises(ImportFailed, match=r"meta2.json:2: .*'\.\.'"):
        import_finetune_metadata(wb, "c", tree / "meta2.json")
    assert _counts(wb)[2] == 2
    wb.add_rater("ann")
    assert wb.next_candidate("c", "ann")["instruction"] in {"add a hat", "remove the car"}


def test_battles_as_votes(wb, tree):
    wb.create_study("arena", k=1)
    battles = [
        {"model_a": "x", "model_b": "y", "winner": "model_a", "judge": "u1", "tstamp": 1},
        {"model_a": "y", "model_b": "z", "winner": "tie (bothbad)", "judge": "u2", "tstamp": 2},
        {"model_a": "x", "model_b": "z", "winner": "model_a", "judge": "u1", "tstamp": 3},
    ]
    assert import_battles(wb, "arena", _jsonl(tree / "b.jsonl", battles))["imported"] == 3
    board = {row["system"]: row for row in wb.stats("arena", bootstrap_rounds=20)["leaderboard"]}
    assert board["x"]["votes"] == 2 and board["x"]["win_rate"] == 1.0
    with pytest.raises(ImportFailed, match=r"b.jsonl:1: this battle was already imported"):
        import_battles(wb, "arena", tree / "b.jsonl")
    (tree / "c.json").write_text(json.dumps([{"model_a": "x", "model_b": "new", "winner": "model_b"}]))
    with pytest.raises(ImportFailed, match=r"record 0: unknown system 'new'"):
        import_battles(wb, "arena", tree / "c.json")
    assert import_battles(wb, "arena", tree / "c.json", allow_new_systems=True)["imported"] == 1
    bad = [
        {"model_a": "x", "model_b": "y", "winner": "model_a", "tstamp": 9},
        {"model_a": "x", "model_b": "y", "winner": "left"},
    ]
    with pytest.raises(ImportFailed, match=r"d.jsonl:2: winner 'left'"):
        import_battles(wb, "arena", _jsonl(tree / "d.jsonl", bad))
    assert _counts(wb)[3] == 4


def test_gedit_results_tree(wb, tmp_path, solid):
    from workbench.gedit.dataset import load_bench, write_synthetic_bench

    bench = write_synthetic_bench(tmp_path / "bench" / "data.parquet", per_type=1)
    samples = load_bench(bench)
    results = tmp_path / "results"
    for n, system in enumerate(("step1x", "other")):
        for i, sample in enumerate(samples[:6]):
            folder = results / system / "fullset" / sample.task_type / sample.language
            folder.mkdir(parents=True, exist_ok=True)
            solid(300 * n + i).save(folder / f"{sample.key}.png")
    wb.create_study("g", k=1)
    report = import_gedit_results(wb, "g", results, bench)
    assert report["imported"] == 6 and report["too_few_outputs"] == len(samples) - 6
    assert import_gedit_results(wb, "g", results, bench)["imported"] == 0  # rerun: nothing new
    with wb.db.read.begin() as s:
        cats = set(s.scalars(select(Item.category)))
    assert cats <= {sample.task_type for sample in samples}
    with pytest.raises(ImportFailed, match="unknown system 'ghost'"):
        import_gedit_results(wb, "g", results, bench, systems=["step1x", "ghost"])
