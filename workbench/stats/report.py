"""One JSON-ready document with every statistic of a study, in the shape ``Workbench.stats(study)`` returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.stats.acceptance import curation_report
from workbench.stats.agreement import agreement_report
from workbench.stats.leaderboard import grouped_leaderboards, leaderboard
from workbench.stats.position import position_bias
from workbench.stats.raters import rater_quality
from workbench.stats.votes import validate_votes
from workbench.stats.winrates import average_win_rate, battle_count_matrix, win_rate_matrix


def to_jsonable(value: object) -> object:
    """DataFrames -> list of row dicts (index kept as a column when named), Series -> dict, NaN -> None,
    numpy scalars -> Python scalars; recursive over dicts and lists."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if value.index.name is not None else value
        return [to_jsonable(row) for row in frame.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _matrix(frame: pd.DataFrame) -> dict[str, object]:
    return {"systems": [str(s) for s in frame.index], "values": to_jsonable(frame.to_numpy())}


def stats_report(
    votes: pd.DataFrame,
    decisions: pd.DataFrame | None = None,
    rounds: int = 1000,
    cluster: str | None = "item_id",
    seed: int = 0,
    min_group_votes: int = 1,
) -> dict[str, object]:
    """Keys: ``leaderboard`` (rows with system, rating, ci_low, ci_high, rank, votes, win_rate, ...),
    ``win_matrix`` ({"systems", "values", "battles", "average_win_rate"}; ties excluded as in FastChat),
    ``per_category`` and ``per_language`` ({value: leaderboard rows}), ``agreement``, ``position_bias`` (rows per
    rater plus "(all)"), ``raters`` and ``curation`` (None without decisions). Sections whose columns are absent
    are None. ``cluster`` falls back to vote resampling when the column is missing.
    """
    votes = validate_votes(votes)
    if cluster is not None and cluster not in votes.columns:
        cluster = None
    board_kwargs = {"rounds": rounds, "cluster": cluster, "seed": seed}
    wins = win_rate_matrix(votes)
    has = set(votes.columns)
    return to_jsonable(
        {
            "leaderboard": leaderboard(votes, **board_kwargs),
            "win_matrix": {
                **_matrix(wins),
                "battles": to_jsonable(
                    battle_count_matrix(votes).reindex(index=wins.index, columns=wins.index).to_numpy()
                ),
                "average_win_rate": average_win_rate(wins),
            },
            "per_category": grouped_leaderboards(votes, "category", min_group_votes, **board_kwargs)
            if "category" in has
            else None,
            "per_language": grouped_leaderboards(votes, "language", min_group_votes, **board_kwargs)
            if "language" in has
            else None,
            "agreement": agreement_report(votes) if {"item_id", "rater"} <= has else None,
            "position_bias": position_bias(votes, by="rater" if "rater" in has else None)
            if "left" in has
            else None,
            "raters": rater_quality(votes) if "rater" in has else None,
            "curation": curation_report(decisions) if decisions is not None else None,
        }
    )
