"""Load and integrity harness: N simulated raters vote, then the database is audited against what was acknowledged.

Each rater loops next -> think -> vote, sometimes resubmitting the same vote (a double click, or a retry after a
lost response) and sometimes undoing. Every acknowledged action goes into a ledger, per (rater, impression), in
order. Afterwards each impression's chain of rows in ``votes`` (ordered by id) is compared with the ledger:

* lost:        an acknowledged vote or undo that is not in the chain at its place;
* duplicated:  rows beyond the acknowledged actions (a resubmit stored twice), or a key stored twice;
* unacknowledged_stored: rows for a vote whose reply never arrived (the server died between commit and reply);
  allowed, because the client could not know, but reported.

Transports: ``--transport app`` (default) starts ``python app.py`` on 127.0.0.1 and drives it with gradio_client,
one Client (one browser session) per rater; ``--transport inprocess`` calls the Workbench facade directly (same
ledger and audit, no HTTP), which separates database behaviour from server overhead.

    python bench/load_raters.py --raters 32 --votes 10000 [--db URL] [--kill-at 0.5] --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # run as a script from anywhere; sibling modules

CHOICES = ("A", "B", "tie", "both_bad")
SYSTEMS = ("sys-alpha", "sys-bravo", "sys-charlie", "sys-delta")
RETRACT = "retract"  # how the workbench stores an undo (db.models.RETRACT)
LOCK_MARKERS = ("database is locked", "deadlock", "could not serialize", "lock timeout")


@dataclass
class Ack:
    """One vote the server acknowledged: on which impression, which choice, whether it was newly stored."""

    impression_id: int
    choice: str
    stored: bool
    vote_id: int | None = None


class Transport(Protocol):
    """What a simulated rater can do; implemented in-process and over gradio_client."""

    def next_item(self, rater: str) -> dict | None: ...
    def vote(self, rater: str, impression_id: int, choice: str, duplicate: bool) -> list[Ack]: ...
    def undo_vote(self, rater: str) -> dict | None: ...


@dataclass
class Ledger:
    """What the server acknowledged, in order, per (rater, impression) (thread-safe)."""

    actions: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # choices and "retract", in order
    history: dict[str, list[int]] = field(
        default_factory=dict
    )  # rater -> impressions of live votes (undo pops)
    unconfirmed: set[tuple[str, int]] = field(default_factory=set)  # a vote whose reply never came
    latencies_ms: list[float] = field(default_factory=list)
    next_latencies_ms: list[float] = field(default_factory=list)
    acknowledged: int = 0
    double_acks: int = 0  # one vote reported as newly stored twice
    wrong_undo: int = 0
    progress_mismatch: int = 0  # "done" on screen disagrees with the acknowledged votes  # undo re-showed another impression than the last vote's
    lock_errors: int = 0
    unavailable_errors: int = 0  # requests refused while the server was down (kill/restart)
    other_errors: list[str] = field(default_factory=list)
    undos: int = 0
    resubmits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, rater: str, acks: list[Ack], ms: float) -> None:
        """Record the replies to one vote (two when it was resubmitted): at most one may say "newly stored".

        "Already saved" alone is an acknowledgement too: the first try committed but its reply failed (an error
        after the commit), and the retry with the session's same key found the stored vote.
        """
        by_impression: dict[int, list[Ack]] = {}
        for a in acks:
            by_impression.setdefault(a.impression_id, []).append(a)
        with self.lock:
            self.latencies_ms.append(ms)
            for imp, replies in by_impression.items():
                stored = [a for a in replies if a.stored]
                ids = {a.vote_id for a in replies if a.vote_id is not None}
                self.double_acks += len(stored) > 1 or len(ids) > 1
                self.actions.setdefault((rater, imp), []).append(replies[0].choice)
                self.history.setdefault(rater, []).append(imp)
                self.acknowledged += 1

    def undo(self, rater: str, reshown: dict | None) -> None:
        with self.lock:
            imp = self.history[rater].pop()
            self.actions[(rater, imp)].append(RETRACT)
            self.undos += 1
            self.wrong_undo += reshown is None or reshown["impression_id"] != imp

    def error(self, exc: BaseException) -> None:
        """Classify a failed request: a lock error, the server being unreachable (restart), or anything else."""
        text = f"{type(exc).__name__}: {exc}"
        with self.lock:
            if any(m in text.lower() for m in LOCK_MARKERS):
                self.lock_errors += 1
            elif (
                isinstance(exc, Unconfirmed | ScreenLost | ConnectionError | OSError)
                or type(exc).__module__.startswith(("httpx", "httpcore"))  # transport errors while restarting
                or "Connect" in text
                or "Cancelled" in text
            ):
                self.unavailable_errors += 1
            else:
                self.other_errors.append(text[:300])

    def check_progress(self, rater: str, item: dict) -> None:
        """A rater resumes where they were: the server's "done" count equals the live votes acknowledged
        (give or take the votes whose replies were lost)."""
        done = (item.get("progress") or {}).get("done")
        with self.lock:
            slack = sum(1 for r, _ in self.unconfirmed if r == rater)
            self.progress_mismatch += done is None or abs(done - self.live_votes(rater)) > slack

    def live_votes(self, rater: str) -> int:
        return len(self.history.get(rater, []))


def _chains(db_url: str) -> tuple[dict[tuple[str, int], list[str]], int]:
    """Every (rater, impression)'s rows in ``votes`` in insertion order, and how many keys occur twice."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.handle, v.impression_id, v.choice FROM votes v "
                    "JOIN raters r ON r.id = v.rater_id ORDER BY v.id"
                )
            ).all()
            twice = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM (SELECT idempotency_key FROM votes GROUP BY 1 HAVING COUNT(*) > 1) d"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    chains: dict[tuple[str, int], list[str]] = {}
    for handle, imp, choice in rows:
        chains.setdefault((handle, imp), []).append(choice)
    return chains, twice


def k_check(db_url: str) -> dict[str, int]:
    """The "k raters per item" rule: items holding more than k live (non-skipped) assignments, raters given one
    item twice, and items whose claim counter disagrees with their live assignments."""
    queries = {
        "over_k": "SELECT COUNT(*) FROM (SELECT a.item_id FROM assignments a JOIN items i ON i.id = a.item_id "
        "JOIN studies s ON s.id = i.study_id WHERE a.status <> 'skipped' AND NOT i.is_gold "
        "GROUP BY a.item_id, s.k HAVING COUNT(*) > s.k) d",
        "item_twice": "SELECT COUNT(*) FROM (SELECT rater_id, item_id FROM assignments WHERE item_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1) d",
        "k_counter_mismatch": "SELECT COUNT(*) FROM items i WHERE NOT i.is_gold AND i.assigned_count <> "
        "(SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id AND a.status <> 'skipped')",
        # Items whose k slots are all taken by votes (the rest were still being filled when the run ended).
        "items_with_k_votes": "SELECT COUNT(*) FROM (SELECT i.id FROM items i JOIN studies s ON s.id = i.study_id "
        "JOIN impressions m ON m.item_id = i.id AND m.status = 'voted' GROUP BY i.id, s.k "
        "HAVING COUNT(DISTINCT m.rater_id) = s.k) d",
    }
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {name: conn.execute(sa.text(q)).scalar_one() for name, q in queries.items()}
    finally:
        engine.dispose()


def audit(db_url: str, ledger: Ledger) -> dict[str, Any]:
    """Compare each impression's chain of stored rows with the acknowledged actions (see the module doc)."""
    chains, keys_twice = _chains(db_url)
    lost, duplicated, unacknowledged = 0, keys_twice, 0
    mismatches: list[dict] = []
    for pair in ledger.actions.keys() | chains.keys():
        expected, stored = ledger.actions.get(pair, []), chains.get(pair, [])
        # The one request whose reply was lost (server killed) may have committed: one extra row, anywhere.
        if pair in ledger.unconfirmed and any(
            stored[:i] + stored[i + 1 :] == expected for i in range(len(stored))
        ):
            unacknowledged += 1
            continue
        wrong = sum(1 for i, want in enumerate(expected) if i >= len(stored) or stored[i] != want)
        extra = max(0, len(stored) - len(expected))
        lost, duplicated = lost + wrong, duplicated + extra
        if (wrong or extra) and len(mismatches) < 10:  # evidence for whoever debugs a failed audit
            mismatches.append({"pair": list(pair), "acknowledged": expected, "stored": stored,
                               "unconfirmed": pair in ledger.unconfirmed})  # fmt: skip
    return {"lost": lost, "duplicated": duplicated, "unacknowledged_stored": unacknowledged,
            "mismatches": mismatches, **k_check(db_url)}  # fmt: skip


def percentile(values: list[float], q: int) -> float:
    """Inclusive percentile (q in 1..99); 0.0 for no samples."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class RaterPlan:
    """The behaviour mix of the simulated raters."""

    votes_per_rater: int
    think_ms: tuple[float, float] = (0.0, 5.0)
    p_resubmit: float = 0.05
    p_undo: float = 0.03
    retry_for_s: float = 600.0  # a restarted server takes a while to come back (model load on a busy CPU)
    retry_sleep_s: float = 0.5


class Unconfirmed(Exception):
    """A vote request failed in a way that leaves open whether it was stored (connection lost)."""


class ScreenLost(Exception):
    """The server no longer knows what this session shows (it restarted): nothing was stored; fetch the screen
    again, as a person would press Start / resume."""


def call_with_retry(fn: Callable[[], Any], ledger: Ledger, plan: RaterPlan) -> Any:
    """Retry a request the way a patient client would (lock errors, restarts); the last failure propagates."""
    deadline = time.monotonic() + plan.retry_for_s
    while True:
        try:
            return fn()
        except (Unconfirmed, ScreenLost):
            raise
        except Exception as exc:  # every failure is counted, then retried
            ledger.error(exc)
            if time.monotonic() > deadline:
                raise
            time.sleep(plan.retry_sleep_s)


def run_rater(transport: Transport, rater: str, plan: RaterPlan, ledger: Ledger, seed: int) -> None:
    """One simulated rater: next -> think -> vote, with resubmits and undos mixed in."""
    rng = random.Random(seed)
    while ledger.live_votes(rater) < plan.votes_per_rater:
        t0 = time.perf_counter()
        item = call_with_retry(lambda: transport.next_item(rater), ledger, plan)
        ledger.next_latencies_ms.append((time.perf_counter() - t0) * 1000)
        if item is None:
            return
        ledger.check_progress(rater, item)
        time.sleep(rng.uniform(*plan.think_ms) / 1000)
        imp, choice, duplicate = item["impression_id"], rng.choice(CHOICES), rng.random() < plan.p_resubmit
        t0 = time.perf_counter()
        try:
            acks = call_with_retry(lambda: transport.vote(rater, imp, choice, duplicate), ledger, plan)  # noqa: B023
        except Unconfirmed as exc:
            ledger.error(exc)
            with ledger.lock:
                ledger.unconfirmed.add((rater, imp))
            continue
        except ScreenLost as exc:
            ledger.error(exc)
            continue
        ledger.ack(rater, acks, (time.perf_counter() - t0) * 1000)
        ledger.resubmits += duplicate
        if rng.random() < plan.p_undo and ledger.live_votes(rater):
            try:
                reshown = call_with_retry(lambda: transport.undo_vote(rater), ledger, plan)
            except Unconfirmed as exc:
                ledger.error(exc)
                with ledger.lock:
                    ledger.unconfirmed.add((rater, ledger.history[rater][-1]))
                continue
            ledger.undo(rater, reshown)


class InProcessTransport:
    """Drives the Workbench facade directly (no server); the client picks the idempotency key."""

    def __init__(self, workbench: Any, study: int | str) -> None:
        self.wb, self.study = workbench, study

    def next_item(self, rater: str) -> dict | None:
        return self.wb.next_item(self.study, rater)

    def vote(self, rater: str, impression_id: int, choice: str, duplicate: bool) -> list[Ack]:
        key = uuid.uuid4().hex
        acks = []
        for _ in range(1 + duplicate):  # the resubmit reuses the key, as a client retry does
            rec = self.wb.submit_vote(impression_id, rater, choice=choice, idempotency_key=key)
            acks.append(Ack(impression_id, choice, rec["stored"], rec["vote_id"]))
        return acks

    def undo_vote(self, rater: str) -> dict | None:
        return self.wb.undo_vote(self.study, rater)


def seed_study(
    db_url: str, data_dir: Path, raters: int, votes: int, k: int = 3
) -> tuple[Any, str, list[str]]:
    """Create a study with enough items for every rater's quota (plus slack for undos and skips)."""
    from PIL import Image

    from workbench.service import Workbench

    wb = Workbench(db_url=db_url, data_dir=str(data_dir))
    wb.init()
    name = f"load-{uuid.uuid4().hex[:8]}"
    wb.create_study(name, kind="preference", k=k)
    handles = [f"rater{i:03d}" for i in range(raters)]
    for handle in handles:
        wb.add_rater(handle)
    per_rater = -(-votes // raters)
    n_items = max(per_rater + 5, -(-votes // k) + 2 * raters)
    colours = [(40 * i % 256, 90, 200 - 30 * i) for i in range(len(SYSTEMS) + 1)]
    source = Image.new("RGB", (64, 64), colours[0])
    outputs = {name: Image.new("RGB", (64, 64), c) for name, c in zip(SYSTEMS, colours[1:], strict=True)}
    for i in range(n_items):
        wb.add_item(name, source, f"load item {i}: make it brighter", outputs=outputs)
    return wb, name, handles


def run_load(transport: Transport, handles: list[str], plan: RaterPlan, on_tick=None) -> tuple[Ledger, float]:
    """Run every rater in its own thread; ``on_tick(ledger)`` is called every 50 ms. Returns ledger, wall time."""
    ledger = Ledger()
    threads = [
        threading.Thread(target=run_rater, args=(transport, h, plan, ledger, i), daemon=True)
        for i, h in enumerate(handles)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if on_tick:
            on_tick(ledger)
        time.sleep(0.05)
    return ledger, time.perf_counter() - t0


def summarise(ledger: Ledger, wall_s: float, audit_result: dict[str, int], extra: dict) -> dict:
    """The figures the harness reports (one JSON object)."""
    return {
        **extra,
        "acknowledged": ledger.acknowledged,
        "live_votes": sum(len(v) for v in ledger.history.values()),
        **audit_result,
        "double_acks": ledger.double_acks,
        "wrong_undo": ledger.wrong_undo,
        "progress_mismatch": ledger.progress_mismatch,
        "lock_errors": ledger.lock_errors,
        "unavailable_errors": ledger.unavailable_errors,
        "other_errors": len(ledger.other_errors),
        "first_errors": ledger.other_errors[:3],
        "resubmits": ledger.resubmits,
        "undos": ledger.undos,
        "votes_per_s": round(ledger.acknowledged / wall_s, 1) if wall_s else 0.0,
        "p50_ms": round(percentile(ledger.latencies_ms, 50), 1),
        "p95_ms": round(percentile(ledger.latencies_ms, 95), 1),
        "p99_ms": round(percentile(ledger.latencies_ms, 99), 1),
        "wall_s": round(wall_s, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run the load, audit, print the figures (and a final JSON line with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=32)
    ap.add_argument("--votes", type=int, default=10_000)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--transport", choices=("app", "inprocess"), default="app")
    ap.add_argument(
        "--kill-at", type=float, default=None, help="SIGKILL the server at this fraction of votes"
    )
    ap.add_argument("--think-ms", type=float, default=5.0, help="max think time per item")
    ap.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="app processes on the same database and data folder; raters are spread over them (sticky), and "
        "fail over to the next one while theirs is down (--kill-at kills the first)",
    )
    ap.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    args = ap.parse_args(argv)
    if args.kill_at is not None and args.transport != "app":
        ap.error("--kill-at needs --transport app (there is no server to kill in-process)")

    with tempfile.TemporaryDirectory(prefix="load_raters_") as tmp:
        data_dir = Path(tmp) / "data"
        db_url = args.db or f"sqlite:///{tmp}/load.db"
        wb, study, handles = seed_study(db_url, data_dir, args.raters, args.votes)
        plan = RaterPlan(votes_per_rater=-(-args.votes // args.raters), think_ms=(0.0, args.think_ms))
        extra = {
            "transport": args.transport,
            "db": sa.make_url(db_url).get_backend_name(),
            "raters": args.raters,
            "replicas": args.replicas,
        }
        if args.transport == "inprocess":
            ledger, wall = run_load(InProcessTransport(wb, study), handles, plan)
        else:
            from app_transport import run_against_app  # needs gradio: only imported for this transport

            ledger, wall, app_extra = run_against_app(
                db_url, data_dir, study, handles, plan, args.kill_at, args.replicas
            )
            extra.update(app_extra)
        wb.close()
        result = summarise(ledger, wall, audit(db_url, ledger), extra)

    for name in (
        "acknowledged",
        "lost",
        "duplicated",
        "lock_errors",
        "votes_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ):
        print(f"{name:>14}: {result[name]}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
