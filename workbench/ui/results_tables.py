"""The Results tables as people read them: tidy frames with labelled columns from ``Workbench.stats(study)``.

Each builder returns a frame whose undefined statistics are NaN (empty in the CSV export); ``display`` turns those
into "not enough data" for the page. Without anything to show, a builder returns a one-cell frame that says what
to do next (an empty table would show only column numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.ui.context import humanize

NOT_ENOUGH = "not enough data"
NOT_COMPUTED = "not computed"  # a metric reported without an interval
# Per-category and per-language intervals from fewer votes than this are not shown: a handful of votes gives
# intervals that are either degenerate (zero width) or too wide to read.
MIN_GROUP_CI_VOTES = 10
EMPTY_COLUMN = "Nothing to show yet"
NO_VOTES = (
    "No votes yet: share the study's rater link (Admin) and press Compute again once raters have voted."
)
NO_DECISIONS = (
    "No curation decisions yet: curators review candidates in the Curate tab; then press Compute again."
)
PREFERENCE_ONLY = "Preference studies only (this is a curation study: see Curation and Reasons)."
CURATION_ONLY = "Curation studies only (this is a preference study)."
NO_OVERLAP = (
    "No item was rated by two or more raters yet, so agreement is undefined: "
    "set k of 2 or more and wait for more votes."
)

WIN_RATE_HALF = "Win rate (ties and both bad = ½ win)"
WIN_RATE_DECISIVE = "Win rate of row vs column (ties and both bad left out)"
CI_LOW, CI_HIGH = "CI low (95%)", "CI high (95%)"
BOARD_COLUMNS = {
    "system": "System",
    "rating": "Rating (Bradley-Terry)",
    "ci_low": CI_LOW,
    "ci_high": CI_HIGH,
    "rank": "Rank (upper bound)",
    "votes": "Votes",
    "wins": "Wins",
    "losses": "Losses",
    "ties": "Ties",
    "both_bad": "Both bad",
    "win_rate": WIN_RATE_HALF,
    "both_bad_rate": "Both-bad rate",
}
POSITION_COLUMNS = {
    "rater": "Rater",
    "votes": "Votes",
    "decisive": "Decisive votes",
    "left_wins": "Left wins",
    "left_rate": "Left-win rate (decisive votes)",
    "ci_low": CI_LOW,
    "ci_high": CI_HIGH,
    "p_value": "p-value (vs 0.5)",
}
RATER_COLUMNS = {
    "rater": "Rater",
    "votes": "Votes",
    "gold_votes": "Gold votes",
    "gold_accuracy": "Gold accuracy",
    "median_seconds": "Median seconds per vote",
    "modal_choice": "Most frequent answer",
    "modal_share": "Its share",
    "left_share": "Left share (decisive votes)",
    "majority_agreement": "Agreement with the other raters' majority",
    "flags": "Flags",
}
ACCEPTANCE_COLUMNS = {
    "decisions": "Decisions",
    "candidates": "Candidates",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "flagged": "Flagged",
    "acceptance_rate": "Acceptance rate",
}
AGREEMENT_COLUMNS = ["Metric", "Value", CI_LOW, CI_HIGH, "n (items rated twice or more)"]
# (stats key, label, key of its interval): the preference labels are A / B / tie / both bad.
AGREEMENT_METRICS = (
    ("krippendorff_alpha_nominal", "Krippendorff's alpha (nominal)", "krippendorff_alpha_nominal_ci"),
    ("krippendorff_alpha_ordinal", "Krippendorff's alpha (ordinal: A < tie = both bad < B)", None),
    ("fleiss_kappa", "Fleiss' kappa", None),
    ("raw_agreement", "Raw agreement (share of agreeing rater pairs)", None),
    ("raw_agreement_no_ties", "Raw agreement without ties (decisive votes only)", None),
)


def message_frame(text: str) -> pd.DataFrame:
    """A one-cell table that says why there is nothing to show and what to do next."""
    return pd.DataFrame({EMPTY_COLUMN: [text]})


def _without_degenerate_ci(frame: pd.DataFrame, min_votes: int = 1) -> pd.DataFrame:
    """Blank intervals that say nothing: zero width (a single vote) or from fewer than `min_votes` votes."""
    if "ci_low" not in frame:
        return frame
    votes = frame["votes"] if "votes" in frame else pd.Series(min_votes, index=frame.index)
    bad = ~(frame["ci_high"] - frame["ci_low"] > 0) | (votes < min_votes)
    return frame.assign(ci_low=frame["ci_low"].mask(bad), ci_high=frame["ci_high"].mask(bad))


def leaderboard_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    if not rows:
        return message_frame(NO_VOTES)
    board = _without_degenerate_ci(pd.DataFrame(rows))
    return board[[c for c in BOARD_COLUMNS if c in board]].rename(columns=BOARD_COLUMNS)


def grouped_frame(groups: dict[str, list[dict[str, Any]]] | None, by: str) -> pd.DataFrame:
    """Per-category (or per-language) leaderboards as one long table: group, system, rating, interval, votes."""
    parts = [pd.DataFrame(rows).assign(group=name) for name, rows in (groups or {}).items() if rows]
    if not parts:
        return message_frame(NO_VOTES)
    frame = _without_degenerate_ci(pd.concat(parts, ignore_index=True), MIN_GROUP_CI_VOTES)
    columns = {
        "group": by,
        **{k: BOARD_COLUMNS[k] for k in ("system", "rating", "ci_low", "ci_high", "votes")},
    }
    return frame[list(columns)].rename(columns=columns)


def _interval(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2 and None not in value and value[1] > value[0]:
        return float(value[0]), float(value[1])
    return np.nan, np.nan  # absent, or zero width: no interval worth showing


def agreement_frame(agreement: dict[str, Any] | None) -> pd.DataFrame:
    """One row per agreement metric: metric, value, 95% interval (where computed), n."""
    if not agreement:
        return message_frame(NO_VOTES)
    units = int(agreement.get("units") or 0)
    if units == 0:
        return message_frame(NO_OVERLAP)
    rows = []
    for key, label, ci_key in AGREEMENT_METRICS:
        if key in agreement:
            low, high = _interval(agreement.get(ci_key)) if ci_key else (NOT_COMPUTED, NOT_COMPUTED)
            rows.append([label, agreement[key], low, high, units])
    for column, score in (agreement.get("scores") or {}).items():
        for kind in ("ordinal", "interval"):
            value = score.get(f"krippendorff_alpha_{kind}")
            rows.append([f"{humanize(column)} score: Krippendorff's alpha ({kind})", value, NOT_COMPUTED,
                         NOT_COMPUTED, int(score.get("units") or 0)])  # fmt: skip
    frame = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    return frame.astype({"Value": float})


def position_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    if not rows:
        return message_frame(NO_VOTES)
    frame = pd.DataFrame(rows)
    key = frame.columns[0]  # "rater" (or "group" without raters); "(all)" is the whole study
    frame = frame.rename(columns={key: "rater"}).replace({"rater": {"(all)": "All raters"}})
    frame = _without_degenerate_ci(frame)
    return frame[[c for c in POSITION_COLUMNS if c in frame]].rename(columns=POSITION_COLUMNS)


def raters_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    if not rows:
        return message_frame(NO_VOTES)
    frame = pd.DataFrame(rows)
    if "flags" in frame:
        frame["flags"] = frame["flags"].map(lambda f: ", ".join(f) if isinstance(f, list) else (f or ""))
    if "modal_choice" in frame:
        frame["modal_choice"] = frame["modal_choice"].map(humanize)
    return frame[[c for c in RATER_COLUMNS if c in frame]].rename(columns=RATER_COLUMNS)


def acceptance_frame(curation: dict[str, Any] | None) -> pd.DataFrame:
    """Acceptance rates overall, per category and per automatic-filter reason, as one labelled table."""
    if not curation:
        return message_frame(NO_DECISIONS)
    parts = []
    for key, prefix in (
        ("overall", ""),
        ("by_category", "Category: "),
        ("by_filter_reason", "Filter reason: "),
    ):
        rows = pd.DataFrame(curation.get(key) or [])
        if rows.empty:
            continue
        name = rows.columns[0]
        label = "All decisions" if key == "overall" else rows[name].map(lambda v, p=prefix: f"{p}{v}")
        parts.append(rows.drop(columns=[name]).assign(Group=label))
    frame = pd.concat(parts, ignore_index=True)
    return frame[["Group", *ACCEPTANCE_COLUMNS]].rename(columns=ACCEPTANCE_COLUMNS)


def reasons_frame(curation: dict[str, Any] | None) -> pd.DataFrame:
    """The reject/flag reasons curators cited, in words, most cited first."""
    rows = (curation or {}).get("reasons") or []
    if not rows:
        return message_frame(NO_DECISIONS if not curation else "No reason cited yet (no reject or flag).")
    frame = pd.DataFrame(rows)
    frame["reason"] = frame["reason"].map(humanize)
    return frame.rename(
        columns={"reason": "Reason", "count": "Times cited", "share": "Share of reject/flag decisions"}
    )


def tables(stats: dict[str, Any], kind: str) -> dict[str, pd.DataFrame]:
    """Every table of the Results tab, by name (the CSV files are named after these keys)."""
    if kind == "curation":
        curation = stats.get("curation")
        only = message_frame(PREFERENCE_ONLY)
        return {
            "leaderboard": only,
            "per_category": only,
            "per_language": only,
            "agreement": agreement_frame((curation or {}).get("agreement")) if curation else message_frame(NO_DECISIONS),
            "position_bias": only,
            "raters": only,
            "curation": acceptance_frame(curation),
            "reasons": reasons_frame(curation),
        }  # fmt: skip
    only = message_frame(CURATION_ONLY)
    return {
        "leaderboard": leaderboard_frame(stats.get("leaderboard")),
        "per_category": grouped_frame(stats.get("per_category"), "Category"),
        "per_language": grouped_frame(stats.get("per_language"), "Language"),
        "agreement": agreement_frame(stats.get("agreement")),
        "position_bias": position_frame(stats.get("position_bias")),
        "raters": raters_frame(stats.get("raters")),
        "curation": only,
        "reasons": only,
    }


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return NOT_ENOUGH if np.isnan(value) else round(float(value), 3)
    return NOT_ENOUGH if value is None else value


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame for the page: numbers to 3 decimals, undefined statistics as "not enough data"."""
    out = frame.copy()
    for column in out.columns:
        if not (pd.api.types.is_integer_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = out[column].astype(object).map(_cell)
    return out
