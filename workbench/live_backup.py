"""Backups that are consistent while the app keeps serving, and restores.

- SQLite: the sqlite3 online-backup API copies the live database page by page into a new ``.db`` file; WAL
  readers and writers keep going, and the copy is one consistent snapshot (checked with ``integrity_check``).
- PostgreSQL (or any backend, ``logical=True``): a logical snapshot of every table read in one REPEATABLE READ
  transaction, written as gzipped JSON lines (``db.backup``); it restores into SQLite or PostgreSQL alike, so no
  ``pg_dump`` binary is needed.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from db.engine import Database, is_sqlite

LOGICAL_SUFFIX = ".jsonl.gz"


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database).expanduser().resolve()


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def backup(url: str, dest: str | os.PathLike, logical: bool | None = None) -> dict[str, Any]:
    """Snapshot the database at ``url`` into ``dest`` (must not exist). ``logical`` defaults to True for a
    ``.jsonl.gz`` destination or a non-SQLite database, else a ``.db`` copy. Returns a small report."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"backup target {dest} already exists; choose a new name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if logical is None:
        logical = dest.name.endswith(LOGICAL_SUFFIX) or not is_sqlite(url)
    if logical:
        from db.backup import snapshot

        return {"path": str(dest), "format": "logical", "rows": snapshot(url, dest)}
    if not is_sqlite(url):
        raise ValueError("a .db file backup needs a SQLite database; use the logical format for PostgreSQL")
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    db = Database.connect(url)  # its connect hook sets WAL/busy_timeout on the source connection
    try:
        raw = db.engine.raw_connection()
        try:
            with sqlite3.connect(tmp) as target:
                raw.driver_connection.backup(target)
        finally:
            raw.close()
    finally:
        db.dispose()
    status = _integrity(tmp)
    if status != "ok":
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"backup copy failed integrity_check: {status}")
    os.replace(tmp, dest)
    return {"path": str(dest), "format": "sqlite", "bytes": dest.stat().st_size, "integrity": status}


def restore(src: str | os.PathLike, url: str, force: bool = False) -> dict[str, Any]:
    """Restore a backup into ``url``. A ``.db`` file goes into a SQLite target that is absent (or, with
    ``force``, replaced while no server is using it); a logical snapshot goes into an empty database of either
    kind."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no backup at {src}")
    if src.name.endswith(LOGICAL_SUFFIX):
        from db.backup import restore as restore_logical

        return {"format": "logical", "rows": restore_logical(src, url)}
    if not is_sqlite(url):
        raise ValueError(
            f"{src} is a SQLite file; restore it into a sqlite:/// URL, or back up with --logical"
        )
    if _integrity(src) != "ok":
        raise ValueError(f"{src} fails PRAGMA integrity_check; refusing to restore it")
    target = _sqlite_path(url)
    if target.exists() and not force:
        raise FileExistsError(
            f"{target} exists; pass force=True (--force) to replace it (stop the app first)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(src) as source, sqlite3.connect(tmp) as copy:
        source.backup(copy)
    for suffix in ("-wal", "-shm"):  # stale WAL files of the replaced database must not be replayed onto it
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)
    return {"format": "sqlite", "path": str(target), "integrity": _integrity(target)}
