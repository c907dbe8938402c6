"""Inter-rater agreement: Krippendorff's alpha (via the ``krippendorff`` package), Fleiss' kappa, raw agreement.

Everything is computed from a units x categories count matrix (how many raters put unit i in category j), which
handles a variable number of raters per unit. A preference vote's unit is (item, unordered system pair) and its
label is taken relative to the pair's canonical (sorted) order, so "A wins" shown either way round agrees.
"""

from __future__ import annotations

from collections.abc import Callable

import krippendorff
import numpy as np
import pandas as pd

from workbench.stats.votes import VotesError, validate_votes

# Canonical preference labels; ORDINAL_RANK orders them for the ordinal alpha (first < tie/both-bad < second).
PREFERENCE_LABELS = ("first", "tie", "both_bad", "second")
ORDINAL_RANK = {"first": 0, "tie": 1, "both_bad": 1, "second": 2}
SCORE_COLUMNS = ("semantic", "quality", "overall")
SCORE_SCALE = range(11)  # the optional 0-10 scores of a vote


def unit_label_counts(
    frame: pd.DataFrame, unit_cols: list[str], rater_col: str, label_col: str, categories: list
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Keep one label per (unit, rater) -- a rater's last label on a unit wins -- and count them.

    Rows missing a unit key or rater are left out. Returns the kept rows, their unit and label codes, and the
    units x categories count matrix.
    """
    labelled = frame.dropna(subset=[*unit_cols, rater_col])
    last = labelled.drop_duplicates(subset=[*unit_cols, rater_col], keep="last")
    label = pd.Categorical(last[label_col], categories=categories).codes.astype(np.int64)
    if (label < 0).any():
        unknown = sorted(set(last[label_col][label < 0].astype(str)))
        raise ValueError(f"labels {unknown} are not among the categories {categories}")
    unit = last.groupby(unit_cols, sort=False).ngroup().to_numpy()
    counts = np.zeros((int(unit.max()) + 1 if len(unit) else 0, len(categories)))
    np.add.at(counts, (unit, label), 1.0)
    return last, unit, label, counts


def category_counts(
    frame: pd.DataFrame, unit_cols: list[str], rater_col: str, label_col: str, categories: list
) -> np.ndarray:
    """Units x categories counts, one label per (unit, rater): a rater's last label on a unit wins."""
    return unit_label_counts(frame, unit_cols, rater_col, label_col, categories)[3]


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from units x categories counts.

    Units rated fewer than twice carry no agreement information and are dropped. With a constant number of
    raters n per unit this is Fleiss (1971): P_i = (sum_j n_ij^2 - n) / (n (n - 1)), P_e = sum_j p_j^2,
    kappa = (mean P_i - P_e) / (1 - P_e). With a variable n_i the same formulas use each unit's n_i and
    p_j = sum_i n_ij / sum_i n_i. NaN when it is undefined (no such unit, or P_e = 1).
    """
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(axis=1)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    if len(counts) == 0:
        return float("nan")
    p_i = ((counts**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_j = counts.sum(axis=0) / n_i.sum()
    p_e = float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_i.mean() - p_e) / (1 - p_e))


def raw_agreement(counts: np.ndarray) -> float:
    """Share of agreeing rater pairs among all pairs of ratings on the same unit (NaN without any pair)."""
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(axis=1)
    pairs = (n_i * (n_i - 1)).sum()
    return float((counts * (counts - 1)).sum() / pairs) if pairs else float("nan")


def krippendorff_alpha(counts: np.ndarray, level: str = "nominal", value_domain: list | None = None) -> float:
    """Krippendorff's alpha of units x values counts (columns ordered as ``value_domain`` for ordinal/interval).

    NaN where alpha is undefined: no unit with two ratings, or a single value observed overall.
    """
    counts = np.asarray(counts, dtype=float)
    pairable = counts[counts.sum(axis=1) >= 2]
    if len(pairable) == 0 or np.count_nonzero(pairable.sum(axis=0)) < 2:
        return float("nan")
    domain = value_domain if value_domain is not None else list(range(counts.shape[1]))
    return float(krippendorff.alpha(value_counts=pairable, value_domain=domain, level_of_measurement=level))


def unit_bootstrap_interval(
    counts: np.ndarray,
    metric: Callable[[np.ndarray], float],
    rounds: int,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[float]:
    """Percentile interval of ``metric`` over ``rounds`` resamples of the units (rows) with two or more ratings.

    Resampling whole units keeps each unit's ratings together, as the item-clustered bootstrap of the ratings
    does. [NaN, NaN] when fewer than two such units exist or the metric is undefined in every resample.
    """
    pairable = np.asarray(counts, dtype=float)
    pairable = pairable[pairable.sum(axis=1) >= 2]
    if len(pairable) < 2 or rounds <= 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.array(
        [metric(pairable[rng.integers(0, len(pairable), len(pairable))]) for _ in range(rounds)]
    )
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    tail = 100 * (1 - confidence) / 2
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def agreement_metrics(
    counts: np.ndarray, ordinal_counts: np.ndarray | None = None, rounds: int = 0, seed: int = 0
) -> dict[str, object]:
    """Alpha (nominal, and ordinal when ``ordinal_counts`` are given), Fleiss' kappa, raw agreement, sizes;
    with ``rounds > 0`` also ``krippendorff_alpha_nominal_ci`` (95% unit-bootstrap interval)."""
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(axis=1)
    out: dict[str, object] = {
        "units": int((n_i >= 2).sum()),
        "ratings": int(n_i[n_i >= 2].sum()),
        "krippendorff_alpha_nominal": krippendorff_alpha(counts, "nominal"),
        "fleiss_kappa": fleiss_kappa(counts),
        "raw_agreement": raw_agreement(counts),
    }
    if rounds > 0:
        out["krippendorff_alpha_nominal_ci"] = unit_bootstrap_interval(
            counts, krippendorff_alpha, rounds, seed
        )
    if ordinal_counts is not None:
        out["krippendorff_alpha_ordinal"] = krippendorff_alpha(ordinal_counts, "ordinal")
    return out


def canonical_preferences(votes: pd.DataFrame) -> pd.DataFrame:
    """Votes with ``pair`` ("x|y", sorted names) and ``label`` in PREFERENCE_LABELS relative to that order."""
    a, b = votes["model_a"].astype(str).to_numpy(), votes["model_b"].astype(str).to_numpy()
    a_first = a < b
    w = votes["winner"].to_numpy()
    label = np.select(
        [w == "tie", w == "tie (bothbad)", (w == "model_a") == a_first],
        ["tie", "both_bad", "first"],
        default="second",
    )
    out = votes.copy()
    out["pair"] = np.where(a_first, np.char.add(np.char.add(a, "|"), b), np.char.add(np.char.add(b, "|"), a))
    out["label"] = label
    return out


def score_agreement(prefs: pd.DataFrame, column: str) -> dict[str, float]:
    """Krippendorff's alpha (ordinal and interval) of one 0-10 score column over (item, pair) units."""
    scored = prefs.dropna(subset=[column])
    values = scored[column].astype(float)
    if ((values < 0) | (values > 10) | (values != values.round())).any():
        raise VotesError(f"score column {column!r} must hold whole numbers from 0 to 10")
    scored = scored.assign(**{column: values.astype(int)})
    counts = category_counts(scored, ["item_id", "pair"], "rater", column, list(SCORE_SCALE))
    n_i = counts.sum(axis=1)
    return {
        "units": int((n_i >= 2).sum()),
        "ratings": int(n_i[n_i >= 2].sum()),
        "krippendorff_alpha_ordinal": krippendorff_alpha(counts, "ordinal", list(SCORE_SCALE)),
        "krippendorff_alpha_interval": krippendorff_alpha(counts, "interval", list(SCORE_SCALE)),
    }


def agreement_report(
    votes: pd.DataFrame, score_columns: tuple[str, ...] = SCORE_COLUMNS, rounds: int = 200, seed: int = 0
) -> dict[str, object]:
    """Inter-rater agreement on preference votes (needs ``item_id`` and ``rater`` columns).

    Units are (item, system pair). Returns ``units`` and ``ratings`` (those on units with two or more raters),
    Krippendorff's alpha nominal (4 labels: first, tie, both-bad, second) and ordinal (first < tie = both-bad <
    second), Fleiss' kappa, raw agreement, raw agreement without ties (FastChat's ``compute_agreement``
    "w/o tie": only pairs of two decisive votes), and ``scores``: ordinal and interval alpha of each optional
    0-10 score column present with values (``semantic``, ``quality``, ``overall`` by default), and
    ``krippendorff_alpha_nominal_ci``: a 95% interval from ``rounds`` resamples of the units (0 skips it).
    """
    votes = validate_votes(votes)
    missing = [c for c in ("item_id", "rater") if c not in votes.columns]
    if missing:
        raise VotesError(f"agreement needs column(s) {missing} in the votes table")
    prefs = canonical_preferences(votes)
    units = ["item_id", "pair"]
    counts = category_counts(prefs, units, "rater", "label", list(PREFERENCE_LABELS))
    to_rank = np.zeros((len(PREFERENCE_LABELS), max(ORDINAL_RANK.values()) + 1))
    to_rank[np.arange(len(PREFERENCE_LABELS)), [ORDINAL_RANK[label] for label in PREFERENCE_LABELS]] = 1.0
    ordinal = counts @ to_rank
    report = agreement_metrics(counts, ordinal, rounds=rounds, seed=seed)
    report["raw_agreement_no_ties"] = raw_agreement(counts[:, [0, 3]])
    report["scores"] = {
        column: score_agreement(prefs, column)
        for column in score_columns
        if column in prefs.columns and prefs[column].notna().any()
    }
    return report
