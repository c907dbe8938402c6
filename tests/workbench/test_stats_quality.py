"""Position bias, rater quality, curation report and the combined JSON report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.stats import (
    DecisionsError,
    VotesError,
    acceptance_rates,
    curation_report,
    position_bias,
    rater_quality,
    stats_report,
)
from workbench.stats.simulate import simulate_votes

TRUE = {"a": 1100.0, "b": 1000.0, "c": 950.0}


def _plant_left_bias(votes: pd.DataFrame, rows: np.ndarray, p_left: float, seed: int) -> pd.DataFrame:
    """Re-draw the ``left`` side of the given decisive rows so the winner sits on the left with p_left."""
    rng = np.random.default_rng(seed)
    out = votes.copy()
    decisive = rows & out["winner"].isin(["model_a", "model_b"]).to_numpy()
    loser = np.where(out["winner"] == "model_a", "model_b", "model_a")
    winner_left = rng.random(len(out)) < p_left
    out.loc[decisive, "left"] = np.where(winner_left, out["winner"], loser)[decisive]
    return out


def test_position_bias_detects_a_planted_left_preference():
    votes = simulate_votes(TRUE, 2_000, tie_rate=0.1, seed=1)
    biased = _plant_left_bias(votes, np.ones(len(votes), dtype=bool), p_left=0.62, seed=2)
    row = position_bias(biased).loc["(all)"]
    assert row["p_value"] < 1e-6
    assert 0.5 < row["ci_low"] < row["left_rate"] < row["ci_high"]
    assert row["left_rate"] == pytest.approx(0.62, abs=0.03)
    assert row["decisive"] == biased["winner"].isin(["model_a", "model_b"]).sum()

    fair = position_bias(votes).loc["(all)"]
    assert fair["p_value"] > 0.05 and fair["ci_low"] < 0.5 < fair["ci_high"]


def test_position_bias_per_rater_singles_out_the_biased_rater():
    votes = simulate_votes(TRUE, 3_000, raters=3, seed=3)
    biased = _plant_left_bias(votes, (votes["rater"] == "r1").to_numpy(), p_left=0.8, seed=4)
    table = position_bias(biased, by="rater")
    assert list(table.index) == ["(all)", "r0", "r1", "r2"]
    assert table.loc["r1", "p_value"] < 1e-10
    assert (table.loc[["r0", "r2"], "p_value"] > 0.01).all()
    biased.loc[biased.index[:10], "rater"] = None  # e.g. imported battles without a judge
    assert list(position_bias(biased, by="rater").index) == ["(all)", "r0", "r1", "r2"]
    with pytest.raises(VotesError, match="'left' column"):
        position_bias(votes.drop(columns="left"))


def _rater_votes() -> pd.DataFrame:
    strong = {"a": 1400.0, "b": 1000.0, "c": 950.0}  # "a" wins ~90% of its battles: a usable gold answer
    votes = simulate_votes(strong, 600, raters=3, votes_per_item=6, tie_rate=0.1, seed=5)
    votes["seconds_on_task"] = 8.0
    # "lazy" always clicks the left output within a second, on the same items as everyone else.
    lazy = votes.iloc[::6].copy()
    lazy["rater"] = "lazy"
    lazy["winner"] = lazy["left"]
    lazy["seconds_on_task"] = 0.8
    votes = pd.concat([votes, lazy], ignore_index=True)
    # Gold items: the expected answer is the stronger system ("a" when it is in the pair).
    has_a = (votes["model_a"] == "a") | (votes["model_b"] == "a")
    votes["gold_winner"] = np.where(has_a, np.where(votes["model_a"] == "a", "model_a", "model_b"), None)
    return votes


def test_rater_quality_flags_a_straight_liner_and_only_them():
    table = rater_quality(_rater_votes())
    lazy = table.loc["lazy"]
    assert lazy["modal_choice"] == "left" and lazy["modal_share"] == 1.0 and lazy["left_share"] == 1.0
    assert {"straight-lining", "always-left", "too fast"} <= set(lazy["flags"])
    assert lazy["median_seconds"] == pytest.approx(0.8)
    for honest in ("r0", "r1", "r2"):
        assert table.loc[honest, "flags"] == [], table.loc[honest]
        assert table.loc[honest, "median_seconds"] == 8.0
    # Honest raters beat a coin on gold items and agree with the others' majority more than the clicker does.
    assert (table.loc[["r0", "r1", "r2"], "gold_accuracy"] > 0.6).all()
    assert (table.loc[["r0", "r1", "r2"], "majority_agreement"] > lazy["majority_agreement"]).all()


def test_votes_without_an_item_still_count_for_the_rater_but_not_for_agreement():
    votes = _rater_votes()
    votes.loc[votes.index[:60], "item_id"] = np.nan  # e.g. imported battles
    table = rater_quality(votes)
    assert table["votes"].sum() == len(votes)
    with_items = rater_quality(votes.dropna(subset=["item_id"]))
    pd.testing.assert_series_equal(table["majority_agreement"], with_items["majority_agreement"])


def test_rater_gold_accuracy_by_hand():
    votes = pd.DataFrame(
        {
            "model_a": ["x"] * 6,
            "model_b": ["y"] * 6,
            "winner": ["model_a", "model_a", "model_b", "tie", "model_a", "model_b"],
            "gold_winner": ["model_a", "model_a", "model_a", "model_a", None, None],
            "rater": ["g"] * 6,
        }
    )
    row = rater_quality(votes, min_gold_votes=4).loc["g"]
    assert row["gold_votes"] == 4 and row["gold_accuracy"] == 0.5
    assert row["flags"] == ["low gold accuracy"]  # only 6 votes: too few for the other flags
    assert np.isnan(row["majority_agreement"]) and np.isnan(row["median_seconds"])


def _decisions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            (1, "ann", "accept", [], "color", "clip-low"),
            (1, "bob", "accept", None, "color", "clip-low"),
            (2, "ann", "reject", ["artefacts", "over-edit"], "color", "clip-low"),
            (2, "bob", "reject", "artefacts", "color", "clip-low"),
            (3, "ann", "flag", "unsafe; artefacts", "style", "ocr"),
            (3, "bob", "accept", None, "style", "ocr"),
        ],
        columns=["candidate_id", "rater", "decision", "reasons", "category", "filter_reason"],
    )


def test_curation_report_by_hand():
    report = curation_report(_decisions())
    overall = report["overall"].loc["(all)"]
    assert (overall["decisions"], overall["candidates"], overall["accepted"]) == (6, 3, 3)
    assert overall["acceptance_rate"] == 0.5
    by_category = report["by_category"]
    assert by_category.loc["color", "acceptance_rate"] == 0.5
    assert by_category.loc["style", ["accepted", "flagged"]].tolist() == [1, 1]
    assert report["by_filter_reason"].loc["ocr", "decisions"] == 2
    reasons = report["reasons"]
    assert reasons.loc["artefacts", "count"] == 3 and reasons.loc["artefacts", "share"] == 1.0
    assert reasons.loc["unsafe", "count"] == 1 and reasons.loc["over-edit", "count"] == 1
    agreement = report["agreement"]
    # Candidates 1 and 2 agree, 3 does not: 2 of 3 rater pairs agree.
    assert agreement["units"] == 3 and agreement["raw_agreement"] == pytest.approx(2 / 3)
    with pytest.raises(DecisionsError, match="row 0: decision 'maybe'"):
        acceptance_rates(_decisions().assign(decision="maybe"))


def test_stats_report_is_strict_json_with_the_contract_keys():
    votes = simulate_votes(TRUE, 400, raters=3, votes_per_item=3, tie_rate=0.2, both_bad_share=0.5, seed=6)
    votes["category"] = np.where(votes["item_id"] % 2, "color", "style")
    votes["language"] = "en"
    votes["seconds_on_task"] = 5.0
    report = stats_report(votes, _decisions(), rounds=30)
    json.dumps(report, allow_nan=False)
    assert set(report) >= {
        "leaderboard",
        "win_matrix",
        "per_category",
        "agreement",
        "position_bias",
        "raters",
    }
    row = report["leaderboard"][0]
    assert {"system", "rating", "ci_low", "ci_high", "votes", "win_rate"} <= set(row)
    assert report["win_matrix"]["systems"] == ["a", "b", "c"]
    assert report["win_matrix"]["values"][0][0] is None  # NaN diagonal becomes null
    assert set(report["per_category"]) == {"color", "style"}
    assert report["position_bias"][0]["rater"] == "(all)"
    assert {r["rater"] for r in report["raters"]} == {"r0", "r1", "r2"}
    assert report["curation"]["overall"][0]["acceptance_rate"] == 0.5
    bare = stats_report(votes[["model_a", "model_b", "winner"]], rounds=0)
    assert bare["agreement"] is None and bare["position_bias"] is None and bare["curation"] is None
