"""The straightforward FastChat/GenAI-Arena procedure, kept only as a reference for tests and benchmarks.

Per bootstrap round it resamples the vote rows (``battles.sample(frac=1.0, replace=True)``), duplicates every
vote into a dense design matrix (``+ln 10`` in the ``model_a`` column, ``-ln 10`` in ``model_b``; a tie becomes
one A-win row and one B-win row) and fits a logistic regression without intercept, as
``compute_elo_mle_with_tie`` does with scikit-learn. scikit-learn is not a dependency here, so the fit is
scipy's L-BFGS-B on scikit-learn's objective (mean log-loss over rows + ||w||^2 / (2 C n_rows), which is what
``LogisticRegression(solver="lbfgs")`` minimises); C = 1 / (2 * ridge) makes it the same model as
``fit_bradley_terry``. Use ``workbench.stats.bootstrap`` for real work: this path is orders of magnitude slower.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from workbench.stats.bradley_terry import ALPHA, DEFAULT_RIDGE, to_elo
from workbench.stats.votes import validate_votes


def _duplicated_design(votes: pd.DataFrame, systems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = pd.Series(np.arange(len(systems)), index=systems)
    doubled = pd.concat([votes, votes], ignore_index=True)
    n = len(doubled)
    X = np.zeros((n, len(systems)))
    X[np.arange(n), index[doubled["model_a"].astype(str)].to_numpy()] = +ALPHA
    X[np.arange(n), index[doubled["model_b"].astype(str)].to_numpy()] = -ALPHA
    y = (doubled["winner"] == "model_a").to_numpy(dtype=float)
    tie = doubled["winner"].isin(["tie", "tie (bothbad)"]).to_numpy().copy()
    tie[n // 2 :] = False  # first copy of a tie is an A-win, second copy a B-win
    y[tie] = 1.0
    return X, y


def fit_logistic_baseline(
    votes: pd.DataFrame, ridge: float = DEFAULT_RIDGE, systems: list[str] | None = None, tol: float = 1e-10
) -> pd.Series:
    """Elo ratings from one FastChat-style duplicated-design logistic regression (highest first)."""
    votes = validate_votes(votes)
    if systems is None:
        systems = sorted(set(votes["model_a"].astype(str)) | set(votes["model_b"].astype(str)))
    X, y = _duplicated_design(votes, systems)
    sign = 2.0 * y - 1.0
    n_rows = len(y)
    c_param = 1.0 / (2.0 * ridge)

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (X @ w)
        loss = np.logaddexp(0.0, -margin).mean() + w @ w / (2 * c_param * n_rows)
        dmargin = -sign / (1.0 + np.exp(margin)) / n_rows
        return loss, X.T @ dmargin + w / (c_param * n_rows)

    w0 = np.zeros(len(systems))
    result = minimize(
        loss_and_grad, w0, jac=True, method="L-BFGS-B", options={"gtol": tol, "ftol": 1e-15, "maxiter": 1000}
    )
    elo = to_elo(result.x, systems)
    return pd.Series(elo, index=pd.Index(systems, name="system"), name="rating").sort_values(ascending=False)


def bootstrap_logistic_baseline(
    votes: pd.DataFrame, rounds: int = 100, seed: int = 0, ridge: float = DEFAULT_RIDGE
) -> pd.DataFrame:
    """(rounds x systems) Elo ratings, one full resample-and-refit per round, as GenAI-Arena's bootstrap."""
    votes = validate_votes(votes)
    systems = sorted(set(votes["model_a"].astype(str)) | set(votes["model_b"].astype(str)))
    rng = np.random.default_rng(seed)
    rows = [
        fit_logistic_baseline(
            votes.sample(frac=1.0, replace=True, random_state=rng), ridge=ridge, systems=systems
        )
        for _ in range(rounds)
    ]
    return pd.DataFrame([row[systems].to_numpy() for row in rows], columns=pd.Index(systems, name="system"))
