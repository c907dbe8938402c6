"""Bootstrap CIs: nominal coverage, equivalence of the multinomial draw with resampling votes, clustering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.stats import VotesError, bootstrap_ratings, fit_bradley_terry, leaderboard
from workbench.stats.simulate import simulate_votes

TRUE = {"a": 1100.0, "b": 1000.0, "c": 900.0}


def _width(boot: pd.DataFrame) -> pd.Series:
    return boot.quantile(0.975) - boot.quantile(0.025)


def test_vote_bootstrap_cis_cover_the_truth_at_roughly_nominal_rate():
    truth = pd.Series(TRUE) - 1000.0  # the ridge centres the fitted ratings on 1000, like the truth here
    covered = []
    for seed in range(100):
        boot = bootstrap_ratings(simulate_votes(TRUE, 600, tie_rate=0.1, seed=seed), rounds=200, seed=seed)
        low, high = boot.quantile(0.025) - 1000.0, boot.quantile(0.975) - 1000.0
        covered.extend(((low <= truth[low.index]) & (truth[low.index] <= high)).tolist())
    coverage = np.mean(covered)
    assert 0.88 <= coverage <= 0.99, coverage  # 300 intervals at a nominal 95%


def test_multinomial_draw_matches_resampling_vote_rows():
    votes = simulate_votes(TRUE, 1_500, tie_rate=0.2, seed=5)
    fast = bootstrap_ratings(votes, rounds=200, seed=1)
    rng = np.random.default_rng(2)
    naive = pd.DataFrame(
        [fit_bradley_terry(votes.sample(frac=1.0, replace=True, random_state=rng)) for _ in range(200)]
    )
    ratio = fast.std() / naive.std()[fast.columns]
    assert ratio.between(0.8, 1.25).all(), ratio
    assert (fast.mean() - naive.mean()[fast.columns]).abs().max() < 5


def test_cluster_bootstrap_is_wider_when_votes_on_an_item_are_correlated():
    correlated = simulate_votes(TRUE, 3_000, votes_per_item=10, item_noise=300, seed=7)
    by_vote = _width(bootstrap_ratings(correlated, rounds=300, seed=0))
    by_item = _width(bootstrap_ratings(correlated, rounds=300, cluster="item_id", seed=0))
    assert (by_item > 1.3 * by_vote).all(), (by_item, by_vote)

    independent = simulate_votes(TRUE, 3_000, votes_per_item=1, seed=7)
    ratio = _width(bootstrap_ratings(independent, rounds=300, cluster="item_id")) / _width(
        bootstrap_ratings(independent, rounds=300)
    )
    assert ratio.between(0.8, 1.25).all(), ratio


def test_bootstrap_is_reproducible_and_seed_dependent():
    votes = simulate_votes(TRUE, 500, seed=1)
    first = bootstrap_ratings(votes, rounds=50, seed=3)
    pd.testing.assert_frame_equal(first, bootstrap_ratings(votes, rounds=50, seed=3))
    assert not first.equals(bootstrap_ratings(votes, rounds=50, seed=4))
    assert bootstrap_ratings(votes, rounds=0).shape == (0, 3)


def test_system_missing_from_a_cluster_round_is_nan_not_1000():
    votes = simulate_votes(TRUE, 200, votes_per_item=2, seed=2)
    rare = pd.DataFrame({"model_a": ["rare"], "model_b": ["a"], "winner": ["model_a"], "item_id": [10_000]})
    votes = pd.concat([votes, rare], ignore_index=True)
    boot = bootstrap_ratings(votes, rounds=200, cluster="item_id", seed=0)
    missing = boot["rare"].isna()
    assert 0 < missing.sum() < 200  # absent from roughly 1/e of the rounds
    assert boot.drop(columns="rare").notna().all().all()
    board = leaderboard(votes, rounds=200, cluster="item_id").set_index("system")
    assert np.isfinite(board.loc["rare", ["ci_low", "ci_high"]].astype(float)).all()


def test_votes_without_a_cluster_label_are_resampled_as_singletons():
    votes = simulate_votes(TRUE, 400, votes_per_item=4, seed=8)
    imported = votes.assign(item_id=np.nan)  # e.g. imported arena battles without an item
    by_cluster = bootstrap_ratings(imported, rounds=300, cluster="item_id", seed=1)
    by_vote = bootstrap_ratings(imported, rounds=300, seed=1)
    assert by_cluster.notna().all().all()
    assert (_width(by_cluster) / _width(by_vote)).between(0.8, 1.25).all()


def test_anchor_and_rank_with_uncertainty():
    votes = simulate_votes({"top": 1400.0, "mid1": 1000.0, "mid2": 1000.0}, 2_000, seed=4)
    boot = bootstrap_ratings(votes, rounds=100, anchor="mid1", anchor_rating=1114)
    assert (boot["mid1"] == 1114).all()
    board = leaderboard(votes, rounds=200).set_index("system")
    assert board.loc["top", "rank"] == 1
    assert board.loc["mid1", "rank"] == board.loc["mid2", "rank"] == 2  # overlapping CIs share a rank
    assert (board["ci_low"] <= board["rating"]).all() and (board["rating"] <= board["ci_high"]).all()


def test_bad_bootstrap_arguments():
    votes = simulate_votes(TRUE, 100, seed=0)
    with pytest.raises(VotesError, match="cluster on 'session'"):
        bootstrap_ratings(votes, cluster="session")
    with pytest.raises(ValueError, match="rounds"):
        bootstrap_ratings(votes, rounds=-1)
    with pytest.raises(ValueError, match="confidence"):
        leaderboard(votes, confidence=95)
