"""Vote write latency on SQLite: p50/p95/p99 of ``Workbench.submit_vote`` (target p95 <= 5 ms).

Measures the full facade call (validation, idempotency check, append-only insert, impression/assignment status,
commit with WAL + synchronous=NORMAL by default), sequentially from one thread, on a temp-file database.

    .venv/bin/python bench/vote_write.py [--votes 2000] [--synchronous NORMAL|FULL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._machine import machine_line
from db.engine import SYNC_ENV
from workbench.bulk import bulk_impressions
from workbench.service import Workbench

TARGET_P95_MS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=2000)
    parser.add_argument(
        "--synchronous", choices=["NORMAL", "FULL"], default=None, help="override the default"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.synchronous:
            os.environ[SYNC_ENV] = args.synchronous
        wb = Workbench(db_url=f"sqlite:///{Path(tmp) / 'bench.db'}", data_dir=tmp)
        wb.init()
        pairs = bulk_impressions(wb, "bench", n_items=args.votes // 4 + 1, raters=4)[: args.votes]
        for imp, rater in pairs[:50]:  # warm the connection pool and statement caches
            wb.submit_vote(imp, rater, "A", f"warm-{imp}")
        timings, cpu = [], []
        for imp, rater in pairs[50:]:
            start, start_cpu = time.perf_counter(), time.thread_time()
            wb.submit_vote(imp, rater, "A", f"k-{imp}", scores={"overall": 7}, seconds_on_task=3.2)
            timings.append((time.perf_counter() - start) * 1000)
            cpu.append((time.thread_time() - start_cpu) * 1000)
        with wb.db.engine.connect() as conn:
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                conn.exec_driver_sql("PRAGMA synchronous").scalar()
            ]
        retry = []
        for imp, _rater in pairs[50:550]:  # duplicate retries: the idempotent path
            start = time.perf_counter()
            wb.submit_vote(imp, _rater, "A", f"k-{imp}")
            retry.append((time.perf_counter() - start) * 1000)
        wb.close()
    print(machine_line())
    p50, p95, p99 = np.percentile(timings, [50, 95, 99])
    r95 = np.percentile(retry, 95)
    c50, c95 = np.percentile(cpu, [50, 95])
    print(f"vote write (SQLite, WAL, synchronous={sync}), {len(timings)} votes, one thread")
    print(f"  wall: p50 {p50:.2f} ms  p95 {p95:.2f} ms  p99 {p99:.2f} ms   duplicate-retry p95 {r95:.2f} ms")
    print(
        f"  cpu (this thread): p50 {c50:.2f} ms  p95 {c95:.2f} ms  (wall minus cpu = waiting for a core / the disk)"
    )
    print(
        f"  target p95 <= {TARGET_P95_MS} ms: ratio p95/target = {p95 / TARGET_P95_MS:.2f} ({'OK' if p95 <= TARGET_P95_MS else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
