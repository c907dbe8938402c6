"""Rater quality: gold accuracy, time on task, straight-lining, side preference and leave-one-out agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.agreement import PREFERENCE_LABELS, canonical_preferences, unit_label_counts
from workbench.stats.position import screen_choices
from workbench.stats.votes import VotesError, validate_votes

RATER_COLUMNS = [
    "votes",
    "gold_votes",
    "gold_accuracy",
    "median_seconds",
    "modal_choice",
    "modal_share",
    "left_share",
    "majority_agreement",
    "flags",
]


def _leave_one_out_agreement(votes: pd.DataFrame) -> pd.Series:
    """Per vote: 1 if it matches the unique majority label of the *other* raters on its (item, pair), 0 if
    not, NaN when no other rater voted there, their majority is tied, or the rater later changed this vote."""
    prefs = canonical_preferences(votes)
    kept, unit, label, counts = unit_label_counts(
        prefs, ["item_id", "pair"], "rater", "label", list(PREFERENCE_LABELS)
    )
    others = counts[unit]
    others[np.arange(len(unit)), label] -= 1.0
    top = others.max(axis=1)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    agrees = (others.argmax(axis=1) == label).astype(float)
    return pd.Series(np.where((top > 0) & unique_top, agrees, np.nan), index=kept.index).reindex(votes.index)


def rater_quality(
    votes: pd.DataFrame,
    min_votes: int = 10,
    straight_line_share: float = 0.9,
    min_gold_accuracy: float = 0.6,
    min_gold_votes: int = 5,
    min_median_seconds: float = 2.0,
) -> pd.DataFrame:
    """One row per rater (index ``rater``) with the columns in RATER_COLUMNS.

    - ``gold_accuracy``: share of gold votes (rows with ``gold_winner``) whose ``winner`` matches it.
    - ``median_seconds``: median ``seconds_on_task``.
    - ``modal_choice``/``modal_share``: the most frequent answer as seen on screen (left/right/tie/both_bad) and
      its share; ``left_share``: share of decisive votes for the left output.
    - ``majority_agreement``: share of votes matching the other raters' majority on the same (item, pair).
    - ``flags``: "straight-lining" (modal_share >= straight_line_share), "always-left"/"always-right"
      (left_share beyond the same threshold), "too fast" (median under ``min_median_seconds``) -- only for raters
      with at least ``min_votes`` votes -- and "low gold accuracy" (at least ``min_gold_votes`` gold votes).
    """
    votes = validate_votes(votes)
    if "rater" not in votes.columns:
        raise VotesError("rater quality needs the 'rater' column")
    votes = votes.dropna(subset=["rater"])
    frame = pd.DataFrame(
        {"rater": votes["rater"].astype(str), "choice": screen_choices(votes)}, index=votes.index
    )
    if "gold_winner" in votes.columns:
        correct = (votes["winner"] == votes["gold_winner"]).astype(float)
        frame["gold"] = correct.where(votes["gold_winner"].notna())
    else:
        frame["gold"] = np.nan
    frame["seconds"] = votes["seconds_on_task"] if "seconds_on_task" in votes.columns else np.nan
    frame["is_left"] = frame["choice"].map({"left": 1.0, "right": 0.0})
    frame["agree"] = _leave_one_out_agreement(votes) if "item_id" in votes.columns and len(votes) else np.nan

    g = frame.groupby("rater", sort=True)
    modal = g["choice"].agg(lambda s: s.value_counts().idxmax())
    out = pd.DataFrame(
        {
            "votes": g.size(),
            "gold_votes": g["gold"].count(),
            "gold_accuracy": g["gold"].mean(),
            "median_seconds": g["seconds"].median(),
            "modal_choice": modal,
            "modal_share": g["choice"].agg(lambda s: s.value_counts(normalize=True).iloc[0]),
            "left_share": g["is_left"].mean(),
            "majority_agreement": g["agree"].mean(),
        }
    )
    out["flags"] = [
        _flags(row, min_votes, straight_line_share, min_gold_votes, min_gold_accuracy, min_median_seconds)
        for row in out.itertuples()
    ]
    return out.rename_axis("rater")[RATER_COLUMNS]


def _flags(
    row: tuple, min_votes: int, share: float, min_gold_votes: int, min_gold: float, min_seconds: float
) -> list[str]:
    flags = []
    if row.gold_votes >= min_gold_votes and row.gold_accuracy < min_gold:
        flags.append("low gold accuracy")
    if row.votes < min_votes:
        return flags
    if row.modal_share >= share:
        flags.append("straight-lining")
    if row.left_share >= share:
        flags.append("always-left")
    elif row.left_share <= 1 - share:
        flags.append("always-right")
    if row.median_seconds < min_seconds:
        flags.append("too fast")
    return flags
