"""Engine and session factories: SQLite (WAL, busy_timeout, BEGIN IMMEDIATE, FKs) or PostgreSQL by URL.

The SQLite setup: pysqlite's own transaction handling is switched off and every
transaction is opened by us, ``BEGIN IMMEDIATE`` for writers so that ``busy_timeout`` queues them instead of
failing a read-then-write with "database is locked"; read-only sessions use ``BEGIN DEFERRED``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
# PostgreSQL: deadlock_detected / serialization_failure are safe to retry; so is a lost unique race (the retried
# function re-reads and finds the winner's row).
RETRYABLE_PGCODES = {"40P01", "40001"}

BUSY_TIMEOUT_MS = 30_000
ENV_VAR = "WORKBENCH_DB"
SYNC_ENV = "WORKBENCH_SQLITE_SYNCHRONOUS"


def default_url(data_dir: str | Path = "data") -> str:
    """``$WORKBENCH_DB`` if set, else a SQLite file inside the data folder."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    return f"sqlite:///{Path(data_dir).resolve() / 'workbench.db'}"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, synchronous: str | None = None) -> Engine:
    """Create an engine for ``url``. For SQLite the file's folder is created if needed.

    SQLite ``synchronous`` (default ``$WORKBENCH_SQLITE_SYNCHRONOUS`` or NORMAL): with WAL, NORMAL keeps every
    committed transaction across an application crash or SIGKILL (the commit is in the OS page cache) but may lose
    the last commits on power loss; FULL also survives power loss at one fsync per commit (~10 ms on slow disks).
    """
    synchronous = (synchronous or os.environ.get(SYNC_ENV) or "NORMAL").upper()
    if synchronous not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"SQLite synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(u, pool_pre_ping=True, pool_size=10, max_overflow=30)
    if not u.database or u.database == ":memory:":
        raise ValueError(
            "use a SQLite file URL (sqlite:///path/to.db); in-memory databases are per connection"
        )
    Path(u.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, pool_size=10, max_overflow=40, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_conn, _record) -> None:  # DB-API connection
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (Python < 3.12 pysqlite)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn) -> None:  # SQLAlchemy Connection
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    orig = getattr(exc, "orig", None)
    # SQLite BUSY can still surface when another *process* holds the write lock past busy_timeout.
    return getattr(orig, "sqlstate", None) in RETRYABLE_PGCODES or "database is locked" in str(orig)


@dataclass(frozen=True)
class Database:
    """An engine plus the two session factories every caller should use (one transaction per request).

    On SQLite, writers inside one process also queue on a lock: SQLite's busy handler polls with sleeps, so under
    heavy thread contention a writer can starve past busy_timeout; a mutex hands the write lock over in order.
    """

    engine: Engine
    write: sessionmaker
    read: sessionmaker
    write_lock: threading.Lock | None = None

    @classmethod
    def connect(cls, url: str) -> Database:
        engine = make_engine(url)
        sqlite = is_sqlite(engine)
        reader = engine.execution_options(sqlite_begin="DEFERRED") if sqlite else engine
        return cls(
            engine=engine,
            write=sessionmaker(engine, expire_on_commit=False),
            read=sessionmaker(reader, expire_on_commit=False),
            write_lock=threading.Lock() if sqlite else None,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def run_write(self, fn: Callable[[Session], T], attempts: int = 8) -> T:
        """Run ``fn`` in one write transaction, retrying on a lost unique-key race, a PG deadlock or SQLite BUSY.

        ``fn`` must be written check-then-insert so a retry observes what the concurrent winner stored.
        """
        for attempt in range(attempts):
            try:
                with self.write_lock or contextlib.nullcontext(), self.write.begin() as session:
                    return fn(session)
            except (IntegrityError, OperationalError) as exc:
                if not _retryable(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
