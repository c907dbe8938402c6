"""Position-bias report: how often the output shown on the left wins, with a binomial test and Wilson CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from workbench.stats.votes import VotesError, validate_votes

POSITION_COLUMNS = ["votes", "decisive", "left_wins", "left_rate", "ci_low", "ci_high", "p_value"]


def screen_choices(votes: pd.DataFrame) -> np.ndarray:
    """Each vote as the rater saw it: "left", "right", "tie" or "both_bad".

    Uses the ``left`` column (which of model_a/model_b was on the left); where it is missing (no column, or an
    empty entry) model_a is taken as left, FastChat's convention for arena logs.
    """
    w = votes["winner"].to_numpy()
    left = (
        votes["left"].fillna("model_a").to_numpy() if "left" in votes.columns else np.full(len(w), "model_a")
    )
    decisive = np.isin(w, ("model_a", "model_b"))
    return np.where(
        decisive, np.where(w == left, "left", "right"), np.where(w == "tie", "tie", "both_bad")
    ).astype(object)


def _left_win_row(choices: np.ndarray, confidence: float) -> dict[str, float]:
    n_left, n_right = int((choices == "left").sum()), int((choices == "right").sum())
    decisive = n_left + n_right
    row: dict[str, float] = {"votes": len(choices), "decisive": decisive, "left_wins": n_left}
    if decisive == 0:
        return {**row, "left_rate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    test = binomtest(n_left, decisive, p=0.5)
    ci = test.proportion_ci(confidence_level=confidence, method="wilson")
    return {
        **row,
        "left_rate": n_left / decisive,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "p_value": test.pvalue,
    }


def position_bias(votes: pd.DataFrame, by: str | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Left-win rate among decisive votes (ties and both-bad excluded) with a two-sided exact binomial test
    against 0.5 and a Wilson ``confidence`` interval.

    Returns one row labelled ``"(all)"``, plus one row per value of column ``by`` (e.g. ``"rater"``) when given.
    Needs the ``left`` column to be meaningful (see ``screen_choices``).
    """
    votes = validate_votes(votes)
    if "left" not in votes.columns:
        raise VotesError("position bias needs the 'left' column (which side each output was shown on)")
    choices = screen_choices(votes)
    rows = {"(all)": _left_win_row(choices, confidence)}
    if by is not None:
        if by not in votes.columns:
            raise VotesError(f"cannot split position bias by {by!r}: no such column")
        labelled = votes[by].notna().to_numpy()  # unlabelled votes count only in "(all)"
        keys = votes[by].astype(str).to_numpy()
        for key in sorted(set(keys[labelled])):
            rows[key] = _left_win_row(choices[labelled & (keys == key)], confidence)
    return pd.DataFrame.from_dict(rows, orient="index")[POSITION_COLUMNS].rename_axis(by or "group")
