"""Bradley-Terry fit: recovery of known strengths, equality with the FastChat-style baseline, tie handling,
anchoring, win rates and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.stats import (
    VotesError,
    average_win_rate,
    battle_count_matrix,
    fit_bradley_terry,
    fit_bt_matrix,
    leaderboard,
    system_counts,
    win_rate_matrix,
)
from workbench.stats.baseline import fit_logistic_baseline
from workbench.stats.simulate import simulate_votes

TRUE = {"alpha": 1250.0, "beta": 1100.0, "gamma": 1000.0, "delta": 900.0, "eps": 750.0}


def _votes(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def _centred(ratings: pd.Series) -> pd.Series:
    return ratings - ratings.mean()


def test_recovers_known_strengths():
    votes = simulate_votes(TRUE, 40_000, tie_rate=0.2, both_bad_share=0.5, seed=1)
    fitted = _centred(fit_bradley_terry(votes))
    truth = _centred(pd.Series(TRUE))
    # 40k votes over 10 pairs: the standard error is ~5 Elo; 20 Elo is four of them.
    assert (fitted[truth.index] - truth).abs().max() < 20
    assert list(fitted.index) == list(truth.sort_values(ascending=False).index)


def test_fast_fit_equals_logistic_regression_baseline():
    votes = simulate_votes(TRUE, 3_000, tie_rate=0.15, both_bad_share=0.3, seed=2)
    fast = fit_bradley_terry(votes)
    slow = fit_logistic_baseline(votes)
    assert (fast - slow[fast.index]).abs().max() < 1e-3


def test_fast_fit_equals_baseline_on_sparse_degenerate_data():
    # Few votes, a system with only losses: the ridge (sklearn's C=1 default) must match too.
    votes = _votes(
        [
            ("a", "b", "model_a"),
            ("b", "c", "model_a"),
            ("c", "a", "tie"),
            ("d", "a", "model_b"),
            ("b", "d", "model_a"),
        ]
    )
    fast = fit_bradley_terry(votes)
    slow = fit_logistic_baseline(votes)
    assert (fast - slow[fast.index]).abs().max() < 1e-3


def test_ties_count_half_a_win_each_way():
    # 30 A wins, 10 B wins, 20 ties: win mass 40 vs 20, so the MLE gap is 400 * log10(40 / 20).
    votes = _votes([("a", "b", "model_a")] * 30 + [("a", "b", "model_b")] * 10 + [("b", "a", "tie")] * 20)
    ratings = fit_bradley_terry(votes, ridge=1e-9)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(2), abs=1e-3)
    both_bad = votes.replace({"winner": {"tie": "tie (bothbad)"}})
    pd.testing.assert_series_equal(fit_bradley_terry(both_bad), fit_bradley_terry(votes))


def test_only_ties_give_equal_ratings_and_orientation_does_not_matter():
    votes = _votes([("a", "b", "tie"), ("b", "a", "tie (bothbad)")] * 5)
    assert fit_bradley_terry(votes).to_dict() == pytest.approx({"a": 1000.0, "b": 1000.0})
    flipped = _votes([("b", "a", "model_b"), ("a", "b", "model_b")])
    straight = _votes([("a", "b", "model_a"), ("b", "a", "model_a")])
    pd.testing.assert_series_equal(fit_bradley_terry(flipped), fit_bradley_terry(straight))


def test_system_with_only_losses_gets_a_finite_low_rating():
    votes = _votes(
        [("a", "loser", "model_a")] * 50 + [("loser", "b", "model_b")] * 50 + [("a", "b", "tie")] * 10
    )
    ratings = fit_bradley_terry(votes)
    assert np.isfinite(ratings).all()
    assert ratings.idxmin() == "loser"
    assert ratings["a"] - ratings["loser"] > 400  # far below, yet finite thanks to the ridge
    board = leaderboard(votes, rounds=50)
    assert np.isfinite(board[["rating", "ci_low", "ci_high"]].to_numpy()).all()


def test_anchor_shifts_ratings_without_changing_gaps():
    votes = simulate_votes(TRUE, 2_000, seed=3)
    free = fit_bradley_terry(votes)
    anchored = fit_bradley_terry(votes, anchor="gamma", anchor_rating=1114)
    assert anchored["gamma"] == pytest.approx(1114)
    assert (anchored - anchored["gamma"]).to_dict() == pytest.approx((free - free["gamma"]).to_dict())
    with pytest.raises(ValueError, match="anchor"):
        fit_bradley_terry(votes, anchor="nobody")


def test_no_votes_gives_empty_results():
    empty = _votes([])
    assert fit_bradley_terry(empty).empty
    assert leaderboard(empty, rounds=10).empty
    assert system_counts(empty).empty


def test_one_system_gets_the_initial_rating():
    # A vote needs two systems, so one system only arises inside the fit (e.g. a filtered group).
    assert fit_bt_matrix(np.zeros((1, 1))).tolist() == [0.0]
    assert fit_bt_matrix(np.zeros((3, 1, 1))).shape == (3, 1)
    assert fit_bt_matrix(np.zeros((0, 0))).shape == (0,)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        fit_bt_matrix(np.zeros((2, 2)), ridge=0)


def test_single_pair_leaderboard_and_counts():
    votes = _votes(
        [("x", "y", "model_a"), ("x", "y", "tie (bothbad)"), ("y", "x", "tie"), ("y", "x", "model_a")]
    )
    board = leaderboard(votes, rounds=20).set_index("system")
    assert board.loc["x", "votes"] == 4
    assert (board.loc["x", ["wins", "losses", "ties", "both_bad"]] == [1, 1, 1, 1]).all()
    assert board.loc["x", "win_rate"] == 0.5
    assert board.loc["x", "both_bad_rate"] == 0.25
    assert board.loc["x", "rating"] == pytest.approx(1000)


def test_win_rate_matrix_and_battle_counts_by_hand():
    votes = _votes(
        [
            ("a", "b", "model_a"),
            ("b", "a", "model_b"),  # a beats b twice
            ("b", "a", "model_a"),  # b beats a once
            ("a", "b", "tie"),
            ("a", "c", "model_b"),  # c beats a
        ]
    )
    excl = win_rate_matrix(votes)
    assert excl.loc["a", "b"] == pytest.approx(2 / 3)
    assert excl.loc["b", "a"] == pytest.approx(1 / 3)
    assert excl.loc["a", "c"] == 0.0
    assert math.isnan(excl.loc["b", "c"]) and math.isnan(excl.loc["a", "a"])
    half = win_rate_matrix(votes, ties="half")
    assert half.loc["a", "b"] == pytest.approx(2.5 / 4)
    battles = battle_count_matrix(votes)
    assert battles.loc["a", "b"] == battles.loc["b", "a"] == 4
    assert battles.loc["b", "c"] == 0
    avg = average_win_rate(excl)
    assert avg["a"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert avg["b"] == pytest.approx(1 / 3)  # never met c: averaged over the opponents it met
    with pytest.raises(ValueError, match="ties"):
        win_rate_matrix(votes, ties="drop")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"model_a": ["a"], "winner": ["model_a"]}), "lacks column"),
        (_votes([("a", "b", "A")]), "row 0: winner 'A'"),
        (
            _votes([("a", "b", "model_a"), ("a", "a", "tie")]),
            "row 1: a system cannot be compared with itself",
        ),
        (_votes([("a", None, "tie")]), "row 0: model_b is missing"),
        (_votes([("a", "b", "tie")]).assign(left="right"), "row 0: left 'right'"),
    ],
)
def test_malformed_votes_raise_clear_errors(frame, message):
    with pytest.raises(VotesError, match=message):
        fit_bradley_terry(frame)
