"""Per-system vote counts, pairwise win-rate and battle-count matrices (FastChat/GenAI-Arena style)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.votes import outcome_scores, validate_votes


def _long_form(votes: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, opponent) appearance with that system's score: 1 win, 0 loss, 0.5 tie."""
    w = votes["winner"].to_numpy()
    a_score = outcome_scores(votes["winner"])
    return pd.DataFrame(
        {
            "system": np.concatenate([votes["model_a"].astype(str), votes["model_b"].astype(str)]),
            "opponent": np.concatenate([votes["model_b"].astype(str), votes["model_a"].astype(str)]),
            "score": np.concatenate([a_score, 1.0 - a_score]),
            "both_bad": np.tile(w == "tie (bothbad)", 2),
        }
    )


def system_counts(votes: pd.DataFrame) -> pd.DataFrame:
    """Per system: ``votes`` (battles as A or B), ``wins``, ``losses``, ``ties``, ``both_bad``, ``win_rate``
    (ties and both-bad as half wins) and ``both_bad_rate``."""
    votes = validate_votes(votes)
    long = _long_form(votes)
    g = long.groupby("system", sort=True)
    out = pd.DataFrame(
        {
            "votes": g.size(),
            "wins": g["score"].apply(lambda s: int((s == 1.0).sum())),
            "losses": g["score"].apply(lambda s: int((s == 0.0).sum())),
            "both_bad": g["both_bad"].sum().astype(int),
        }
    )
    out["ties"] = out["votes"] - out["wins"] - out["losses"] - out["both_bad"]
    out["win_rate"] = g["score"].mean()
    out["both_bad_rate"] = out["both_bad"] / out["votes"]
    out.index.name = "system"
    return out[["votes", "wins", "losses", "ties", "both_bad", "win_rate", "both_bad_rate"]]


def battle_count_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Symmetric matrix of the number of battles between each pair of systems (both orientations)."""
    long = _long_form(validate_votes(votes))
    return pd.crosstab(long["system"], long["opponent"]).rename_axis(index="system", columns="opponent")


def win_rate_matrix(votes: pd.DataFrame, ties: str = "exclude") -> pd.DataFrame:
    """Share of battles row system won against column system, over both orientations.

    ``ties="exclude"`` drops ties and both-bad (FastChat's ``compute_pairwise_win_fraction``);
    ``ties="half"`` counts them as half wins (the BT convention). NaN where two systems never met.
    """
    if ties not in ("exclude", "half"):
        raise ValueError(f"ties must be 'exclude' or 'half', got {ties!r}")
    long = _long_form(validate_votes(votes))
    if ties == "exclude":
        long = long[long["score"] != 0.5]
    table = long.pivot_table(index="system", columns="opponent", values="score", aggfunc="mean")
    systems = sorted(set(table.index) | set(table.columns))
    return table.reindex(index=systems, columns=systems).rename_axis(index="system", columns="opponent")


def average_win_rate(matrix: pd.DataFrame) -> pd.Series:
    """Mean of a win-rate matrix row over the opponents met ("average win rate vs all"), highest first."""
    return matrix.mean(axis=1, skipna=True).rename("average_win_rate").sort_values(ascending=False)
