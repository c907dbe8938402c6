"""Bootstrap distributions of Bradley-Terry ratings: votes resampled, or whole clusters (items) resampled.

Vote bootstrap: resampling n votes with replacement and counting them per (pair, outcome) cell is exactly a
multinomial draw of n over the cells with the observed proportions (FastChat's ``compute_bootstrap_bt`` draws
the same way), so 1,000 rounds need 1,000 multinomial draws over a few hundred cells, not 10^9 vote copies.

Cluster bootstrap (``cluster="item_id"``): with k raters per item the votes are not independent, so whole
items are resampled with their votes. Each round draws item multiplicities (multinomial with uniform weights)
and multiplies them into a sparse item-by-cell count matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from workbench.stats.bradley_terry import DEFAULT_RIDGE, INIT_RATING, fit_bt_matrix, to_elo
from workbench.stats.votes import PairCells, VotesError, pair_cells, validate_votes, win_mass

# Keep each batched array under ~16 MB: (rounds x p x p) floats for the fit, (rounds x clusters) for draws.
_FIT_BATCH_ELEMENTS = 2_000_000
_DRAW_BATCH_ELEMENTS = 2_000_000


def _vote_rounds(counts: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=rounds).astype(float)


def _cluster_rounds(
    cells: PairCells, clusters: pd.Series, rounds: int, rng: np.random.Generator
) -> np.ndarray:
    # Votes without a cluster label are their own singleton clusters (resampled like independent votes).
    codes, uniques = pd.factorize(clusters)
    unlabelled = codes < 0
    codes[unlabelled] = len(uniques) + np.arange(unlabelled.sum())
    n_clusters = len(uniques) + int(unlabelled.sum())
    member = sparse.csr_matrix(
        (np.ones(len(codes)), (codes, cells.cell_of_vote)), shape=(n_clusters, cells.n_cells)
    )
    out = np.empty((rounds, cells.n_cells))
    step = max(1, _DRAW_BATCH_ELEMENTS // n_clusters)
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    for start in range(0, rounds, step):
        size = min(step, rounds - start)
        multiplicity = rng.multinomial(n_clusters, uniform, size=size).astype(float)
        out[start : start + size] = (member.T @ multiplicity.T).T
    return out


def fit_rounds(cells: PairCells, round_counts: np.ndarray, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Fit BT for each row of ``round_counts`` (rounds x cells); NaN where a system had no battle that round."""
    p = len(cells.systems)
    r = np.empty((len(round_counts), p))
    step = max(1, _FIT_BATCH_ELEMENTS // max(1, p * p))
    for start in range(0, len(round_counts), step):
        W = win_mass(cells, round_counts[start : start + step])
        fitted = fit_bt_matrix(W, ridge=ridge)
        played = (W + W.transpose(0, 2, 1)).sum(axis=2) > 0
        r[start : start + step] = np.where(played, fitted, np.nan)
    return r


def bootstrap_ratings(
    votes: pd.DataFrame,
    rounds: int = 1000,
    cluster: str | None = None,
    seed: int = 0,
    ridge: float = DEFAULT_RIDGE,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> pd.DataFrame:
    """Elo ratings refitted on ``rounds`` bootstrap resamples: a (rounds x systems) DataFrame.

    ``cluster=None`` resamples votes; ``cluster="item_id"`` (or any column, e.g. ``"rater"``) resamples whole
    clusters with all their votes. A system absent from a resample is NaN in that round (use NaN-aware
    quantiles); with ``anchor``, a round without the anchor system is all-NaN.
    """
    votes = validate_votes(votes)
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    cells = pair_cells(votes)
    if len(votes) == 0 or rounds == 0:
        return pd.DataFrame(np.empty((rounds, len(cells.systems))), columns=cells.systems)
    rng = np.random.default_rng(seed)
    if cluster is None:
        round_counts = _vote_rounds(cells.counts(), rounds, rng)
    else:
        if cluster not in votes.columns:
            raise VotesError(f"cannot cluster on {cluster!r}: the votes table has no such column")
        round_counts = _cluster_rounds(cells, votes[cluster], rounds, rng)
    r = fit_rounds(cells, round_counts, ridge=ridge)
    elo = to_elo(r, cells.systems, anchor=anchor, anchor_rating=anchor_rating)
    return pd.DataFrame(elo, columns=pd.Index(cells.systems, name="system"))
