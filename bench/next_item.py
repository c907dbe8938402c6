"""Next-item selection latency with 100,000 items: p50/p95 of ``Workbench.next_item`` (target p95 <= 10 ms).

Each call claims an item for a rater, picks the least-shown system pair, balances the sides and logs the
impression; the rater then skips it (so the next call really selects, instead of re-showing the open one). The
skip is timed separately. Raters rotate so the "never the same item twice" filter has history to check.

    .venv/bin/python bench/next_item.py [--items 100000] [--calls 1000] [--db URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._machine import machine_line
from workbench.bulk import bulk_items
from workbench.service import Workbench

TARGET_P95_MS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wb = Workbench(db_url=args.db or f"sqlite:///{Path(tmp) / 'bench.db'}", data_dir=tmp)
        wb.init()
        start = time.perf_counter()
        bulk_items(wb, "bench", args.items, systems=("a", "b", "c", "d"), k=3)
        build_s = time.perf_counter() - start
        handles = [f"r{i}" for i in range(args.raters)]
        for handle in handles:
            wb.add_rater(handle)
        wall, cpu, skip = [], [], []
        for call in range(args.calls + 50):
            rater = handles[call % len(handles)]
            t0, c0 = time.perf_counter(), time.thread_time()
            shown = wb.next_item("bench", rater)
            t1, c1 = time.perf_counter(), time.thread_time()
            wb.skip(shown["impression_id"], rater)
            if call >= 50:  # first calls warm the pool and statement caches
                wall.append((t1 - t0) * 1000)
                cpu.append((c1 - c0) * 1000)
                skip.append((time.perf_counter() - t1) * 1000)
        wb.close()
    print(machine_line())
    p50, p95, p99 = np.percentile(wall, [50, 95, 99])
    c50, c95 = np.percentile(cpu, [50, 95])
    print(f"next_item with {args.items:,} items x 4 systems ({build_s:.1f} s to build), {len(wall)} calls, "
          f"{wb.db.dialect}")  # fmt: skip
    print(
        f"  wall: p50 {p50:.2f} ms  p95 {p95:.2f} ms  p99 {p99:.2f} ms   (skip p95 {np.percentile(skip, 95):.2f} ms)"
    )
    print(f"  cpu (this thread): p50 {c50:.2f} ms  p95 {c95:.2f} ms")
    verdict = "OK" if p95 <= TARGET_P95_MS else "MISSED"
    print(f"  target p95 <= {TARGET_P95_MS} ms: ratio p95/target = {p95 / TARGET_P95_MS:.2f} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
