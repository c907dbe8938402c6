"""GEdit-Bench statistics: the official aggregation, coverage, bootstrap CIs and paired comparisons.

Official aggregation (``calculate_statistics.py``): per language, per task type the mean of SC, of PQ and of the
per-sample O = sqrt(SC*PQ); the reported figure is the unweighted mean of the task-type means (a macro average),
repeated on the rows flagged ``intersection_exist``. Only scored rows enter the means (the official scripts never
see unscored samples); coverage reports how many there were, and ``missing_as_zero`` scores missing editor
outputs as 0 for a stricter variant.

Per-sample scores are read from the official CSV layouts (newer ``{model}/{judge}/{model}_{task}_{all|en|cn}
_vie_score.csv``; older ``{model}/{judge}/eval_results_new/{model}_{task}_gpt_score.csv``) and from this
project's ``{model}/{judge}/samples.jsonl``, into one canonical frame: model, judge, task_type, key, language,
intersection, SC, PQ, status (ok | judge_failed | missing_output).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.csvsafe import write_csv
from workbench.gedit import LANGUAGES, TASK_TYPES

METRICS = ("SC", "PQ", "O")
SUBSETS = ("fullset", "intersection")
CANONICAL = ["model", "judge", "task_type", "key", "language", "intersection", "SC", "PQ", "status"]
_NEW_SUFFIXES = ("all", "en", "cn")


class ScoresError(ValueError):
    """Scores folder or file that cannot be read as GEdit-Bench per-sample scores."""


# ---------------------------------------------------------------------------------------------------------
# Reading


def load_scores(root: Path, judge: str | None = None) -> dict[str, pd.DataFrame]:
    """Every (model, judge) table under ``root``, keyed by model (``model@judge`` when a model has several)."""
    root = Path(root)
    if not root.exists():
        raise ScoresError(f"scores folder {root} does not exist")
    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for (model, judge_label), frame in _iter_tables(root):
        if judge is None or judge_label == judge:
            frames.setdefault((model, judge_label), []).append(frame)
    if not frames:
        raise ScoresError(
            f"no per-sample scores under {root}"
            + (f" for judge {judge!r}" if judge else "")
            + " (expected *_vie_score.csv, eval_results_new/*_gpt_score.csv or samples.jsonl)"
        )
    models = [m for m, _ in frames]
    out = {}
    for (model, judge_label), parts in sorted(frames.items()):
        name = model if models.count(model) == 1 else f"{model}@{judge_label}"
        out[name] = _dedupe(pd.concat(parts, ignore_index=True), name)
    return out


def _iter_tables(root: Path):
    new_files = sorted(root.rglob("*_vie_score.csv"))
    # Prefer the language-mixed "all" files; fall back to per-language files where no "all" file exists.
    by_dir: dict[Path, list[Path]] = {}
    for path in new_files:
        by_dir.setdefault(path.parent, []).append(path)
    for folder, paths in by_dir.items():
        model, judge_label = folder.parent.name, folder.name
        parsed = [(p, _parse_new_name(p.name, model)) for p in paths]
        parsed = [(p, tt, suffix) for p, (tt, suffix) in parsed if tt]
        has_all = {tt for _, tt, suffix in parsed if suffix == "all"}
        for path, task_type, suffix in parsed:
            if suffix == "all" or task_type not in has_all:
                yield (model, judge_label), read_official_csv(path, task_type, model, judge_label)
    for path in sorted(root.rglob("eval_results_new/*_gpt_score.csv")):
        model, judge_label = path.parent.parent.parent.name, path.parent.parent.name
        task_type = _strip(path.name, f"{model}_", "_gpt_score.csv")
        if task_type in TASK_TYPES:  # skips {model}_combined_gpt_score.csv (a copy of the group files)
            yield (model, judge_label), read_official_csv(path, task_type, model, judge_label)
    for path in sorted(root.rglob("samples.jsonl")):
        yield (path.parent.parent.name, path.parent.name), read_project_jsonl(path)


def _strip(name: str, prefix: str, suffix: str) -> str | None:
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : len(name) - len(suffix)]
    return None


def _parse_new_name(name: str, model: str) -> tuple[str | None, str | None]:
    middle = _strip(name, f"{model}_", "_vie_score.csv")
    if middle is None:
        return None, None
    task_type, _, suffix = middle.rpartition("_")
    if task_type in TASK_TYPES and suffix in _NEW_SUFFIXES:
        return task_type, suffix
    return None, None


def read_official_csv(path: Path, task_type: str, model: str, judge: str) -> pd.DataFrame:
    """One official per-group CSV (either driver version) as a canonical frame."""
    df = pd.read_csv(path)
    needed = ["sementics_score", "quality_score", "intersection_exist", "instruction_language"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ScoresError(f"{path} lacks columns {missing} (has {list(df.columns)})")
    if "key" in df.columns:
        keys = df["key"].astype(str)
    elif "edited_image" in df.columns:  # old driver: .../{key}.png
        keys = df["edited_image"].astype(str).map(lambda p: Path(p).stem)
    else:
        raise ScoresError(f"{path} has neither a 'key' nor an 'edited_image' column")
    sc = pd.to_numeric(df["sementics_score"], errors="coerce")
    pq = pd.to_numeric(df["quality_score"], errors="coerce")
    return pd.DataFrame(
        {
            "model": model,
            "judge": judge,
            "task_type": task_type,
            "key": keys,
            "language": df["instruction_language"].astype(str).str.strip(),
            "intersection": df["intersection_exist"].map(lambda v: _parse_bool(v, path)),
            "SC": sc,
            "PQ": pq,
            "status": np.where(sc.notna() & pq.notna(), "ok", "judge_failed"),
        }
    )[CANONICAL]


def _parse_bool(value: object, path: Path) -> bool:
    """CSV round-trips the flag as text; parse it explicitly ("False" must not be truthy)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no", ""):
        return False
    raise ScoresError(f"{path}: cannot read intersection_exist value {value!r}")


def read_project_jsonl(path: Path) -> pd.DataFrame:
    """This project's ``samples.jsonl`` (written by ``judge.judge_run``) as a canonical frame."""
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            rows.append(
                {
                    "model": path.parent.parent.name,
                    "judge": path.parent.name,
                    "task_type": rec["task_type"],
                    "key": str(rec["key"]),
                    "language": rec["language"],
                    "intersection": bool(rec["intersection"]),
                    "SC": math.nan if rec.get("SC") is None else float(rec["SC"]),
                    "PQ": math.nan if rec.get("PQ") is None else float(rec["PQ"]),
                    "status": rec["status"],
                }
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ScoresError(f"{path}:{line_no}: bad score record ({exc!r})") from exc
    return pd.DataFrame(rows, columns=CANONICAL)


def _dedupe(df: pd.DataFrame, name: str) -> pd.DataFrame:
    ids = ["task_type", "language", "key"]
    dupes = df.duplicated(ids, keep="first")
    if dupes.any():
        first = df.loc[dupes, ids].iloc[0].tolist()
        raise ScoresError(f"{name}: {int(dupes.sum())} duplicate sample rows, e.g. {'/'.join(first)}")
    return df.reset_index(drop=True)


def export_official_csv(df: pd.DataFrame, out_root: Path, model: str, judge: str) -> list[Path]:
    """Write scored rows in the newer official layout, so upstream ``calculate_statistics.py --language all``
    can be run on this project's scores (unscored rows are left out: the official format has no place for them)."""
    folder = Path(out_root) / model / judge
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task_type in TASK_TYPES:
        rows = df[(df["task_type"] == task_type) & (df["status"] == "ok")]
        table = pd.DataFrame(
            {
                "key": rows["key"],
                "edited_image": rows["task_type"]
                + "/"
                + rows["language"]
                + "/"
                + rows["key"].astype(str)
                + ".png",
                "instruction": "",
                "sementics_score": rows["SC"],
                "quality_score": rows["PQ"],
                "intersection_exist": rows["intersection"].astype(bool),
                "instruction_language": rows["language"],
            }
        )
        path = folder / f"{model}_{task_type}_all_vie_score.csv"
        write_csv(table, path)  # neutralised like every CSV the project writes
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------------
# Aggregation


def select(
    df: pd.DataFrame, language: str, intersection_only: bool = False, missing_as_zero: bool = False
) -> pd.DataFrame:
    """Rows that enter the official means for one language/subset, with the per-sample O column added."""
    rows = df[df["language"] == language]
    if intersection_only:
        rows = rows[rows["intersection"]]
    if missing_as_zero:
        rows = rows.copy()
        missing = rows["status"] == "missing_output"
        rows.loc[missing, ["SC", "PQ"]] = 0.0
        rows.loc[missing, "status"] = "ok"
    rows = rows[rows["status"] == "ok"].copy()
    rows["O"] = np.sqrt(rows["SC"] * rows["PQ"])
    return rows


def official_table(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per task type means of SC/PQ/O and their unweighted mean over the task types present ("average")."""
    table: dict[str, dict[str, float]] = {}
    for task_type in TASK_TYPES:
        group = rows[rows["task_type"] == task_type]
        if len(group):
            table[task_type] = {m: float(group[m].mean()) for m in METRICS} | {"n": len(group)}
    present = [table[t] for t in TASK_TYPES if t in table]
    table["average"] = {m: float(np.mean([g[m] for g in present])) if present else math.nan for m in METRICS}
    table["average"]["n"] = int(sum(g["n"] for g in present))
    return table


def micro_average(rows: pd.DataFrame) -> dict[str, float]:
    """Plain mean over samples (what some third-party harnesses report; not the official figure)."""
    return {m: float(rows[m].mean()) if len(rows) else math.nan for m in METRICS}


def coverage(df: pd.DataFrame, language: str, intersection_only: bool = False) -> dict[str, int]:
    """How many samples were scored, failed in the judge, or had no edited image."""
    rows = df[df["language"] == language]
    if intersection_only:
        rows = rows[rows["intersection"]]
    counts = rows["status"].value_counts()
    scored = rows[rows["status"] == "ok"]
    return {
        "rows": len(rows),
        "scored": int(counts.get("ok", 0)),
        "judge_failed": int(counts.get("judge_failed", 0)),
        "missing_output": int(counts.get("missing_output", 0)),
        "task_types_scored": int(scored["task_type"].nunique()),
    }


def _group_arrays(rows: pd.DataFrame, columns: list[str]) -> list[np.ndarray]:
    return [
        rows.loc[rows["task_type"] == t, columns].to_numpy(float)
        for t in TASK_TYPES
        if (rows["task_type"] == t).any()
    ]


def bootstrap_ci(
    rows: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile CI of the macro average, resampling samples within each task type (stratified)."""
    rng = np.random.default_rng(seed)
    groups = _group_arrays(rows, list(METRICS))
    if not groups:
        return {m: [math.nan, math.nan] for m in METRICS}
    draws = np.mean([g[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1) for g in groups], axis=0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return {m: [float(low[i]), float(high[i])] for i, m in enumerate(METRICS)}


def paired_comparison(
    a: pd.DataFrame,
    b: pd.DataFrame,
    language: str = "en",
    intersection_only: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Macro-average difference (a - b) on samples both runs scored, with a stratified paired bootstrap CI and
    a stratified sign-flip permutation p-value (two-sided)."""
    ids = ["task_type", "key"]
    ra, rb = select(a, language, intersection_only), select(b, language, intersection_only)
    paired = ra[ids + list(METRICS)].merge(rb[ids + list(METRICS)], on=ids, suffixes=("_a", "_b"))
    rng = np.random.default_rng(seed)
    result = {"language": language, "intersection": intersection_only, "n_pairs": len(paired), "metrics": {}}
    for metric in METRICS:
        diffs = paired.assign(d=paired[f"{metric}_a"] - paired[f"{metric}_b"])
        groups = _group_arrays(diffs, ["d"])
        groups = [g[:, 0] for g in groups]
        if not groups:
            result["metrics"][metric] = dict.fromkeys(
                ("a", "b", "diff", "ci_low", "ci_high", "p_value"), math.nan
            )
            continue
        observed = float(np.mean([g.mean() for g in groups]))
        boots = np.mean([g[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1) for g in groups], axis=0)
        flips = np.mean(
            [(g * rng.choice([-1.0, 1.0], (n_boot, len(g)))).mean(axis=1) for g in groups], axis=0
        )
        p_value = (np.sum(np.abs(flips) >= abs(observed) - 1e-12) + 1) / (n_boot + 1)
        side_a = official_table(paired.rename(columns={f"{m}_a": m for m in METRICS}))["average"][metric]
        side_b = official_table(paired.rename(columns={f"{m}_b": m for m in METRICS}))["average"][metric]
        low, high = np.percentile(boots, [2.5, 97.5])
        result["metrics"][metric] = {
            "a": side_a,
            "b": side_b,
            "diff": observed,
            "ci_low": float(low),
            "ci_high": float(high),
            "p_value": float(p_value),
        }
    return result


def summarize_all(
    tables: Mapping[str, pd.DataFrame], bootstrap: int = 0, missing_as_zero: bool = False
) -> dict:
    """``scores``: {model: {lang: {subset: {task_type|"average": {SC, PQ, O}}}}} (NaN -> None); ``details``:
    per-group n, coverage, micro average and (when ``bootstrap`` > 0) 95% CIs."""
    scores: dict = {}
    details: dict = {}
    for model, df in tables.items():
        for language in LANGUAGES:
            for subset in SUBSETS:
                only = subset == "intersection"
                rows = select(df, language, only, missing_as_zero)
                table = official_table(rows)
                scores.setdefault(model, {}).setdefault(language, {})[subset] = {
                    name: {m: _none_if_nan(v[m]) for m in METRICS} for name, v in table.items()
                }
                info = {
                    "n": {name: v["n"] for name, v in table.items()},
                    "coverage": coverage(df, language, only),
                    "micro_average": {m: _none_if_nan(v) for m, v in micro_average(rows).items()},
                }
                if bootstrap:
                    info["ci95"] = bootstrap_ci(rows, bootstrap)
                details.setdefault(model, {}).setdefault(language, {})[subset] = info
    return {"scores": scores, "details": details}


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def format_table(summary: dict) -> str:
    """Human-readable tables in the paper's layout (3 decimals, like the official script)."""
    lines = []
    for model, langs in summary["scores"].items():
        for language, subsets in langs.items():
            for subset, table in subsets.items():
                info = summary["details"][model][language][subset]
                cov = info["coverage"]
                if cov["rows"] == 0:
                    continue
                lines.append(
                    f"== {model} | {language} | {subset} | scored {cov['scored']}/{cov['rows']} "
                    f"(judge failed {cov['judge_failed']}, missing output {cov['missing_output']})"
                )
                lines.append(f"{'task_type':<20}{'SC':>8}{'PQ':>8}{'O':>8}{'n':>6}")
                for name, values in table.items():
                    cells = "".join(f"{_fmt(values[m]):>8}" for m in METRICS)
                    lines.append(f"{name:<20}{cells}{info['n'][name]:>6}")
                micro = "".join(f"{_fmt(info['micro_average'][m]):>8}" for m in METRICS)
                lines.append(f"{'(micro, unofficial)':<20}{micro}")
                if "ci95" in info:
                    ci = "  ".join(f"{m} [{lo:.3f}, {hi:.3f}]" for m, (lo, hi) in info["ci95"].items())
                    lines.append(f"95% bootstrap CI of the average: {ci}")
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
