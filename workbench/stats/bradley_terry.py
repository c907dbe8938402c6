"""Bradley-Terry ratings on the Elo scale, fitted by batched Newton steps on win-mass matrices.

Model: P(i beats j) = 1 / (1 + 10 ** (-(R_i - R_j) / 400)), i.e. logistic in r = (R - 1000) / 400 with slope
ln 10 (FastChat's ``compute_mle_elo`` / ``fit_bt``). Ties and both-bad count half a win each way.

Objective, per fit: sum over votes of the binary cross-entropy of the outcome score, plus ``ridge / 2 * |r|^2``.
The default ``ridge=0.5`` is exactly the L2 penalty of GenAI-Arena's ``LogisticRegression()`` fit (scikit-learn's
default C=1) on the duplicated design matrix (each vote appears twice there, so C=1 on 2n rows equals 0.5 per n
votes); FastChat's own BT fits have no penalty. It keeps every rating finite -- a system with only losses gets a low but finite rating -- and it is
negligible once a system has more than a few dozen votes. The ridge also centres the ratings (mean r = 0),
which fixes the otherwise free offset of BT.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.votes import PairCells, pair_cells, validate_votes, win_mass

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
DEFAULT_RIDGE = 0.5
ALPHA = np.log(BASE)


def _objective(W: np.ndarray, r: np.ndarray, ridge: float) -> np.ndarray:
    """Negative penalised log-likelihood per batch element (W: (B,p,p), r: (B,p))."""
    diff = ALPHA * (r[:, :, None] - r[:, None, :])
    # -log sigmoid(x) = logaddexp(0, -x), numerically safe for large |x|.
    return (W * np.logaddexp(0.0, -diff)).sum(axis=(1, 2)) + 0.5 * ridge * (r * r).sum(axis=1)


def fit_bt_matrix(
    W: np.ndarray,
    ridge: float = DEFAULT_RIDGE,
    tol: float = 1e-10,
    max_iter: int = 100,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Fit BT strengths r (log10 odds units; Elo = 400 r + 1000) for one or a batch of win-mass matrices.

    ``W`` is (p, p) or (B, p, p) with ``W[i, j]`` = wins of i over j (ties as halves). Newton's method with
    step halving on the convex objective; all B problems advance together, so 1,000 bootstrap rounds of
    20 systems cost a few dozen vectorised (1000, 20, 20) operations. ``start`` (p,) is the initial point
    (default 0); bootstrap rounds start from the full-data fit, which saves most iterations.
    """
    if ridge <= 0:
        raise ValueError("ridge must be > 0: it keeps ratings finite for systems with only wins or losses")
    single = W.ndim == 2
    W = W[None] if single else W
    B, p, _ = W.shape
    r = np.zeros((B, p)) if start is None else np.tile(np.asarray(start, dtype=float), (B, 1))
    if p == 0:
        return r[0] if single else r
    N = W + W.transpose(0, 2, 1)
    eye = np.eye(p)
    active = np.ones(B, dtype=bool)
    f = _objective(W, r, ridge)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Wa, Na, ra = W[idx], N[idx], r[idx]
        P = 1.0 / (1.0 + np.exp(-ALPHA * (ra[:, :, None] - ra[:, None, :])))
        grad = -ALPHA * (Wa - Na * P).sum(axis=2) + ridge * ra
        curv = ALPHA**2 * Na * P * (1.0 - P)
        hess = -curv + eye * (curv.sum(axis=2)[:, :, None] + ridge)
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        # Backtrack where a full Newton step would not decrease the objective (far from the optimum).
        t = np.ones(idx.size)
        f_old = f[idx]
        for _ in range(30):
            r_new = ra - t[:, None] * step
            f_new = _objective(Wa, r_new, ridge)
            worse = f_new > f_old + 1e-12 * np.abs(f_old)
            if not worse.any():
                break
            t[worse] *= 0.5
        r[idx], f[idx] = r_new, f_new
        active[idx[np.abs(t[:, None] * step).max(axis=1) < tol]] = False
    return r[0] if single else r


def to_elo(
    r: np.ndarray,
    systems: list[str],
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
    scale: float = SCALE,
    init_rating: float = INIT_RATING,
) -> np.ndarray:
    """Map strengths to the Elo scale; with ``anchor``, shift so that system sits at ``anchor_rating``.

    Works on (p,) or (B, p); rounds in which the anchor is NaN become all-NaN.
    """
    elo = scale * np.asarray(r) + init_rating
    if anchor is not None:
        if anchor not in systems:
            raise ValueError(f"anchor system {anchor!r} is not among the rated systems {systems}")
        k = systems.index(anchor)
        elo = elo - elo[..., k : k + 1] + anchor_rating
    return elo


def ratings_from_cells(
    cells: PairCells,
    ridge: float = DEFAULT_RIDGE,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> pd.Series:
    """``fit_bradley_terry`` for already aggregated votes."""
    r = fit_bt_matrix(win_mass(cells, cells.counts()), ridge=ridge)
    elo = to_elo(r, cells.systems, anchor=anchor, anchor_rating=anchor_rating)
    return pd.Series(elo, index=pd.Index(cells.systems, name="system"), name="rating").sort_values(
        ascending=False
    )


def fit_bradley_terry(
    votes: pd.DataFrame,
    ridge: float = DEFAULT_RIDGE,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> pd.Series:
    """Bradley-Terry ratings on the Elo scale (400 * log10 odds + 1000), one per system, highest first.

    ``votes`` follows the votes schema (``model_a``, ``model_b``, ``winner``). With ``anchor``, ratings are
    shifted so that system has ``anchor_rating`` (FastChat anchors a reference model the same way). An empty
    table gives an empty Series.
    """
    return ratings_from_cells(pair_cells(validate_votes(votes)), ridge, anchor, anchor_rating)
