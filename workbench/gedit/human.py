"""Human ratings vs the VIEScore judge: import a bench run as a preference study, then correlate.

Import (through ``workbench.importers.import_gedit_results``): every bench sample for which at least two of the
chosen models produced an output becomes one item (source = ``input_image_raw``, category = task type, external
key = ``task_type/language/key``), so a rerun of the import adds only what is new.

Correlation, on the study's current votes (gold items and imported battles left out):
- pairwise: the human outcome of each vote (+1 model_a preferred, -1 model_b, 0 tie / both bad) against the
  judge's difference O(model_a) - O(model_b) on that item (also SC, PQ); Spearman and Kendall tau-b plus the
  sign agreement on decided votes; overall, per task type and per system (from that system's side);
- system level: each system's human win rate (ties count half) against its judge macro-average O;
- scores: where raters gave 0-10 scores, they describe the output they preferred; correlated with the
  judge's SC / PQ / O of that output.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.gedit.dataset import BenchSample, write_bench
from workbench.gedit.stats import METRICS, official_table, select

if TYPE_CHECKING:
    from workbench.service import Workbench

OUTCOME = {"model_a": 1.0, "model_b": -1.0, "tie": 0.0, "tie (bothbad)": 0.0}
HUMAN_SCORE_TO_JUDGE = {"semantic": "SC", "quality": "PQ", "overall": "O"}


def import_study(
    wb: Workbench,
    samples: Sequence[BenchSample],
    results_dir: Path,
    models: Sequence[str],
    study_name: str,
    k: int = 3,
) -> dict[str, Any]:
    """Create (or extend) a preference study from ``results/{model}/fullset/...`` for these samples.

    The items are made by the workbench's GEdit results-tree importer (one transaction, path-safe); the
    samples (e.g. one language) are handed to it as a bench file of just that subset.
    """
    from workbench.importers import import_gedit_results

    if len(set(models)) < 2:
        raise ValueError(f"a preference study needs at least two distinct models, got {list(models)}")
    create = _new_study(wb, study_name, k)
    with tempfile.TemporaryDirectory(prefix="gedit-subset-") as tmp:
        subset = write_bench(samples, Path(tmp) / "subset.parquet")
        report = import_gedit_results(
            wb, study_name, results_dir, subset, systems=list(models), create=create
        )
    return {**report, "study": study_name, "study_id": wb.study_info(study_name)["study_id"]}


def _new_study(wb: Workbench, name: str, k: int):  # StudySpec | None
    """The settings of a study to create with the import (None when it exists: the import extends it)."""
    from workbench.studies import StudySpec

    try:
        info = wb.study_info(name)
    except LookupError:
        return StudySpec(name, kind="preference", k=k)
    if info["kind"] != "preference":
        raise ValueError(f"study {name!r} exists and is a {info['kind']} study, not a preference study")
    return None


def _existing_keys(wb: Workbench, study_id: int) -> dict[str, int]:
    """external_key -> item id for the study's items (bench items carry their sample uid as key)."""
    from sqlalchemy import select as sql_select

    from db.models import Item

    with wb.db.read.begin() as s:
        rows = s.execute(sql_select(Item.external_key, Item.id).where(Item.study_id == study_id)).all()
    return {key: item_id for key, item_id in rows if key}


def study_votes(wb: Workbench, study: str | int) -> pd.DataFrame:
    """Current rated votes with each item's bench uid (``task_type/language/key``)."""
    from workbench.study_frames import votes_frame

    study_id = wb.study_info(study)["study_id"]
    votes = votes_frame(wb, study_id)
    if votes.empty:
        return votes.assign(uid=pd.Series(dtype=str))
    if "imported" in votes:
        votes = votes[~votes["imported"].astype(bool)]
    if "gold_winner" in votes:
        votes = votes[votes["gold_winner"].isna()]
    uid_by_item = {item_id: key for key, item_id in _existing_keys(wb, study_id).items()}
    return votes.assign(uid=votes["item_id"].map(uid_by_item)).dropna(subset=["uid"])


def human_vs_judge(wb: Workbench, study: str | int, tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Correlations between the study's human votes and the judge scores in ``tables`` (model -> frame)."""
    return correlate(study_votes(wb, study), tables)


def correlate(votes: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The report of ``human_vs_judge`` from a votes frame (model_a, model_b, winner, uid, optional scores)."""
    judge = _judge_lookup(tables)
    pairs = _pairs(votes, judge)
    report: dict[str, Any] = {
        "votes": len(votes),
        "votes_with_judge_scores": len(pairs),
        "systems_without_scores": sorted(
            (set(votes.get("model_a", [])) | set(votes.get("model_b", []))) - set(tables)
        ),
        "pairwise": {m: _rank_correlation(pairs["outcome"], pairs[f"d_{m}"]) for m in METRICS},
        "per_task_type": {},
        "per_system": {},
    }
    for task_type, group in pairs.groupby("task_type"):
        report["per_task_type"][task_type] = {
            m: _rank_correlation(group["outcome"], group[f"d_{m}"]) for m in METRICS
        }
    for system in sorted(set(pairs["model_a"]) | set(pairs["model_b"])):
        mine = pairs[(pairs["model_a"] == system) | (pairs["model_b"] == system)]
        side = np.where(mine["model_a"] == system, 1.0, -1.0)
        outcome = mine["outcome"].to_numpy() * side
        report["per_system"][system] = {
            "votes": len(mine),
            "human_win_rate": float(np.mean((outcome + 1) / 2)) if len(mine) else math.nan,
            "judge_average": _judge_average(tables[system]) if system in tables else None,
            **{m: _rank_correlation(outcome, mine[f"d_{m}"].to_numpy() * side) for m in METRICS},
        }
    report["system_level"] = _system_level(report["per_system"])
    report["scores"] = _score_correlations(votes, judge)
    return report


def _judge_lookup(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for model, df in tables.items():
        scored = df[df["status"] == "ok"].assign(O=lambda d: np.sqrt(d["SC"] * d["PQ"]), system=model)
        scored = scored.assign(
            uid=scored["task_type"] + "/" + scored["language"] + "/" + scored["key"].astype(str)
        )
        frames.append(scored[["system", "uid", "task_type", *METRICS]])
    if not frames:
        return pd.DataFrame(columns=["system", "uid", "task_type", *METRICS])
    return pd.concat(frames, ignore_index=True).set_index(["system", "uid"])


def _pairs(votes: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """One row per vote whose two outputs both have judge scores: outcome and judge differences."""
    columns = ["model_a", "model_b", "uid", "task_type", "outcome", *(f"d_{m}" for m in METRICS)]
    rows = []
    for vote in votes.itertuples(index=False):
        key_a, key_b = (vote.model_a, vote.uid), (vote.model_b, vote.uid)
        if key_a not in judge.index or key_b not in judge.index or vote.winner not in OUTCOME:
            continue
        a, b = judge.loc[key_a], judge.loc[key_b]
        diffs = [float(a[m] - b[m]) for m in METRICS]
        rows.append([vote.model_a, vote.model_b, vote.uid, a["task_type"], OUTCOME[vote.winner], *diffs])
    return pd.DataFrame(rows, columns=columns)


def _rank_correlation(human: Sequence[float], judge: Sequence[float]) -> dict[str, float | int | None]:
    """Spearman rho and Kendall tau-b with p-values, plus sign agreement on decided, judge-separated pairs."""
    h, j = np.asarray(human, float), np.asarray(judge, float)
    out: dict[str, float | int | None] = {"n": len(h)}
    if len(h) < 3 or np.ptp(h) == 0 or np.ptp(j) == 0:  # undefined: too few or constant
        out.update(spearman=None, spearman_p=None, kendall=None, kendall_p=None)
    else:
        rho, rho_p = sps.spearmanr(h, j)
        tau, tau_p = sps.kendalltau(h, j)
        out.update(spearman=float(rho), spearman_p=float(rho_p), kendall=float(tau), kendall_p=float(tau_p))
    decided = (h != 0) & (j != 0)
    out["sign_agreement"] = (
        float(np.mean(np.sign(h[decided]) == np.sign(j[decided]))) if decided.any() else None
    )
    return out


def _judge_average(df: pd.DataFrame) -> dict[str, float]:
    """Official macro average over both languages' full sets (mean of the per-language averages present)."""
    values = [official_table(select(df, lang))["average"] for lang in sorted(df["language"].unique())]
    values = [v for v in values if v["n"]]
    return {m: float(np.mean([v[m] for v in values])) if values else math.nan for m in METRICS}


def _system_level(per_system: Mapping[str, dict]) -> dict[str, Any]:
    systems = [s for s, v in per_system.items() if v["judge_average"] and v["votes"]]
    human = [per_system[s]["human_win_rate"] for s in systems]
    return {
        "systems": systems,
        **{
            m: _rank_correlation(human, [per_system[s]["judge_average"][m] for s in systems]) for m in METRICS
        },
    }


def _score_correlations(votes: pd.DataFrame, judge: pd.DataFrame) -> dict[str, Any]:
    """Raters' 0-10 scores (of the output they preferred) against the judge's scores of that output."""
    out = {}
    for human_col, metric in HUMAN_SCORE_TO_JUDGE.items():
        if human_col not in votes:
            continue
        rated = votes.dropna(subset=[human_col])
        rated = rated[rated["winner"].isin(["model_a", "model_b"])]
        keys = [(getattr(v, v.winner), v.uid) for v in rated.itertuples(index=False)]
        present = [i for i, key in enumerate(keys) if key in judge.index]
        human = rated[human_col].to_numpy(float)[present]
        scores = [float(judge.loc[keys[i], metric]) for i in present]
        out[f"{human_col}_vs_{metric}"] = _rank_correlation(human, scores)
    return out


def format_report(report: Mapping[str, Any]) -> str:
    """Short text summary of a ``human_vs_judge`` report."""

    def cell(c: Mapping[str, Any]) -> str:
        if c.get("spearman") is None:
            return f"n={c['n']} (undefined)"
        agree = "-" if c["sign_agreement"] is None else f"{c['sign_agreement']:.2f}"
        return f"n={c['n']} rho={c['spearman']:+.3f} tau={c['kendall']:+.3f} agree={agree}"

    lines = [
        f"votes {report['votes']}, with judge scores for both outputs {report['votes_with_judge_scores']}"
    ]
    lines += [f"pairwise {m}: {cell(report['pairwise'][m])}" for m in METRICS]
    lines += [f"  {t}: {cell(v['O'])}" for t, v in report["per_task_type"].items()]
    for system, v in report["per_system"].items():
        lines.append(f"system {system}: human win rate {v['human_win_rate']:.3f}; O {cell(v['O'])}")
    lines.append(f"system level (win rate vs judge O): {cell(report['system_level']['O'])}")
    lines += [f"scores {name}: {cell(c)}" for name, c in report["scores"].items()]
    return "\n".join(lines)
