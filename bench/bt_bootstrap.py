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
from collections.abc import Callable

import numpy as np

from workbench.stats import bootstrap_ratings, fit_bradley_terry, leaderboard
from workbench.stats.baseline import bootstrap_logistic_baseline, fit_logistic_baseline
from workbench.stats.simulate import simulate_votes


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """Run fn; return its result, wall seconds and this process's CPU seconds (the latter barely moves when
    other jobs load the shared machine, so it approximates the wall time on an idle one)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--baseline-rounds", type=int, default=2)
    args = parser.parse_args()

    # Strengths spread over 600 Elo; 15% ties (a third of them both-bad); 3 votes per item.
    ratings = {f"system-{i:02d}": r for i, r in enumerate(np.linspace(700, 1300, args.systems))}
    votes = simulate_votes(ratings, args.votes, tie_rate=0.15, both_bad_share=1 / 3, votes_per_item=3)
    print(f"data: {len(votes):,} votes, {args.systems} systems, {args.rounds} bootstrap rounds")

    board, fast_s, fast_cpu = timed(lambda: leaderboard(votes, rounds=args.rounds))
    print(
        f"fast leaderboard (fit + {args.rounds} vote-bootstrap rounds + counts): {fast_s:.2f} s (cpu {fast_cpu:.2f} s)"
    )

    _, cluster_s, cluster_cpu = timed(lambda: bootstrap_ratings(votes, rounds=args.rounds, cluster="item_id"))
    items = votes["item_id"].nunique()
    print(
        f"fast item-clustered bootstrap ({items:,} items, {args.rounds} rounds): {cluster_s:.2f} s (cpu {cluster_cpu:.2f} s)"
    )

    _, base_s, base_cpu = timed(lambda: bootstrap_logistic_baseline(votes, rounds=args.baseline_rounds))
    scale = args.rounds / args.baseline_rounds
    label = "measured" if scale == 1 else f"EXTRAPOLATED from {args.baseline_rounds} rounds"
    print(
        f"baseline per-round logistic regression: {base_s / args.baseline_rounds:.2f} s/round -> "
        f"{base_s * scale:.0f} s (cpu {base_cpu * scale:.0f} s) for {args.rounds} rounds ({label})"
    )
    print(
        f"speed-up fast vs baseline: {base_s * scale / fast_s:.0f}x wall, {base_cpu * scale / fast_cpu:.0f}x cpu"
    )

    fast_fit = fit_bradley_terry(votes)
    base_fit = fit_logistic_baseline(votes)
    diff = (fast_fit - base_fit.reindex(fast_fit.index)).abs().max()
    print(f"max |rating difference| fast vs baseline on the full data: {diff:.2e} Elo")
    width = (board["ci_high"] - board["ci_low"]).median()
    print(f"median 95% CI width: {width:.1f} Elo; target <= 5 s: {'MET' if fast_s <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
