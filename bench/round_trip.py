"""Rater round trip through the real app: p50/p95 of submit_vote -> next item with N concurrent clients.

Launches the app in this process on 127.0.0.1 (build_demo + launch, as app.py does) over a temp SQLite
database, then runs N client sessions side by side (each speaking Gradio's queue protocol as the web page does,
or ``--client gradio_client``); each repeats "submit a vote" (the reply carries
the next item) as fast as it can, or after a think time like a person (``--think-s``: uniform in 0..2x, so the
sessions do not move in lockstep). One call = one acknowledged vote + the next blind pair. Target: p95 <= 150 ms
with 16 clients. The editor is built before timing (not used by these calls).

With no think time the 16 sessions saturate the machine, so the latency is mostly queueing: on 2 cores shared
by the server and the 16 client processes, p95 >= 16 x (CPU per round trip, server + client) / 2. A think time
of a few seconds (people read two images and an instruction) measures what a rater waits for instead.

    .venv/bin/python bench/round_trip.py [--clients 16] [--votes 25] [--think-s 0] [--client browser] [--db URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._machine import machine_line
from workbench.bulk import bulk_items
from workbench.service import Workbench

TARGET_P95_MS = 150.0


def rater_loop(
    url: str, handle: str, votes: int, warmup: int, think_s: float = 0.0, client_kind: str = "browser"
) -> tuple[list[float], list[str]]:
    """One rater's session (run in its own process so clients do not share the server's GIL)."""
    rng = random.Random(handle)
    out: list[float] = []
    errors: list[str] = []
    try:
        if client_kind == "gradio_client":
            from gradio_client import Client

            client = Client(url, verbose=False, download_files=False)
        else:
            from bench.browser_protocol import BrowserProtocolSession

            client = BrowserProtocolSession(url)
        shown = client.predict("bench", handle, api_name="/next_item")[0]
        for i in range(votes + warmup):
            if shown.get("done"):
                break
            time.sleep(rng.uniform(0, 2 * think_s))
            t0 = time.perf_counter()
            choice = "A" if i % 2 else "B"
            shown = client.predict("bench", handle, choice, None, None, None, "", api_name="/submit_vote")[0]
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1000)
    except Exception as exc:  # reported in the summary
        errors.append(f"{handle}: {exc!r}")
    return out, errors


def _quiet() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def _import_client(_: int) -> None:
    import gradio_client  # noqa: F401
    import httpx  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--votes", type=int, default=25, help="timed votes per client (after 3 warm-up votes)"
    )
    parser.add_argument("--think-s", type=float, default=0.0, help="mean think time between votes (s)")
    parser.add_argument(
        "--client",
        choices=("browser", "gradio_client"),
        default="browser",
        help="browser: Gradio's queue protocol over httpx, as the web page speaks it; gradio_client: the Python "
        "client (adds ~100 ms of its own polling per call)",
    )
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    from model.loading import load_editor
    from workbench.ui import AppSettings, build_demo, launch_kwargs

    warmup = 3
    with tempfile.TemporaryDirectory() as tmp:
        settings = AppSettings(data_dir=Path(tmp) / "data", port=0, admin_password="bench", demo_study=False)
        wb = Workbench(db_url=args.db or f"sqlite:///{tmp}/bench.db", data_dir=settings.data_dir)
        wb.init()
        bulk_items(wb, "bench", args.votes + warmup + 5, systems=("a", "b", "c"), k=args.clients)
        handles = [f"r{i}" for i in range(args.clients)]
        for h in handles:
            wb.add_rater(h)
        demo = build_demo(settings, load_editor(None), wb)
        demo.queue(default_concurrency_limit=8, max_size=256)
        kwargs = {**launch_kwargs(settings), "server_port": None}
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
        latencies: list[float] = []
        errors: list[str] = []
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.clients, mp_context=ctx, initializer=_quiet) as pool:
            list(pool.map(_import_client, range(args.clients)))  # pay the gradio_client import before timing
            t0, cpu0 = time.perf_counter(), time.process_time()
            futures = [
                pool.submit(rater_loop, url, h, args.votes, warmup, args.think_s, args.client)
                for h in handles
            ]
            for f in futures:
                out, errs = f.result()
                latencies += out
                errors += errs
            wall, server_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        demo.close()
        wb.close()
    print(machine_line())
    if errors:
        print("errors:", *errors[:5], sep="\n  ")
    if not latencies:
        return 1
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    print(
        f"submit_vote -> next item, {args.clients} concurrent {args.client} sessions (think {args.think_s} s), "
        f"{len(latencies)} timed votes "
        f"in {wall:.1f} s ({len(latencies) / wall:.0f} votes/s): p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"p99 {p99:.0f} ms; p95 / target ({TARGET_P95_MS:.0f} ms) = {p95 / TARGET_P95_MS:.2f}"
    )
    calls = len(latencies) + warmup * args.clients + args.clients  # timed + warm-up votes + first next_item
    print(
        f"server CPU (Gradio + handler + database, this process only) {1000 * server_cpu / calls:.1f} ms per call"
    )
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
