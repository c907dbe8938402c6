"""Agreement metrics against hand-computed values, published examples and the krippendorff package."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pandas as pd
import pytest

from workbench.stats import VotesError, agreement_report, fleiss_kappa, krippendorff_alpha, raw_agreement
from workbench.stats.agreement import unit_bootstrap_interval

# Fleiss (1971) worked example as on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, missing values.
# Published: nominal 0.743, interval 0.849.
NAN = np.nan
KRIPPENDORFF_EXAMPLE = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def _counts_from_reliability(data: np.ndarray, values: list[float]) -> np.ndarray:
    return np.stack([(data == v).sum(axis=0) for v in values], axis=1)


def test_fleiss_kappa_matches_the_published_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=1e-4)


def test_krippendorff_alpha_matches_the_published_example():
    counts = _counts_from_reliability(KRIPPENDORFF_EXAMPLE, [1, 2, 3, 4, 5])
    assert krippendorff_alpha(counts, "nominal") == pytest.approx(0.743, abs=1e-3)
    assert krippendorff_alpha(counts, "interval", value_domain=[1, 2, 3, 4, 5]) == pytest.approx(
        0.849, abs=1e-3
    )


def test_two_rater_binary_example_by_hand():
    # Units (a,a), (a,b), (b,b), (b,b). Coincidences: o_aa=2, o_bb=4, o_ab=o_ba=1; n_a=3, n_b=5, n=8.
    counts = np.array([[2, 0], [1, 1], [0, 2], [0, 2]])
    assert krippendorff_alpha(counts) == pytest.approx(1 - (2 / 8) / (2 * 3 * 5 / (8 * 7)))  # 0.5333
    # Fleiss: mean P_i = 3/4, P_e = (3/8)^2 + (5/8)^2.
    p_e = (3 / 8) ** 2 + (5 / 8) ** 2
    assert fleiss_kappa(counts) == pytest.approx((0.75 - p_e) / (1 - p_e))  # 0.4667
    assert raw_agreement(counts) == pytest.approx(6 / 8)


def test_degenerate_inputs_give_nan_not_errors():
    single_ratings = np.array([[1, 0], [0, 1]])  # nobody rated a unit twice
    assert math.isnan(fleiss_kappa(single_ratings))
    assert math.isnan(krippendorff_alpha(single_ratings))
    assert math.isnan(raw_agreement(single_ratings))
    one_value = np.array([[3, 0], [2, 0]])  # everyone always says the same thing: chance agreement is 1
    assert math.isnan(fleiss_kappa(one_value))
    assert math.isnan(krippendorff_alpha(one_value))
    assert raw_agreement(one_value) == 1.0


def _vote(item: int, rater: str, a: str, b: str, winner: str) -> dict[str, object]:
    return {"item_id": item, "rater": rater, "model_a": a, "model_b": b, "winner": winner}


def test_agreement_is_invariant_to_which_side_a_system_was_on():
    votes = pd.DataFrame(
        [
            _vote(1, "r1", "x", "y", "model_a"),
            _vote(1, "r2", "y", "x", "model_b"),  # same judgement: x is better
            _vote(2, "r1", "x", "y", "tie"),
            _vote(2, "r2", "y", "x", "tie"),
            _vote(3, "r1", "x", "z", "tie (bothbad)"),
            _vote(3, "r2", "z", "x", "tie (bothbad)"),
            _vote(4, "r1", "y", "z", "model_b"),
            _vote(4, "r2", "z", "y", "model_a"),
        ]
    )
    report = agreement_report(votes)
    assert report["units"] == 4 and report["ratings"] == 8
    assert report["raw_agreement"] == 1.0
    assert report["raw_agreement_no_ties"] == 1.0
    assert report["krippendorff_alpha_nominal"] == pytest.approx(1.0)
    assert report["fleiss_kappa"] == pytest.approx(1.0)


def test_agreement_report_equals_krippendorff_on_reliability_data():
    rng = np.random.default_rng(0)
    labels = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
    rows, truth = [], rng.integers(0, 4, 60)
    for item in range(60):
        raters = rng.choice(["r1", "r2", "r3", "r4"], size=rng.integers(1, 5), replace=False)
        for rater in raters:
            label = truth[item] if rng.random() < 0.6 else rng.integers(0, 4)
            rows.append(_vote(item, str(rater), "p", "q", str(labels[label])))
    votes = pd.DataFrame(rows)
    # Independent route: a raters x units matrix of label codes, NaN where a rater skipped the unit.
    grid = votes.pivot(index="rater", columns="item_id", values="winner")
    codes = grid.replace({"model_a": 0, "model_b": 3, "tie": 1, "tie (bothbad)": 2}).astype(float).to_numpy()
    report = agreement_report(votes)
    assert report["krippendorff_alpha_nominal"] == pytest.approx(
        krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
    )
    ordinal = np.where(codes == 2, 1, np.where(codes == 3, 2, codes))  # tie and both-bad share the middle
    assert report["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=ordinal, level_of_measurement="ordinal")
    )
    rated = grid.notna().sum(axis=0)
    assert report["units"] == int((rated >= 2).sum())


def test_a_raters_last_vote_on_a_unit_is_the_one_that_counts():
    votes = pd.DataFrame(
        [
            _vote(1, "r1", "x", "y", "model_b"),
            _vote(1, "r1", "x", "y", "model_a"),  # edited answer
            _vote(1, "r2", "x", "y", "model_a"),
        ]
    )
    report = agreement_report(votes)
    assert report["ratings"] == 2 and report["raw_agreement"] == 1.0


def test_agreement_needs_items_and_raters():
    with pytest.raises(VotesError, match="item_id"):
        agreement_report(pd.DataFrame([{"model_a": "x", "model_b": "y", "winner": "tie", "rater": "r"}]))


def test_score_agreement_on_0_to_10_scores():
    rows = []
    for item in range(30):
        for rater, noise in (("r1", 0), ("r2", 1), ("r3", -1)):
            row = _vote(item, rater, "p", "q", "tie")
            row["overall"] = min(10, max(0, item % 11 + noise))
            row["semantic"] = None
            rows.append(row)
    votes = pd.DataFrame(rows)
    scores = agreement_report(votes)["scores"]
    assert set(scores) == {"overall"}  # an all-empty column is skipped
    overall = scores["overall"]
    assert overall["units"] == 30 and overall["ratings"] == 90
    grid = votes.pivot(index="rater", columns="item_id", values="overall").astype(float).to_numpy()
    for level in ("ordinal", "interval"):
        expected = krippendorff.alpha(
            reliability_data=grid, level_of_measurement=level, value_domain=range(11)
        )
        assert overall[f"krippendorff_alpha_{level}"] == pytest.approx(expected)
    assert overall["krippendorff_alpha_interval"] > 0.9
    with pytest.raises(VotesError, match="whole numbers from 0 to 10"):
        agreement_report(votes.assign(overall=11))


def test_alpha_interval_from_resampled_units_brackets_the_estimate_and_shrinks_with_more_units():
    rng = np.random.default_rng(3)

    def noisy_units(n_units: int) -> np.ndarray:
        truth = rng.integers(0, 3, n_units)
        labels = np.where(rng.random((n_units, 3)) < 0.7, truth[:, None], rng.integers(0, 3, (n_units, 3)))
        return np.stack([(labels == k).sum(axis=1) for k in range(3)], axis=1)

    small, large = noisy_units(40), noisy_units(400)
    low, high = unit_bootstrap_interval(small, krippendorff_alpha, rounds=300)
    assert low < krippendorff_alpha(small) < high
    low_l, high_l = unit_bootstrap_interval(large, krippendorff_alpha, rounds=300)
    assert high_l - low_l < 0.6 * (high - low)  # width ~ 1/sqrt(units): ~0.32 expected
    assert all(math.isnan(v) for v in unit_bootstrap_interval(small[:1], krippendorff_alpha, rounds=10))
