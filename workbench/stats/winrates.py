"""Per-system vote counts, pairwise win-rate and battle-count matrices (FastChat/GenAI-Arena style).

All are computed from the pair-outcome cell counts (O(systems^2) after one O(votes) aggregation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.votes import PairCells, outcome_matrices, pair_cells, validate_votes

COUNT_COLUMNS = ["votes", "wins", "losses", "ties", "both_bad", "win_rate", "both_bad_rate"]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _square(values: np.ndarray, systems: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        values, index=pd.Index(systems, name="system"), columns=pd.Index(systems, name="opponent")
    )


def counts_from_cells(cells: PairCells) -> pd.DataFrame:
    """``system_counts`` for already aggregated votes."""
    wins, ties, both_bad = outcome_matrices(cells, cells.counts())
    won, lost, tied, bad = wins.sum(axis=1), wins.sum(axis=0), ties.sum(axis=1), both_bad.sum(axis=1)
    battles = won + lost + tied + bad
    table = {
        "votes": battles,
        "wins": won,
        "losses": lost,
        "ties": tied,
        "both_bad": bad,
        "win_rate": _ratio(won + 0.5 * (tied + bad), battles),
        "both_bad_rate": _ratio(bad, battles),
    }
    out = pd.DataFrame(table, index=pd.Index(cells.systems, name="system"))
    return out.astype({c: int for c in ("votes", "wins", "losses", "ties", "both_bad")})[COUNT_COLUMNS]


def system_counts(votes: pd.DataFrame) -> pd.DataFrame:
    """Per system: ``votes`` (battles as A or B), ``wins``, ``losses``, ``ties``, ``both_bad``, ``win_rate``
    (ties and both-bad as half wins) and ``both_bad_rate``."""
    return counts_from_cells(pair_cells(validate_votes(votes)))


def battle_count_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Symmetric matrix of the number of battles between each pair of systems (both orientations)."""
    cells = pair_cells(validate_votes(votes))
    wins, ties, both_bad = outcome_matrices(cells, cells.counts())
    return _square((wins + wins.T + ties + both_bad).astype(int), cells.systems)


def win_rate_matrix(votes: pd.DataFrame, ties: str = "exclude") -> pd.DataFrame:
    """Share of battles the row system won against the column system, over both orientations.

    ``ties="exclude"`` drops ties and both-bad (FastChat's ``compute_pairwise_win_fraction``);
    ``ties="half"`` counts them as half wins (the BT convention). NaN where two systems never met.
    """
    if ties not in ("exclude", "half"):
        raise ValueError(f"ties must be 'exclude' or 'half', got {ties!r}")
    cells = pair_cells(validate_votes(votes))
    wins, tied, both_bad = outcome_matrices(cells, cells.counts())
    if ties == "exclude":
        rate = _ratio(wins, wins + wins.T)
    else:
        rate = _ratio(wins + 0.5 * (tied + both_bad), wins + wins.T + tied + both_bad)
    return _square(rate, cells.systems)


def average_win_rate(matrix: pd.DataFrame) -> pd.Series:
    """Mean of a win-rate matrix row over the opponents met ("average win rate vs all"), highest first."""
    return matrix.mean(axis=1, skipna=True).rename("average_win_rate").sort_values(ascending=False)
