"""Statistics: hand-computed values, the official CSV layouts, an independent re-implementation of the
official calculate_statistics.py, coverage of missing/failed samples, bootstrap and paired comparison."""

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.gedit import TASK_TYPES
from workbench.gedit.cli import main
from workbench.gedit.stats import (
    ScoresError,
    bootstrap_ci,
    load_scores,
    official_table,
    paired_comparison,
    select,
    summarize_all,
)

NEW_COLUMNS = [
    "key",
    "edited_image",
    "instruction",
    "sementics_score",
    "quality_score",
    "intersection_exist",
    "instruction_language",
]
OLD_COLUMNS = [
    "source_image",
    "edited_image",
    "instruction",
    "sementics_score",
    "quality_score",
    "intersection_exist",
    "instruction_language",
]


def random_rows(seed: int, per_group: int = 6) -> list[dict]:
    """Per-sample scores for all 11 groups, EN and CN rows sharing keys, integer judge scores as in practice."""
    rng = random.Random(seed)
    rows = []
    for task_type in TASK_TYPES:
        for i in range(per_group + rng.randrange(3)):
            key = f"{task_type[:3]}{i:029d}"
            inter = rng.random() < 0.7
            for lang in ("en", "cn"):
                rows.append(
                    {
                        "task_type": task_type,
                        "key": key,
                        "instruction": f"do {i}",
                        "sementics_score": rng.choice([0, 1, 3, 5, 7, 8, 9, 10]),
                        "quality_score": rng.choice([2, 4, 6, 7, 8, 9]),
                        "intersection_exist": inter,
                        "instruction_language": lang,
                    }
                )
    return rows


def write_csv(path: Path, columns: list[str], rows: list[dict], model: str) -> None:
    """One CSV in the official column layout; image paths follow results/{model}/fullset/{task}/{lang}/{key}."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for r in rows:
            base = f"/results/{model}/fullset/{r['task_type']}/{r['instruction_language']}/{r['key']}"
            paths = {"source_image": base + "_SRCIMG.png", "edited_image": base + ".png"}
            writer.writerow({c: r[c] if c in r else paths[c] for c in columns})


def write_layout(root: Path, model: str, judge: str, rows: list[dict], old: bool = False) -> None:
    """Per-group CSVs in the newer (``*_all_vie_score.csv``) or older (``eval_results_new/*_gpt_score.csv``) layout."""
    folder = root / model / judge / ("eval_results_new" if old else "")
    folder.mkdir(parents=True)
    columns, suffix = (OLD_COLUMNS, "gpt_score") if old else (NEW_COLUMNS, "all_vie_score")
    for task_type in TASK_TYPES:
        group = [r for r in rows if r["task_type"] == task_type]
        write_csv(folder / f"{model}_{task_type}_{suffix}.csv", columns, group, model)
    if old:  # the old driver's combined file repeats every row; it must not be double counted
        write_csv(folder / f"{model}_combined_gpt_score.csv", columns, rows, model)


def official_reference(folder: Path, model: str, language: str) -> dict:
    """Independent re-implementation of calculate_statistics.analyze_scores (csv module, explicit loops)."""
    out = {"fullset": {}, "intersection": {}}
    for group in TASK_TYPES:
        acc = {"fullset": ([], [], []), "intersection": ([], [], [])}
        with (folder / f"{model}_{group}_all_vie_score.csv").open() as fh:
            for row in csv.DictReader(fh):
                if row["instruction_language"] != language:
                    continue
                sc, pq = float(row["sementics_score"]), float(row["quality_score"])
                targets = ["fullset"] + (["intersection"] if row["intersection_exist"] == "True" else [])
                for t in targets:
                    for lst, value in zip(acc[t], (sc, pq, math.sqrt(sc * pq)), strict=True):
                        lst.append(value)
        for t in acc:
            out[t][group] = [sum(v) / len(v) for v in acc[t]]
    for t in out:
        out[t]["average"] = [sum(out[t][g][i] for g in TASK_TYPES) / len(TASK_TYPES) for i in range(3)]
    return out


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Canonical frame from (task_type, key, language, intersection, SC, PQ, status) tuples."""
    cols = ["task_type", "key", "language", "intersection", "SC", "PQ", "status"]
    df = pd.DataFrame(rows, columns=cols)
    df.insert(0, "judge", "j")
    df.insert(0, "model", "m")
    return df


def test_hand_computed_macro_average_with_failures_and_intersection():
    df = frame(
        [
            ("color_alter", "a", "en", True, 8.0, 2.0, "ok"),  # O = 4
            ("color_alter", "b", "en", False, 4.0, 4.0, "ok"),  # O = 4
            ("color_alter", "c", "en", True, math.nan, math.nan, "judge_failed"),
            ("text_change", "d", "en", True, 9.0, 1.0, "ok"),  # O = 3
            ("text_change", "e", "en", True, math.nan, math.nan, "missing_output"),
            ("text_change", "f", "en", False, 0.0, 9.0, "ok"),  # O = 0
            ("text_change", "g", "en", False, 6.0, 8.0, "ok"),  # O = sqrt(48)
            ("text_change", "d", "cn", True, 1.0, 1.0, "ok"),
        ]
    )
    full = official_table(select(df, "en"))
    assert full["color_alter"] == pytest.approx({"SC": 6.0, "PQ": 3.0, "O": 4.0, "n": 2})
    o_text = (3.0 + 0.0 + math.sqrt(48)) / 3
    assert full["text_change"] == pytest.approx({"SC": 5.0, "PQ": 6.0, "O": o_text, "n": 3})
    # macro, not micro: (6 + 5) / 2, not 27 / 5
    assert full["average"] == pytest.approx({"SC": 5.5, "PQ": 4.5, "O": (4.0 + o_text) / 2, "n": 5})

    inter = official_table(select(df, "en", intersection_only=True))
    assert inter["color_alter"]["SC"] == 8.0 and inter["text_change"]["SC"] == 9.0
    assert inter["average"] == pytest.approx({"SC": 8.5, "PQ": 1.5, "O": 3.5, "n": 2})

    strict = official_table(select(df, "en", missing_as_zero=True))
    assert strict["text_change"]["SC"] == pytest.approx(15.0 / 4)  # the missing output counts as 0

    summary = summarize_all({"m": df})
    cov = summary["details"]["m"]["en"]["fullset"]["coverage"]
    assert cov == {"rows": 7, "scored": 5, "judge_failed": 1, "missing_output": 1, "task_types_scored": 2}
    assert summary["scores"]["m"]["cn"]["fullset"]["average"]["SC"] == 1.0
    assert summary["details"]["m"]["en"]["fullset"]["micro_average"]["SC"] == pytest.approx(27 / 5)


def test_new_layout_matches_independent_official_implementation(tmp_path):
    rows = random_rows(seed=1)
    write_layout(tmp_path, "step1x", "qwen25vl", rows)
    tables = load_scores(tmp_path)
    assert list(tables) == ["step1x"]
    summary = summarize_all(tables)["scores"]["step1x"]
    for language in ("en", "cn"):
        ref = official_reference(tmp_path / "step1x" / "qwen25vl", "step1x", language)
        for subset in ("fullset", "intersection"):
            for group, (sc, pq, o) in ref[subset].items():
                got = summary[language][subset][group]
                assert got["SC"] == pytest.approx(sc, abs=1e-12)
                assert got["PQ"] == pytest.approx(pq, abs=1e-12)
                assert got["O"] == pytest.approx(o, abs=1e-12)


def test_old_layout_reads_the_same_numbers_and_ignores_combined(tmp_path):
    rows = random_rows(seed=2)
    write_layout(tmp_path / "new", "m", "gpt4o", rows)
    write_layout(tmp_path / "old", "m", "gpt4o", rows, old=True)
    new = summarize_all(load_scores(tmp_path / "new"))["scores"]
    old = summarize_all(load_scores(tmp_path / "old"))["scores"]
    assert old == new
    assert len(load_scores(tmp_path / "old")["m"]) == len(rows)


def test_export_round_trips_through_the_official_layout(tmp_path, capsys):
    rows = random_rows(seed=7)
    write_layout(tmp_path / "orig", "m", "qwen", rows)
    assert (
        main(["bench", "export-csv", "--scores", str(tmp_path / "orig"), "--out", str(tmp_path / "exp")]) == 0
    )
    assert "m: 11 files" in capsys.readouterr().out
    ref = official_reference(
        tmp_path / "exp" / "m" / "qwen", "m", "cn"
    )  # the exported CSVs, read as upstream does
    got = summarize_all(load_scores(tmp_path / "exp"))["scores"]["m"]["cn"]
    for subset in ("fullset", "intersection"):
        for group, (sc, pq, o) in ref[subset].items():
            assert [got[subset][group][m] for m in ("SC", "PQ", "O")] == pytest.approx([sc, pq, o], abs=1e-12)


def test_per_language_files_of_the_newer_driver(tmp_path):
    rows = random_rows(seed=8)
    write_layout(tmp_path / "all", "m", "j", rows)
    folder = tmp_path / "split" / "m" / "j"
    folder.mkdir(parents=True)
    for task_type in TASK_TYPES:
        for lang in ("en", "cn"):
            group = [r for r in rows if r["task_type"] == task_type and r["instruction_language"] == lang]
            write_csv(folder / f"m_{task_type}_{lang}_vie_score.csv", NEW_COLUMNS, group, "m")
    split = summarize_all(load_scores(tmp_path / "split"))["scores"]
    assert split == summarize_all(load_scores(tmp_path / "all"))["scores"]
    # With an "all" file present too, the per-language copies are not double counted.
    write_layout(tmp_path / "both", "m", "j", rows)
    for path in folder.iterdir():
        (tmp_path / "both" / "m" / "j" / path.name).write_bytes(path.read_bytes())
    assert len(load_scores(tmp_path / "both")["m"]) == len(rows)


def test_string_false_flag_is_not_truthy(tmp_path):
    rows = random_rows(seed=3)
    write_layout(tmp_path, "m", "j", rows)
    df = load_scores(tmp_path)["m"]
    expected = sum(1 for r in rows if r["intersection_exist"])
    assert int(df["intersection"].sum()) == expected


def test_several_judges_are_kept_apart(tmp_path):
    write_layout(tmp_path, "m", "gpt4o", random_rows(seed=4))
    write_layout(tmp_path, "m", "qwen25vl", random_rows(seed=5))
    assert sorted(load_scores(tmp_path)) == ["m@gpt4o", "m@qwen25vl"]
    assert list(load_scores(tmp_path, judge="qwen25vl")) == ["m"]


def test_bad_scores_folder_errors_clearly(tmp_path):
    with pytest.raises(ScoresError, match="no per-sample scores"):
        load_scores(tmp_path)
    folder = tmp_path / "m" / "j"
    folder.mkdir(parents=True)
    (folder / "m_color_alter_all_vie_score.csv").write_text("key,quality_score\nk,5\n")
    with pytest.raises(ScoresError, match="lacks columns"):
        load_scores(tmp_path)


def test_bootstrap_ci_brackets_the_estimate_and_is_degenerate_for_constant_scores():
    df = frame(
        [
            (t, f"{t}{i}", "en", True, float(i % 7 + 2), float(i % 5 + 3), "ok")
            for t in TASK_TYPES
            for i in range(12)
        ]
    )
    rows = select(df, "en")
    point = official_table(rows)["average"]
    ci = bootstrap_ci(rows, n_boot=500)
    for m in ("SC", "PQ", "O"):
        assert ci[m][0] < point[m] < ci[m][1]
    const = frame([(t, f"{t}{i}", "en", True, 5.0, 5.0, "ok") for t in TASK_TYPES[:2] for i in range(4)])
    assert bootstrap_ci(select(const, "en"), n_boot=50)["O"] == pytest.approx([5.0, 5.0])


def test_paired_comparison_uses_shared_samples_only():
    common = [(t, f"{t}{i}", "en", True) for t in TASK_TYPES[:3] for i in range(20)]
    a = frame(
        [(*c, 8.0, 8.0, "ok") for c in common] + [("color_alter", "only-a", "en", True, 0.0, 0.0, "ok")]
    )
    b = frame([(*c, 6.0 + (i % 2), 8.0, "ok") for i, c in enumerate(common)])
    result = paired_comparison(a, b, "en", n_boot=400)
    assert result["n_pairs"] == len(common)
    sc = result["metrics"]["SC"]
    assert sc["a"] == pytest.approx(8.0)
    assert sc["diff"] == pytest.approx(sc["a"] - sc["b"])
    assert sc["ci_low"] > 0 and sc["p_value"] < 0.01
    assert result["metrics"]["PQ"]["diff"] == 0.0 and result["metrics"]["PQ"]["p_value"] == 1.0
    same = paired_comparison(a, a, "en", n_boot=100)
    assert same["metrics"]["O"]["diff"] == 0.0


def test_cli_stats_json_shape(tmp_path, capsys):
    write_layout(tmp_path, "step1x", "qwen25vl", random_rows(seed=6))
    assert main(["bench", "stats", "--scores", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["step1x"]) == {"en", "cn"}
    assert set(data["step1x"]["en"]) == {"fullset", "intersection"}
    assert set(data["step1x"]["cn"]["intersection"]) == set(TASK_TYPES) | {"average"}
    assert set(data["step1x"]["en"]["fullset"]["average"]) == {"SC", "PQ", "O"}
    assert main(["bench", "stats", "--scores", str(tmp_path), "--bootstrap", "50"]) == 0
    text = capsys.readouterr().out
    assert "== step1x | en | fullset" in text and "95% bootstrap CI" in text
    assert np.isfinite(data["step1x"]["en"]["fullset"]["average"]["O"])
