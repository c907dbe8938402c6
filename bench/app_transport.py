"""The load harness's HTTP side: start/kill/restart ``python app.py`` and drive it as browsers do.

Each simulated rater is one browser session (``browser_protocol.BrowserProtocolSession``: Gradio's queue
protocol as the web page speaks it; gradio_client would add ~100 ms of its own polling to every call). The app
keeps the shown impression (and its server-minted idempotency key) in that session's ``gr.State``. A resubmit
is two events joined at once in the same session, which is what a double click or a client retry looks like to
the server.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from browser_protocol import AppRefused, BrowserProtocolSession, read_endpoints
from load_raters import Ack, Ledger, RaterPlan, ScreenLost, Unconfirmed, run_load

ROOT = Path(__file__).resolve().parents[1]
IMPRESSION, STATUS = 0, 4  # positions in the Rate tab's outputs (the State slot left out)
SAVED, ALREADY = "Saved", "Already saved"


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python app.py`` as a child process on 127.0.0.1, restartable on the same port, database and data."""

    def __init__(
        self, db_url: str, data_dir: Path, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port, self.db_url, self.data_dir, self.log_path = free_port(), db_url, data_dir, log_path
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 240.0) -> None:
        """Start the app and wait until it answers HTTP (model load included)."""
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), "--db", self.db_url,
               "--data-dir", str(self.data_dir), "--no-demo"]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"app.py did not answer within {timeout_s} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was acknowledged must already be durable."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class AppTransport:
    """Drives the Rate tab's API (next_item, submit_vote, undo_vote) with one browser session per rater.

    With several replica URLs, raters are spread over them and stay with theirs (session State lives in one
    process, so a load balancer needs sticky sessions); a rater whose replica fails moves to the next one.
    """

    def __init__(self, urls: str | list[str], study: str) -> None:
        self.urls, self.study = [urls] if isinstance(urls, str) else list(urls), study
        self.endpoints = read_endpoints(self.urls[0])  # the same on every replica and after a restart
        self.replica: dict[str, int] = {}
        self.clients: dict[str, BrowserProtocolSession] = {}
        self.on_screen: dict[str, dict | None] = {}  # what each rater's session shows (returned by the app)
        self.lock = threading.Lock()

    def _client(self, rater: str) -> BrowserProtocolSession:
        if rater not in self.clients:
            index = self.replica.setdefault(rater, len(self.replica) % len(self.urls))
            self.clients[rater] = BrowserProtocolSession(self.urls[index], self.endpoints)
        return self.clients[rater]

    def _forget(self, rater: str) -> None:
        """After a connection failure the session (and its State) may be gone: start a new one, on the next
        replica (the failed one may be down)."""
        if rater in self.replica:
            self.replica[rater] = (self.replica[rater] + 1) % len(self.urls)
        client = self.clients.pop(rater, None)
        if client is not None:
            client.close()
        self.on_screen.pop(rater, None)

    def _call(self, rater: str, api_name: str, *args: Any) -> tuple:
        try:
            return self._client(rater).predict(*args, api_name=api_name)
        except AppRefused:
            raise  # the app answered with a clear error: nothing was stored, the session is intact
        except Exception:
            self._forget(rater)
            raise

    @staticmethod
    def _impression(outputs: tuple) -> dict | None:
        shown = outputs[IMPRESSION]
        return None if not shown or shown.get("done") else shown

    def next_item(self, rater: str) -> dict | None:
        if self.on_screen.get(rater) is None:
            self.on_screen[rater] = self._impression(self._call(rater, "/next_item", self.study, rater))
        return self.on_screen[rater]

    def _outcome(self, rater: str, voted_on: int, outputs: tuple, choice: str) -> Ack:
        status = str(outputs[STATUS])
        if SAVED not in status and ALREADY not in status:
            raise AssertionError(f"unexpected vote status {status!r}")
        return Ack(voted_on, choice, stored=ALREADY not in status)

    def vote(self, rater: str, impression_id: int, choice: str, duplicate: bool) -> list[Ack]:
        # The last input is the impression on screen, as the page sends it: the vote is bound to it.
        args = (self.study, rater, choice, None, None, None, "", self.on_screen.get(rater))
        try:
            if not duplicate:
                outputs = self._client(rater).predict(*args, api_name="/submit_vote")
                acks = [self._outcome(rater, impression_id, outputs, choice)]
            else:
                acks, outputs = self._double_submit(rater, impression_id, choice, args)
        except AppRefused as exc:
            if "no item on screen" in str(exc):  # a restarted server lost this session's State
                self.on_screen.pop(rater, None)
                raise ScreenLost(str(exc)) from exc
            raise  # refused with a message (e.g. a lock timeout): the session still holds the same key
        except Exception as exc:
            self._forget(rater)
            raise Unconfirmed(f"{type(exc).__name__}: {exc}") from exc
        self.on_screen[rater] = self._impression(outputs)
        return acks

    def _double_submit(
        self, rater: str, impression_id: int, choice: str, args: tuple
    ) -> tuple[list[Ack], tuple]:
        """Two submits from one session at once. Both may carry the shown key (one stores, one is a duplicate);
        or one may start after the other finished and vote on the impression that one returned. The replies can
        come back in either order, so the order the server ran them in is read from their progress counts; the
        session shows what the later one returned."""
        replies = self._client(rater).submit_together([args, args], "/submit_vote")
        earlier, later = sorted(replies, key=_done_count)
        acks = [self._outcome(rater, impression_id, out, choice) for out in (earlier, later)]
        if all(a.stored for a in acks):  # the later one voted on what the earlier one returned
            nxt = self._impression(earlier)
            acks[1] = Ack(nxt["impression_id"] if nxt else -1, choice, True)
        return acks, later

    def undo_vote(self, rater: str) -> dict | None:
        try:
            outputs = self._client(rater).predict(self.study, rater, api_name="/undo_vote")
        except AppRefused:
            raise
        except Exception as exc:
            self._forget(rater)
            raise Unconfirmed(f"undo: {type(exc).__name__}: {exc}") from exc
        self.on_screen[rater] = self._impression(outputs)
        return self.on_screen[rater]


def _done_count(outputs: tuple) -> float:
    """How many votes the rater had when this reply was made (inf once the study is finished)."""
    shown = outputs[IMPRESSION] or {}
    return float("inf") if shown.get("done") else (shown.get("progress") or {}).get("done", 0)


def integrity_check(db_url: str) -> str:
    """``PRAGMA integrity_check`` for SQLite (PostgreSQL: 'n/a', it checks itself)."""
    url = sa.make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return "n/a"
    with sqlite3.connect(url.database) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def run_against_app(
    db_url: str,
    data_dir: Path,
    study: str,
    handles: list[str],
    plan: RaterPlan,
    kill_at: float | None,
    replicas: int = 1,
) -> tuple[Ledger, float, dict]:
    """Start the app (``replicas`` processes on one database and data folder), run the raters against it
    (killing and restarting the first process once if asked), stop it."""
    servers = [AppServer(db_url, data_dir, data_dir.parent / f"app-{i}.log") for i in range(replicas)]
    for one in servers:
        one.start()
    server = servers[0]
    transport = AppTransport([one.url for one in servers], study)
    total = plan.votes_per_rater * len(handles)
    extra: dict[str, Any] = {"kill_at": kill_at}

    def maybe_kill(ledger: Ledger) -> None:
        if kill_at is None or "killed_after" in extra or ledger.acknowledged < kill_at * total:
            return
        extra["killed_after"] = ledger.acknowledged
        server.kill()
        extra["integrity_after_kill"] = integrity_check(db_url)
        t0 = time.perf_counter()
        server.start()
        extra["restart_s"] = round(time.perf_counter() - t0, 1)

    try:
        ledger, wall = run_load(transport, handles, plan, on_tick=maybe_kill)
    finally:
        for one in servers:
            one.stop()
    extra["integrity_at_end"] = integrity_check(db_url)
    return ledger, wall, extra
