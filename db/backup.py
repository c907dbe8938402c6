"""Consistent logical snapshots of the workbench database, and restores that round-trip every table.

A snapshot is read inside ONE read transaction (SQLite WAL: one snapshot of the file; PostgreSQL: REPEATABLE
READ), so votes being written while it runs are either wholly in it or wholly out of it. The format is gzipped
JSON lines: a header with the alembic revision and per-table row counts, then one line per row. It is
backend-neutral, so a SQLite snapshot restores into PostgreSQL and back.

    python -m db.backup snapshot URL FILE.jsonl.gz
    python -m db.backup restore FILE.jsonl.gz URL      # URL must hold an empty (or no) schema
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Table, func, insert, select, text

from db.engine import Database, is_sqlite
from db.migrate import upgrade
from db.models import Base

FORMAT = "workbench-snapshot/1"


def _tables() -> list[Table]:
    """Tables in foreign-key order (parents first), which is also a safe insert order."""
    return list(Base.metadata.sorted_tables)


def _encode(value: Any) -> Any:
    """JSON-safe value; datetimes as ISO text in UTC (SQLite hands back naive UTC, PostgreSQL aware)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for col in table.columns:
        if isinstance(col.type, DateTime) and isinstance(out.get(col.name), str):
            out[col.name] = datetime.fromisoformat(out[col.name])
    return out


def _revision(conn) -> str | None:  # SQLAlchemy Connection
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _snapshot_lines(engine: Engine) -> Iterator[dict[str, Any]]:
    """Header, then every row of every table, all read from one consistent snapshot."""
    options = {"sqlite_begin": "DEFERRED"} if is_sqlite(engine) else {"isolation_level": "REPEATABLE READ"}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        tables = _tables()
        # The first read pins the snapshot; counts and rows below all come from it.
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}
        yield {"format": FORMAT, "revision": _revision(conn), "tables": counts}
        for table in tables:
            order = [c for c in table.primary_key.columns]
            for row in conn.execute(select(table).order_by(*order)).mappings():
                yield {"t": table.name, "r": {k: _encode(v) for k, v in row.items()}}


def table_counts(url: str) -> dict[str, int]:
    """Row count of every workbench table (read in one snapshot): the "nothing half-imported" yardstick."""
    db = Database.connect(url)
    lines = _snapshot_lines(db.engine)
    try:
        return next(lines)["tables"]
    finally:
        lines.close()  # ends the read transaction before the engine goes
        db.dispose()


def read_snapshot(path: str | Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The header and every table's rows of a snapshot file (for checks and comparisons)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        tables: dict[str, list[dict[str, Any]]] = {name: [] for name in header["tables"]}
        for raw in fh:
            line = json.loads(raw)
            tables[line["t"]].append(line["r"])
    return header, tables


def snapshot(url: str, out_path: str | Path) -> dict[str, int]:
    """Write a consistent snapshot of the database at ``url`` to ``out_path``; returns the row counts."""
    db = Database.connect(url)
    try:
        tmp = Path(f"{out_path}.partial")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            header = None
            for line in _snapshot_lines(db.engine):
                header = header or line
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        tmp.replace(out_path)  # a crash mid-write never leaves a truncated file under the real name
        return header["tables"]
    finally:
        db.dispose()


def restore(snapshot_path: str | Path, url: str, batch: int = 500) -> dict[str, int]:
    """Restore a snapshot into an empty database at ``url`` (schema created by the migrations).

    Refuses a non-empty target and a snapshot from another schema revision; all rows go in one transaction,
    so a failed restore leaves the target empty. Returns the row counts restored.
    """
    db = Database.connect(url)
    try:
        upgrade(db.engine)
        tables = {t.name: t for t in _tables()}
        with gzip.open(snapshot_path, "rt", encoding="utf-8") as fh, db.engine.begin() as conn:
            header = _header(fh, snapshot_path)
            if header.get("format") != FORMAT:
                raise ValueError(
                    f"{snapshot_path} is not a workbench snapshot (format {header.get('format')!r})"
                )
            if header["revision"] != _revision(conn):
                raise ValueError(
                    f"snapshot schema {header['revision']} differs from target {_revision(conn)}"
                )
            busy = [
                n for n, t in tables.items() if conn.execute(select(func.count()).select_from(t)).scalar()
            ]
            if busy:
                raise ValueError(f"restore target is not empty (tables with rows: {', '.join(busy)})")
            pending: dict[str, list[dict]] = {}
            for raw in fh:
                line = json.loads(raw)
                _check_portable(line["t"], line["r"])
                rows = pending.setdefault(line["t"], [])
                rows.append(_decode(tables[line["t"]], line["r"]))
                if len(rows) >= batch:
                    _flush(conn, tables, pending)
            _flush(conn, tables, pending)
            counts = {
                n: conn.execute(select(func.count()).select_from(t)).scalar_one() for n, t in tables.items()
            }
            if counts != header["tables"]:
                raise ValueError(f"restored counts {counts} differ from the snapshot's {header['tables']}")
            if conn.dialect.name == "postgresql":
                _reset_sequences(conn, tables.values())
        return counts
    finally:
        db.dispose()


def _header(fh, path: str | Path) -> dict[str, Any]:
    """The snapshot's first line; a clear ValueError for a file that is not a snapshot at all."""
    try:
        header = json.loads(fh.readline())
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a workbench snapshot (a gzip file of JSON lines): {exc}") from exc
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a workbench snapshot (its first line is not a header object)")
    return header


def _unportable(value: Any) -> str | None:
    """Why ``value`` cannot be stored on every backend (NUL, NaN, Infinity), or None."""
    if isinstance(value, str):
        return "a NUL character" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        reason = _unportable(key) or _unportable(inner)
        if reason:
            return reason
    return None


def _check_portable(table: str, row: dict[str, Any]) -> None:
    """Name the row a backend would refuse (written before the workbench validated its input) instead of
    failing with the driver's DataError."""
    for column, value in row.items():
        reason = _unportable(value)
        if reason:
            raise ValueError(
                f"{table} row {row.get('id', '?')}: column {column!r} holds {reason}, which "
                "PostgreSQL cannot store; fix that row in the source database and back it up again"
            )


def _flush(conn, tables: dict[str, Table], pending: dict[str, list[dict]]) -> None:
    # Tables were written parent-first, so flushing in that order keeps every foreign key satisfied.
    for name in [t for t in tables if pending.get(t)]:
        conn.execute(insert(tables[name]), pending.pop(name))


def _reset_sequences(conn, tables) -> None:
    """Explicit ids bypass PostgreSQL sequences; move each past the restored maximum."""
    for table in tables:
        for col in table.primary_key.columns:
            if col.autoincrement is True or (
                col.autoincrement == "auto" and len(table.primary_key.columns) == 1
            ):
                seq = conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": col.name}
                )
                seq_name = seq.scalar()
                if seq_name:
                    conn.execute(
                        text(
                            f"SELECT setval('{seq_name}', COALESCE((SELECT MAX({col.name}) FROM {table.name}), 0) + 1, false)"
                        )
                    )


def main(argv: list[str] | None = None) -> None:
    """CLI: ``snapshot URL FILE`` or ``restore FILE URL``."""
    ap = argparse.ArgumentParser(prog="python -m db.backup", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snapshot", help="write a consistent snapshot")
    s.add_argument("url")
    s.add_argument("file")
    r = sub.add_parser("restore", help="restore a snapshot into an empty database")
    r.add_argument("file")
    r.add_argument("url")
    args = ap.parse_args(argv)
    try:
        counts = snapshot(args.url, args.file) if args.cmd == "snapshot" else restore(args.file, args.url)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
