"""Curation report: acceptance rates per category and per automatic-filter reason, the reasons reviewers cite,
and reviewer agreement on accept/reject/flag.

Decisions table: ``candidate_id``, ``rater``, ``decision`` in DECISIONS, optional ``reasons`` (a list of
taxonomy reasons, or one string with reasons separated by ";"), ``category``, ``filter_reason``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.agreement import agreement_metrics, category_counts
from workbench.stats.votes import raise_at_first_row

DECISIONS = ("accept", "reject", "flag")
RATE_COLUMNS = ["decisions", "candidates", "accepted", "rejected", "flagged", "acceptance_rate"]


class DecisionsError(ValueError):
    """The decisions table is malformed."""


def validate_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Check the decisions schema; raise DecisionsError naming the first offending row."""
    missing = [c for c in ("candidate_id", "rater", "decision") if c not in decisions.columns]
    if missing:
        raise DecisionsError(f"decisions table lacks column(s) {missing}; it has {list(decisions.columns)}")
    decisions = decisions.reset_index(drop=True)
    decision = decisions["decision"]
    raise_at_first_row(
        ~decision.isin(DECISIONS),
        DecisionsError,
        lambda r: f"decision {decision.iloc[r]!r} is not one of {DECISIONS}",
    )
    return decisions


def acceptance_rates(decisions: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Decision counts and acceptance rate (accepted / decisions), overall (row "(all)") or per value of ``by``."""
    decisions = validate_decisions(decisions)
    keys = decisions[by].fillna("(none)").astype(str) if by else pd.Series("(all)", index=decisions.index)
    d = decisions["decision"]
    frame = pd.DataFrame(
        {
            "key": keys,
            "candidate_id": decisions["candidate_id"],
            "accepted": d == "accept",
            "rejected": d == "reject",
            "flagged": d == "flag",
        }
    )
    g = frame.groupby("key", sort=True)
    out = pd.DataFrame(
        {
            "decisions": g.size(),
            "candidates": g["candidate_id"].nunique(),
            "accepted": g["accepted"].sum(),
            "rejected": g["rejected"].sum(),
            "flagged": g["flagged"].sum(),
        }
    )
    out["acceptance_rate"] = out["accepted"] / out["decisions"]
    return out.rename_axis(by or "group")[RATE_COLUMNS]


def _reason_lists(reasons: pd.Series) -> pd.Series:
    def split(value: object) -> list[str]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return []
        parts = value.split(";") if isinstance(value, str) else list(value)
        return [p.strip() for p in parts if str(p).strip()]

    return reasons.map(split)


def reason_counts(decisions: pd.DataFrame) -> pd.DataFrame:
    """How often each reason is cited, as ``count`` and ``share`` of the reject/flag decisions, most cited first."""
    decisions = validate_decisions(decisions)
    if "reasons" not in decisions.columns:
        return pd.DataFrame(columns=["count", "share"]).rename_axis("reason")
    not_accepted = decisions[decisions["decision"] != "accept"]
    cited = _reason_lists(not_accepted["reasons"]).explode().dropna()
    counts = cited.value_counts().rename("count").rename_axis("reason")
    out = counts.to_frame()
    out["share"] = out["count"] / max(len(not_accepted), 1)
    return out


def curation_report(decisions: pd.DataFrame, rounds: int = 200, seed: int = 0) -> dict[str, object]:
    """Everything the curation screen shows: ``overall``, ``by_category`` and ``by_filter_reason`` acceptance
    tables (the latter two only when those columns exist), cited ``reasons``, and reviewer ``agreement`` on the
    decision per candidate (Krippendorff's alpha nominal with a 95% interval from ``rounds`` resamples of the
    candidates, Fleiss' kappa, raw agreement)."""
    decisions = validate_decisions(decisions)
    report: dict[str, object] = {"overall": acceptance_rates(decisions)}
    for column, key in (("category", "by_category"), ("filter_reason", "by_filter_reason")):
        if column in decisions.columns:
            report[key] = acceptance_rates(decisions, by=column)
    report["reasons"] = reason_counts(decisions)
    counts = category_counts(decisions, ["candidate_id"], "rater", "decision", list(DECISIONS))
    report["agreement"] = agreement_metrics(counts, rounds=rounds, seed=seed)
    return report
