"""Simulated preference votes from known Bradley-Terry ratings (for power analysis, tests and benchmarks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats.bradley_terry import BASE, SCALE


def simulate_votes(
    ratings: dict[str, float],
    n_votes: int,
    tie_rate: float = 0.0,
    both_bad_share: float = 0.0,
    votes_per_item: int = 1,
    item_noise: float = 0.0,
    raters: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Votes in the votes schema whose expected score matches BT with the given Elo ``ratings``.

    - Each vote compares a uniformly drawn pair, orientation and left side random.
    - A share ``tie_rate`` of votes are ties (capped per vote so the expected score of A stays exactly
      P_BT(A beats B), ties counting half); ``both_bad_share`` of the ties are ``tie (bothbad)``.
    - ``votes_per_item`` consecutive votes share an ``item_id`` and the same pair; ``item_noise`` adds a
      per-item, per-system Elo offset with that standard deviation, so votes on one item are correlated.
    - ``raters > 0`` adds a ``rater`` column (uniform over r0..r{raters-1}).
    """
    if len(ratings) < 2:
        raise ValueError("simulate_votes needs at least two systems")
    rng = np.random.default_rng(seed)
    names = np.array(list(ratings), dtype=object)
    elo = np.array(list(ratings.values()), dtype=float)
    p = len(names)
    n_items = -(-n_votes // votes_per_item)
    item = np.arange(n_votes) // votes_per_item
    first = rng.integers(0, p, n_items)
    second = (first + rng.integers(1, p, n_items)) % p
    swap = rng.random(n_votes) < 0.5  # orientation per vote, so A/B are not tied to the item
    a = np.where(swap, second[item], first[item])
    b = np.where(swap, first[item], second[item])
    offset = rng.normal(0.0, item_noise, size=(n_items, p)) if item_noise > 0 else np.zeros((n_items, p))
    diff = (elo[a] + offset[item, a]) - (elo[b] + offset[item, b])
    p_a = 1.0 / (1.0 + BASE ** (-diff / SCALE))
    tie_p = np.minimum(tie_rate, 2 * np.minimum(p_a, 1 - p_a))
    tie = rng.random(n_votes) < tie_p
    decisive_a = rng.random(n_votes) < (p_a - tie_p / 2) / np.maximum(1 - tie_p, 1e-12)
    both_bad = tie & (rng.random(n_votes) < both_bad_share)
    winner = np.where(
        both_bad, "tie (bothbad)", np.where(tie, "tie", np.where(decisive_a, "model_a", "model_b"))
    )
    votes = pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": winner,
            "item_id": item,
            "left": np.where(rng.random(n_votes) < 0.5, "model_a", "model_b"),
        }
    )
    if raters > 0:
        votes["rater"] = np.char.add("r", rng.integers(0, raters, n_votes).astype(str))
    return votes
