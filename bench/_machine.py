"""How fast this machine is right now, printed beside latency figures (the dev box is 2 shared, loaded cores)."""

from __future__ import annotations

import os
import time

# A fixed pure-Python workload; about 10-12 ms of CPU on an idle modern x86 core with CPython 3.11.
REFERENCE_IDLE_MS = 11.0


def machine_line() -> str:
    """One line: load average and the CPU/wall time of a reference loop (best of 3)."""
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.thread_time()
        sum(range(1_000_000))
        best_cpu = min(best_cpu, (time.thread_time() - cpu) * 1000)
        best_wall = min(best_wall, (time.perf_counter() - wall) * 1000)
    return (
        f"machine: load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; reference loop cpu {best_cpu:.1f} ms, "
        f"wall {best_wall:.1f} ms (~{REFERENCE_IDLE_MS:.0f} ms on an idle modern core)"
    )
