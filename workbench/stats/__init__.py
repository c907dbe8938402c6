"""Statistics over a study's votes and curation decisions: pure functions of pandas DataFrames (no DB, no UI).

Votes schema: see ``workbench.stats.votes``; decisions schema: see ``workbench.stats.acceptance``.
Methods and formulas: docs/stats.md.
"""

from workbench.stats.acceptance import DecisionsError, acceptance_rates, curation_report, reason_counts
from workbench.stats.agreement import (
    agreement_metrics,
    agreement_report,
    fleiss_kappa,
    krippendorff_alpha,
    raw_agreement,
)
from workbench.stats.bootstrap import bootstrap_ratings
from workbench.stats.bradley_terry import DEFAULT_RIDGE, fit_bradley_terry, fit_bt_matrix
from workbench.stats.leaderboard import LEADERBOARD_COLUMNS, grouped_leaderboards, leaderboard
from workbench.stats.position import position_bias
from workbench.stats.raters import rater_quality
from workbench.stats.report import stats_report, to_jsonable
from workbench.stats.votes import WINNERS, VotesError, validate_votes
from workbench.stats.winrates import average_win_rate, battle_count_matrix, system_counts, win_rate_matrix

__all__ = [
    "DEFAULT_RIDGE",
    "LEADERBOARD_COLUMNS",
    "WINNERS",
    "DecisionsError",
    "VotesError",
    "acceptance_rates",
    "agreement_metrics",
    "agreement_report",
    "average_win_rate",
    "battle_count_matrix",
    "bootstrap_ratings",
    "curation_report",
    "fit_bradley_terry",
    "fit_bt_matrix",
    "fleiss_kappa",
    "grouped_leaderboards",
    "krippendorff_alpha",
    "leaderboard",
    "position_bias",
    "rater_quality",
    "raw_agreement",
    "reason_counts",
    "stats_report",
    "system_counts",
    "to_jsonable",
    "validate_votes",
    "win_rate_matrix",
]
