"""Exactly-once votes under concurrency: threads, processes, duplicate retries racing, and a SIGKILLed writer."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from db.models import Vote
from workbench.bulk import bulk_impressions
from workbench.service import Workbench

N_VOTES = 5_000
N_THREADS = 32
ROOT = Path(__file__).resolve().parents[2]


def _work_list(pairs: list[tuple[int, str]], worker: int, workers: int) -> list[tuple[int, str, str]]:
    """This worker's votes plus a retry of its neighbour's votes (same key: the two race each other)."""
    mine = [(imp, rater, f"vote-{imp}") for i, (imp, rater) in enumerate(pairs) if i % workers == worker]
    retries = [
        (imp, rater, f"vote-{imp}")
        for i, (imp, rater) in enumerate(pairs)
        if i % workers == (worker + 1) % workers
    ]
    work = mine + retries
    random.Random(worker).shuffle(work)
    return work


def _submit_all(wb: Workbench, work: list[tuple[int, str, str]]) -> tuple[int, list[str]]:
    stored, errors = 0, []
    for imp, rater, key in work:
        try:
            stored += wb.submit_vote(imp, rater, "A", key)["stored"]
        except Exception as exc:  # any surfaced error fails the test below
            errors.append(f"{type(exc).__name__}: {exc}")
    return stored, errors


def _count_votes(wb: Workbench) -> tuple[int, int]:
    with wb.db.read.begin() as s:
        return (
            s.scalar(select(func.count()).select_from(Vote)),
            s.scalar(select(func.count(func.distinct(Vote.impression_id)))),
        )


@pytest.mark.slow
def test_threads_store_each_vote_exactly_once(wb: Workbench) -> None:
    pairs = bulk_impressions(wb, "load", N_VOTES // N_THREADS + 1, raters=N_THREADS)[:N_VOTES]
    results: list[tuple[int, list[str]]] = [None] * N_THREADS  # type: ignore[list-item]

    def run(t: int) -> None:
        results[t] = _submit_all(wb, _work_list(pairs, t, N_THREADS))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    errors = [e for _, errs in results for e in errs]
    assert errors == [], errors[:5]
    assert sum(stored for stored, _ in results) == N_VOTES  # every key acknowledged as new exactly once
    assert _count_votes(wb) == (N_VOTES, N_VOTES)


def _process_main(url: str, data_dir: str, pairs, worker: int, workers: int, threads: int, queue) -> None:
    wb = Workbench(db_url=url, data_dir=data_dir)
    work = _work_list(pairs, worker, workers)
    out: list[tuple[int, list[str]]] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        res = _submit_all(wb, work[t::threads])
        with lock:
            out.append(res)

    ths = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    queue.put((sum(s for s, _ in out), [e for _, errs in out for e in errs]))
    wb.close()


@pytest.mark.slow
def test_processes_store_each_vote_exactly_once(wb: Workbench) -> None:
    pairs = bulk_impressions(wb, "load", N_VOTES // N_THREADS + 1, raters=N_THREADS)[:N_VOTES]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = 4
    procs = [
        ctx.Process(target=_process_main, args=(wb.db_url, str(wb.data_dir), pairs, w, workers, 8, queue))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [e for _, errs in outcomes for e in errs]
    assert errors == [], errors[:5]
    assert sum(stored for stored, _ in outcomes) == N_VOTES
    assert _count_votes(wb) == (N_VOTES, N_VOTES)


WRITER = """
import sys
from workbench.bulk import bulk_impressions
from workbench.service import Workbench
wb = Workbench(db_url=sys.argv[1], data_dir=sys.argv[2])
for line in sys.stdin:
    imp, rater, key = line.split()
    result = wb.submit_vote(int(imp), rater, "B", key)
    print("ACK", key, flush=True)   # acknowledged only after the commit returned
"""


def test_sigkilled_writer_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    wb = Workbench(db_url=f"sqlite:///{tmp_path / 'kill.db'}", data_dir=tmp_path)
    wb.init()
    pairs = bulk_impressions(wb, "kill", 100, raters=4)
    wb.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, wb.db_url, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    proc.stdin.write("".join(f"{imp} {rater} k{imp}\n" for imp, rater in pairs))
    proc.stdin.flush()
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 150 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ACK"):
            acked.append(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the writer is still busy with the remaining votes
    proc.wait()
    assert len(acked) >= 150
    check = Workbench(db_url=wb.db_url, data_dir=tmp_path)
    with check.db.read.begin() as s:
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        stored = set(s.scalars(select(Vote.idempotency_key)))
    assert set(acked) <= stored
    assert len(stored) < len(pairs)  # it really was killed mid-run
    check.close()


def _race(fn, copies: int = 8) -> list:
    """Run ``fn()`` in ``copies`` threads released at the same instant; their results."""
    barrier, results = threading.Barrier(copies), [None] * copies

    def one(i: int) -> None:
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_next_item_of_one_rater_opens_one_impression(wb: Workbench, make_study) -> None:
    """A double click or a retry racing the original must not open two screens for one rater (it did on
    PostgreSQL, whose READ COMMITTED let both requests see "no open impression" and create one each)."""
    study = make_study(wb, n_items=20, k=3)
    wb.add_rater("r1")
    for _ in range(3):  # three rounds: each answers the shared impression, then races again
        shown = _race(lambda: wb.next_item(study, "r1"))
        ids = {s["impression_id"] for s in shown}
        assert len(ids) == 1, ids
        with wb.db.read.begin() as s:
            open_rows = s.execute(text("SELECT COUNT(*) FROM impressions WHERE status = 'open'")).scalar_one()
        assert open_rows == 1
        wb.submit_vote(ids.pop(), "r1", "A", idempotency_key=f"k-{shown[0]['impression_id']}")


def test_concurrent_next_candidate_of_one_reviewer_opens_one_assignment(wb: Workbench, solid) -> None:
    wb.create_study("c", kind="curation", k=2)
    for i in range(10):
        wb.add_candidate("c", solid(i), f"caption {i}", solid(50 + i), key=f"t{i}")
    wb.add_rater("r1")
    shown = _race(lambda: wb.next_candidate("c", "r1"))
    assert len({s["candidate_id"] for s in shown}) == 1
    with wb.db.read.begin() as s:
        open_rows = s.execute(text("SELECT COUNT(*) FROM assignments WHERE status = 'open'")).scalar_one()
    assert open_rows == 1
