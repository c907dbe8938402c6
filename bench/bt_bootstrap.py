"""Bradley-Terry + 1,000 bootstrap rounds over 1,000,000 simulated votes and 20 systems (target <= 5 s).

Measures, in one run on the same data:
  fast     -- workbench.stats: validate + aggregate the DataFrame into pair-outcome counts, full-data fit,
              1,000 multinomial bootstrap rounds fitted together by batched Newton;
  baseline -- the FastChat/GenAI-Arena procedure (per round: resample vote rows, build the duplicated dense
              design matrix, fit a logistic regression) on --baseline-rounds rounds, extrapolated to --rounds.
Prints both times, their ratio and the largest rating difference between the two fits on the full data.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bt_bootstrap.py [--votes 1000000] [--systems 20] [--rounds 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from workbench.stats import bootstrap_ratings, fit_bradley_terry, leaderboard
from workbench.stats.baseline import bootstrap_logistic_baseline, fit_logistic_baseline


def simulate_votes(n_votes: int, n_systems: int, seed: int = 0) -> pd.DataFrame:
    """Votes from a BT model with strengths spread over 600 Elo; 10% ties, 5% both-bad, k=3 votes per item."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(-0.75, 0.75, n_systems)  # log10-odds units: 400 x this = Elo offset
    a = rng.integers(0, n_systems, n_votes)
    b = (a + rng.integers(1, n_systems, n_votes)) % n_systems
    p_a = 1.0 / (1.0 + 10.0 ** (-(strength[a] - strength[b])))
    u = rng.random(n_votes)
    # Draw ties first, then decide decisive votes so that E[score of A] stays p_a (ties count as half).
    tie_rate = np.minimum(0.15, 2 * np.minimum(p_a, 1 - p_a))
    tie = u < tie_rate
    a_wins = rng.random(n_votes) < (p_a - tie_rate / 2) / (1 - tie_rate)
    both_bad = tie & (rng.random(n_votes) < 1 / 3)
    winner = np.where(both_bad, "tie (bothbad)", np.where(tie, "tie", np.where(a_wins, "model_a", "model_b")))
    names = np.array([f"system-{i:02d}" for i in range(n_systems)])
    return pd.DataFrame(
        {"model_a": names[a], "model_b": names[b], "winner": winner, "item_id": np.arange(n_votes) // 3}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--baseline-rounds", type=int, default=2)
    args = parser.parse_args()

    votes = simulate_votes(args.votes, args.systems)
    print(f"data: {len(votes):,} votes, {args.systems} systems, {args.rounds} bootstrap rounds")

    start = time.perf_counter()
    board = leaderboard(votes, rounds=args.rounds)
    fast_s = time.perf_counter() - start
    print(f"fast leaderboard (fit + {args.rounds} vote-bootstrap rounds + counts): {fast_s:.2f} s")

    start = time.perf_counter()
    bootstrap_ratings(votes, rounds=args.rounds, cluster="item_id")
    cluster_s = time.perf_counter() - start
    print(
        f"fast item-clustered bootstrap ({len(votes) // 3:,} items, {args.rounds} rounds): {cluster_s:.2f} s"
    )

    start = time.perf_counter()
    bootstrap_logistic_baseline(votes, rounds=args.baseline_rounds)
    per_round = (time.perf_counter() - start) / args.baseline_rounds
    baseline_s = per_round * args.rounds
    label = (
        "measured"
        if args.baseline_rounds == args.rounds
        else f"EXTRAPOLATED from {args.baseline_rounds} rounds"
    )
    print(f"baseline per-round logistic regression: {per_round:.2f} s/round -> {baseline_s:.1f} s ({label})")
    print(f"speed-up fast vs baseline: {baseline_s / fast_s:.0f}x")

    fast_fit = fit_bradley_terry(votes)
    base_fit = fit_logistic_baseline(votes)
    diff = (fast_fit - base_fit.reindex(fast_fit.index)).abs().max()
    print(f"max |rating difference| fast vs baseline on the full data: {diff:.2e} Elo")
    width = (board["ci_high"] - board["ci_low"]).median()
    print(f"median 95% CI width: {width:.1f} Elo; target <= 5 s: {'MET' if fast_s <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
