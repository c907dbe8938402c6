"""FastChat / GenAI-Arena ``clean_battle`` logs: export an arena's battles, import battle logs as votes.

Exported records carry ``model_a`` (the left panel), ``model_b``, ``winner``, ``judge``, ``tstamp``,
``question_id``, ``language`` and ``anony``; importing such a file into another study and exporting it again
gives the same file (tstamp and anony are kept on the imported rows).

Idempotency is per record when records carry an id (``question_id`` or ``tstamp``): the record's sha256 is its
key, so the same battle is never stored twice. Anonymised public dumps often hold only ``model_a``, ``model_b``
and ``winner``; there identical rows are distinct votes, so such a record's key is the file's sha256 (its
first 24 hex digits) plus its position: re-importing the same file is refused, while a different file with
equal rows is accepted.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from db.models import ImportedBattle, System, utcnow
from workbench.arena.store import voted_battles
from workbench.importers import ImportFailed, read_records
from workbench.lookup import study_row

if TYPE_CHECKING:
    from workbench.service import StudyRef, Workbench

BATTLE_WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
CLEAN_BATTLE_FIELDS = ("model_a", "model_b", "winner", "judge", "tstamp", "question_id", "language", "anony")
BATTLE_STUDY_KINDS = ("preference", "arena")
INSERT_CHUNK = 20_000  # rows per executemany: bounded memory for million-row logs


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def battle_records(path: Path) -> tuple[list[Any], Callable[[int], str]]:
    """The records of a JSON-lines battle log or of a JSON array (FastChat's ``clean_battle_*.json``), and
    the function naming record ``i``'s place in the file (for error messages)."""
    if not path.is_file():
        raise ImportFailed(f"{path}: battle file not found")
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1 << 12).lstrip()
    if not head.startswith("["):
        located = list(read_records(path))
        return [record for _, record in located], lambda i: located[i][0]
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    return records, lambda i: f"{path}: record {i}"


def _check_record(where: str, record: object) -> None:
    """Raise the precise error for a record the fast path in ``_Parsed`` did not accept."""
    if not isinstance(record, dict):
        raise ImportFailed(f"{where}: expected a JSON object")
    for name in ("model_a", "model_b"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise ImportFailed(f"{where}: {name!r} must be a non-empty string, got {record.get(name)!r}")
    if record["model_a"] == record["model_b"]:
        raise ImportFailed(f"{where}: model_a and model_b are both {record['model_a']!r}")
    if record.get("winner") not in BATTLE_WINNERS:
        raise ImportFailed(f"{where}: winner {record.get('winner')!r} is not one of {BATTLE_WINNERS}")
    tstamp = record.get("tstamp")
    if tstamp is not None and (isinstance(tstamp, bool) or not isinstance(tstamp, int | float)):
        raise ImportFailed(f"{where}: tstamp must be a number (seconds since 1970), got {tstamp!r}")


_WINNER_SET = frozenset(BATTLE_WINNERS)


class _Parsed:
    """A validated log: one tuple per record (names, winner, judge, question id, language, tstamp, anony, key).

    The per-record loop is the import's hot path (a million records in seconds), so the common case is a few
    inline checks; anything unusual goes through ``_check_record`` for its message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[str, str, str, Any, Any, Any, Any, Any, str]] = []
        self.keyed: dict[str, int] = {}  # content key -> record index (records with ids)
        self.first_anonymous: int | None = None
        # Id-less records: the file's hash (96 bits) and the position, in order: short and cheap to index, and
        # never equal to a content key (those are 64 hex digits without a colon).
        self._prefix = _file_sha256(path)[:24] + ":"

    @property
    def anonymous(self) -> int:
        return len(self.rows) - len(self.keyed)

    def add_all(self, records: list[Any], where: Callable[[int], str]) -> None:
        rows, keyed, prefix = self.rows, self.keyed, self._prefix
        for i, record in enumerate(records):
            if record.__class__ is not dict:
                _check_record(where(i), record)
            a, b, winner = record.get("model_a"), record.get("model_b"), record.get("winner")
            qid, tstamp = record.get("question_id"), record.get("tstamp")
            if (a.__class__ is not str or b.__class__ is not str or a == b or winner not in _WINNER_SET
                    or not a.strip() or not b.strip() or not (tstamp is None or tstamp.__class__ in (int, float))):  # fmt: skip
                _check_record(where(i), record)
            if qid is None and tstamp is None:
                if self.first_anonymous is None:
                    self.first_anonymous = i
                key = f"{prefix}{i:09d}"
            else:
                key = hashlib.sha256(
                    json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
                ).hexdigest()
                if key in keyed:
                    raise ImportFailed(f"{where(i)}: duplicate battle (identical to {where(keyed[key])})")
                keyed[key] = i
            judge, language, anony = record.get("judge"), record.get("language"), record.get("anony")
            rows.append((
                a, b, winner, None if judge is None else str(judge), None if qid is None else str(qid),
                language if language.__class__ is str else None, tstamp,
                anony if anony.__class__ is bool else None, key,
            ))  # fmt: skip


def _system_ids(
    wb: Workbench, s: Session, study_id: int, parsed: _Parsed, open_world: bool, where: Callable[[int], str]
) -> dict[str, int]:
    known = dict(s.execute(select(System.name, System.id).where(System.study_id == study_id)).all())
    open_world = open_world or not known
    names = {row[0] for row in parsed.rows} | {row[1] for row in parsed.rows}
    for name in sorted(names - set(known)):
        if not open_world:
            first = next(i for i, row in enumerate(parsed.rows) if name in row[:2])
            raise ImportFailed(f"{where(first)}: unknown system {name!r}; the study has {sorted(known)}")
        known[name] = wb.system_id(s, study_id, name)
    return known


def _refuse_repeats(s: Session, study, parsed: _Parsed, where: Callable[[int], str]) -> None:
    """Refuse a battle with ids, or an id-less file, that is already in the study."""
    keyed = ImportedBattle.battle_key
    in_study = ImportedBattle.study_id == study.id
    if parsed.first_anonymous is not None:
        first = parsed.rows[parsed.first_anonymous][8]
        if s.scalar(select(keyed).where(in_study, keyed == first)) is not None:
            raise ImportFailed(f"{parsed.path}: this file was already imported into study {study.name!r}")
    keys = list(parsed.keyed)
    for start in range(0, len(keys), 5_000):
        found = s.scalars(select(keyed).where(in_study, keyed.in_(keys[start : start + 5_000]))).all()
        if found:
            first = min(parsed.keyed[key] for key in found)  # report the earliest record
            raise ImportFailed(f"{where(first)}: this battle was already imported into study {study.name!r}")


_INSERT_COLUMNS = ("study_id", "system_a_id", "system_b_id", "winner", "judge", "question_id", "language",
                   "tstamp", "anony", "battle_key", "source", "created_at")  # fmt: skip


def _bulk_insert(conn: Connection, rows: Iterator[tuple[Any, ...]]) -> None:
    """Insert rows of ``_INSERT_COLUMNS`` with the driver's fastest path: COPY on PostgreSQL, executemany of
    one prepared statement on SQLite (SQLAlchemy's per-row parameter handling would dominate the import)."""
    table = ImportedBattle.__table__.name
    columns = ", ".join(_INSERT_COLUMNS)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(_INSERT_COLUMNS))
    cur = raw.cursor()
    try:
        while chunk := list(itertools.islice(rows, INSERT_CHUNK)):
            cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", chunk)
    finally:
        cur.close()


def import_battles(
    wb: Workbench, study: StudyRef, battles_file: str | os.PathLike, allow_new_systems: bool = False
) -> dict[str, Any]:
    """Arena battles (``model_a``, ``model_b``, ``winner`` in FastChat's names; optional ``judge``,
    ``question_id``, ``language``, ``tstamp``, ``anony``) as votes of a preference or arena study, in one
    transaction (all or nothing).

    Model names must already be systems of the study, unless the study has none yet or ``allow_new_systems``.
    """
    path = Path(battles_file)
    parsed = _Parsed(path)
    records, where = battle_records(path)
    parsed.add_all(records, where)
    del records
    if not parsed.rows:
        raise ImportFailed(f"{path}: no battles to import")

    def write(s: Session) -> int:
        st = study_row(s, study)
        if st.kind not in BATTLE_STUDY_KINDS:
            raise ImportFailed(
                f"{path}: study {st.name!r} is a {st.kind} study; battles need a preference study"
            )
        ids = _system_ids(wb, s, st.id, parsed, allow_new_systems, where)
        _refuse_repeats(s, st, parsed, where)
        conn = s.connection()
        # The value SQLAlchemy would bind for the timestamp (SQLite keeps it as text in its own format).
        created_type = ImportedBattle.__table__.c.created_at.type
        process = created_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        now = process(utcnow()) if process else utcnow()
        source = path.name
        _bulk_insert(conn, (
            (st.id, ids[a], ids[b], w, j, q, lang, t, anony, key, source, now)
            for a, b, w, j, q, lang, t, anony, key in parsed.rows
        ))  # fmt: skip
        return len(parsed.rows)

    try:
        imported = wb.db.run_write(write)
    except LookupError as exc:
        raise ImportFailed(str(exc)) from exc
    return {"study": study, "imported": imported, "without_ids": parsed.anonymous}


def _imported_records(s: Session, study_id: int) -> list[dict[str, Any]]:
    b, names = (
        ImportedBattle,
        dict(s.execute(select(System.id, System.name).where(System.study_id == study_id)).all()),
    )
    rows = s.execute(
        select(b.system_a_id, b.system_b_id, b.winner, b.judge, b.tstamp, b.question_id, b.language, b.anony)
        .where(b.study_id == study_id)
        .order_by(b.id)
    ).all()
    return [dict(zip(CLEAN_BATTLE_FIELDS, (names[r[0]], names[r[1]], *r[2:]), strict=True)) for r in rows]


def clean_battles(wb: Workbench, study: StudyRef, public: bool = False) -> list[dict[str, Any]]:
    """The study's battles as ``clean_battle`` records: voted arena battles (``public``: without flagged
    prompts) and imported battles, ordered by time, then question id."""
    with wb.db.read.begin() as s:
        st = study_row(s, study)
        records = voted_battles(s, st.id, public=public) + _imported_records(s, st.id)
    return sorted(records, key=lambda r: (r["tstamp"] is None, r["tstamp"] or 0.0, str(r["question_id"])))


def export_clean_battles(
    wb: Workbench, study: StudyRef, out: str | os.PathLike, public: bool = False
) -> Path:
    """Write ``clean_battles`` as a JSON array (FastChat's ``clean_battle_*.json`` shape); the file appears
    atomically."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(clean_battles(wb, study, public=public), ensure_ascii=False, indent=1), "utf-8")
    os.replace(tmp, target)
    return target
