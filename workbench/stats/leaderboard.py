"""Leaderboards: full-data BT rating, bootstrap CI, rank with uncertainty and vote counts per system."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.bootstrap import bootstrap_from_cells
from workbench.stats.bradley_terry import DEFAULT_RIDGE, INIT_RATING, ratings_from_cells
from workbench.stats.votes import VotesError, pair_cells, validate_votes
from workbench.stats.winrates import counts_from_cells

LEADERBOARD_COLUMNS = [
    "system",
    "rating",
    "ci_low",
    "ci_high",
    "rank",
    "votes",
    "wins",
    "losses",
    "ties",
    "both_bad",
    "win_rate",
    "both_bad_rate",
]


def rank_upper_bound(ci_low: pd.Series, ci_high: pd.Series) -> pd.Series:
    """FastChat's "Rank (UB)": 1 + number of systems whose lower bound exceeds this system's upper bound."""
    lows = ci_low.to_numpy()
    ranks = [1 + int(np.sum(lows > hi)) for hi in ci_high.to_numpy()]
    return pd.Series(ranks, index=ci_low.index, name="rank")


def leaderboard(
    votes: pd.DataFrame,
    rounds: int = 1000,
    cluster: str | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    ridge: float = DEFAULT_RIDGE,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> pd.DataFrame:
    """One row per system, best first, with the columns in LEADERBOARD_COLUMNS.

    ``rating`` is the full-data BT fit (not the bootstrap median, as FastChat displays); ``ci_low``/``ci_high``
    are NaN-aware percentiles of ``rounds`` bootstrap refits (votes resampled, or clusters when ``cluster`` names
    a column such as ``"item_id"``); ``rounds=0`` leaves them NaN and ranks by rating alone.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    votes = validate_votes(votes)
    if cluster is not None and cluster not in votes.columns:
        raise VotesError(f"cannot cluster on {cluster!r}: the votes table has no such column")
    cells = pair_cells(votes)
    rating = ratings_from_cells(cells, ridge=ridge, anchor=anchor, anchor_rating=anchor_rating)
    board = counts_from_cells(cells).reindex(rating.index)
    board.insert(0, "rating", rating)
    if rounds > 0 and len(votes):
        clusters = votes[cluster] if cluster is not None else None
        boot = bootstrap_from_cells(cells, rounds, clusters, seed, ridge, anchor, anchor_rating)[rating.index]
        tail = 100 * (1 - confidence) / 2
        values = boot.to_numpy()
        all_nan = np.isnan(values).all(axis=0)
        safe = np.where(all_nan, 0.0, values)  # nanpercentile warns on all-NaN columns; restore NaN below
        low, high = np.nanpercentile(safe, [tail, 100 - tail], axis=0)
        board.insert(1, "ci_low", np.where(all_nan, np.nan, low))
        board.insert(2, "ci_high", np.where(all_nan, np.nan, high))
        board.insert(3, "rank", rank_upper_bound(board["ci_low"], board["ci_high"]))
    else:
        board.insert(1, "ci_low", np.nan)
        board.insert(2, "ci_high", np.nan)
        board.insert(3, "rank", rank_upper_bound(board["rating"], board["rating"]))
    return board.reset_index()[LEADERBOARD_COLUMNS]


def grouped_leaderboards(
    votes: pd.DataFrame, by: str = "category", min_votes: int = 1, **leaderboard_kwargs: object
) -> dict[str, pd.DataFrame]:
    """A leaderboard per value of column ``by`` (e.g. ``"category"``, ``"language"``).

    Systems with fewer than ``min_votes`` battles inside a group are dropped from that group's table
    (FastChat hides category entries under 300 votes because their CIs are too wide to read).
    """
    votes = validate_votes(votes)
    if by not in votes.columns:
        raise VotesError(f"cannot group by {by!r}: the votes table has no such column")
    boards: dict[str, pd.DataFrame] = {}
    for value, group in votes.dropna(subset=[by]).groupby(by, sort=True):
        board = leaderboard(group, **leaderboard_kwargs)
        boards[str(value)] = board[board["votes"] >= min_votes].reset_index(drop=True)
    return boards
