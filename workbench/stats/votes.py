"""The votes table every statistic reads, and its aggregation into per-pair outcome counts.

Schema (see /work/team/CONTRACTS.md): ``model_a``, ``model_b``, ``winner`` in FastChat's names
(``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``), optional ``item_id``, ``rater``, ``category``,
``language``, ``left`` (``model_a``/``model_b``: the side shown on the left), ``seconds_on_task`` and
``gold_winner`` (the expected ``winner`` on gold items, else missing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
REQUIRED_COLUMNS = ("model_a", "model_b", "winner")

# Outcome index inside a collapsed pair cell: the lower-indexed system won, the higher one won, or a tie
# (``tie`` and ``tie (bothbad)`` both count half a win each way, as FastChat's ``preprocess_for_bt`` does).
LOW_WINS, HIGH_WINS, TIE = 0, 1, 2
N_OUTCOMES = 3


class VotesError(ValueError):
    """The votes table is malformed (missing columns, unknown winner names, self-comparisons)."""


def validate_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """Check the schema and return the votes with string system names and a clean index.

    Raises VotesError naming the first offending row when a winner is not one of WINNERS, a system name is
    missing, or a vote compares a system with itself.
    """
    if not isinstance(votes, pd.DataFrame):
        raise VotesError(f"votes must be a pandas DataFrame, got {type(votes).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in votes.columns]
    if missing:
        raise VotesError(f"votes table lacks column(s) {missing}; it has {list(votes.columns)}")
    votes = votes.reset_index(drop=True)
    bad_winner = ~votes["winner"].isin(WINNERS)
    if bad_winner.any():
        row = int(np.flatnonzero(bad_winner.to_numpy())[0])
        raise VotesError(f"row {row}: winner {votes['winner'].iloc[row]!r} is not one of {list(WINNERS)}")
    for col in ("model_a", "model_b"):
        empty = votes[col].isna()
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise VotesError(f"row {row}: {col} is missing")
    same = votes["model_a"].to_numpy() == votes["model_b"].to_numpy()
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise VotesError(
            f"row {row}: a system cannot be compared with itself ({votes['model_a'].iloc[row]!r})"
        )
    if "left" in votes.columns:
        bad_left = votes["left"].notna() & ~votes["left"].isin(("model_a", "model_b"))
        if bad_left.any():
            row = int(np.flatnonzero(bad_left.to_numpy())[0])
            raise VotesError(f"row {row}: left {votes['left'].iloc[row]!r} must be 'model_a' or 'model_b'")
    return votes


def outcome_scores(winner: pd.Series) -> np.ndarray:
    """Score of ``model_a`` per vote: 1 win, 0 loss, 0.5 for ``tie`` and ``tie (bothbad)``."""
    w = winner.to_numpy()
    return np.where(w == "model_a", 1.0, np.where(w == "model_b", 0.0, 0.5))


@dataclass(frozen=True)
class PairCells:
    """Votes collapsed to (unordered system pair, outcome) cells.

    ``cell_of_vote[v]`` is the cell of vote v; a cell is ``pair * 3 + outcome`` where ``pair`` indexes
    ``pairs`` (rows ``(low, high)`` with ``low < high`` indexing ``systems``). BT with half-win ties depends on
    the votes only through these counts, so resampling votes equals a multinomial draw over cells.
    """

    systems: list[str]
    pairs: np.ndarray  # (n_pairs, 2) int
    cell_of_vote: np.ndarray  # (n_votes,) int

    @property
    def n_cells(self) -> int:
        return len(self.pairs) * N_OUTCOMES

    def counts(self) -> np.ndarray:
        """Number of votes in each cell."""
        return np.bincount(self.cell_of_vote, minlength=self.n_cells).astype(float)


def pair_cells(votes: pd.DataFrame, systems: list[str] | None = None) -> PairCells:
    """Collapse validated votes into pair-outcome cells (vectorised; ~0.1 s per million votes)."""
    if systems is None:
        systems = sorted(set(votes["model_a"].astype(str)) | set(votes["model_b"].astype(str)))
    a = pd.Categorical(votes["model_a"].astype(str), categories=systems).codes.astype(np.int64)
    b = pd.Categorical(votes["model_b"].astype(str), categories=systems).codes.astype(np.int64)
    if (a < 0).any() or (b < 0).any():
        raise VotesError("votes name systems outside the given system list")
    low, high = np.minimum(a, b), np.maximum(a, b)
    p = len(systems)
    pair_key = low * p + high
    unique_keys, pair_index = np.unique(pair_key, return_inverse=True)
    pairs = (
        np.stack([unique_keys // p, unique_keys % p], axis=1) if len(unique_keys) else np.zeros((0, 2), int)
    )
    w = votes["winner"].to_numpy()
    a_is_low = a == low
    outcome = np.full(len(votes), TIE, dtype=np.int64)
    a_won, b_won = w == "model_a", w == "model_b"
    outcome[(a_won & a_is_low) | (b_won & ~a_is_low)] = LOW_WINS
    outcome[(a_won & ~a_is_low) | (b_won & a_is_low)] = HIGH_WINS
    return PairCells(systems=list(systems), pairs=pairs, cell_of_vote=pair_index * N_OUTCOMES + outcome)


def win_mass(cells: PairCells, counts: np.ndarray) -> np.ndarray:
    """Turn cell counts (..., n_cells) into win-mass matrices W (..., p, p), ties split half/half.

    ``W[i, j]`` is how many battles system i won against system j, counting each tie as half a win.
    """
    p = len(cells.systems)
    c = counts.reshape(*counts.shape[:-1], len(cells.pairs), N_OUTCOMES)
    half_tie = 0.5 * c[..., TIE]
    W = np.zeros((*counts.shape[:-1], p, p))
    lo, hi = cells.pairs[:, 0], cells.pairs[:, 1]
    W[..., lo, hi] = c[..., LOW_WINS] + half_tie
    W[..., hi, lo] = c[..., HIGH_WINS] + half_tie
    return W
