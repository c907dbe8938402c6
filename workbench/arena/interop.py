"""FastChat / GenAI-Arena ``clean_battle`` logs: export an arena's battles, import battle logs as votes.

Exported records carry ``model_a`` (the left panel), ``model_b``, ``winner``, ``judge``, ``tstamp``,
``question_id``, ``language`` and ``anony``; importing such a file into another study and exporting it again
gives the same file (tstamp and anony are kept on the imported rows).

Idempotency is per record when records carry an id (``question_id`` or ``tstamp``): the record's sha256 is its
key, so the same battle is never stored twice. Anonymised public dumps often hold only ``model_a``, ``model_b``
and ``winner``; there identical rows are distinct votes, so such a record's key is the file's sha256 plus its
position: re-importing the same file is refused, while a different file with equal rows is accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.models import ImportedBattle, System, utcnow
from workbench.importers import ImportFailed, read_records

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


def battle_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records of a JSON-lines battle log, or of a JSON array (FastChat's ``clean_battle_*.json``)."""
    if not path.is_file():
        raise ImportFailed(f"{path}: battle file not found")
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1 << 12).lstrip()
    if head.startswith("["):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise ImportFailed(f"{path}: record {index}: expected a JSON object")
            yield f"{path}: record {index}", record
        return
    yield from read_records(path)


def _check_record(where: str, record: dict[str, Any]) -> None:
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


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class _Parsed:
    """A validated log: one tuple per record plus the keys, ready for a bulk insert."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[str, str, str, Any, Any, Any, Any, Any, str, str]] = []
        self.first_where: dict[str, str] = {}
        self.anonymous = 0
        self.file_key = _file_sha256(path)

    def add(self, where: str, record: dict[str, Any]) -> None:
        _check_record(where, record)
        if record.get("question_id") is None and record.get("tstamp") is None:
            self.anonymous += 1
            key = hashlib.sha256(f"{self.file_key}:{len(self.rows)}".encode()).hexdigest()
        else:
            key = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
            if key in self.first_where:
                raise ImportFailed(f"{where}: duplicate battle (identical to {self.first_where[key]})")
            self.first_where[key] = where
        language = record.get("language") if isinstance(record.get("language"), str) else None
        anony = record.get("anony")
        self.rows.append((
            record["model_a"], record["model_b"], record["winner"], _optional_str(record.get("judge")),
            _optional_str(record.get("question_id")), language, record.get("tstamp"),
            anony if isinstance(anony, bool) else None, key, where,
        ))  # fmt: skip


def _system_ids(
    wb: Workbench, s: Session, study_id: int, parsed: _Parsed, open_world: bool
) -> dict[str, int]:
    known = dict(s.execute(select(System.name, System.id).where(System.study_id == study_id)).all())
    open_world = open_world or not known
    for row in parsed.rows:
        for name in row[:2]:
            if name not in known:
                if not open_world:
                    raise ImportFailed(f"{row[9]}: unknown system {name!r}; the study has {sorted(known)}")
                known[name] = wb.system_id(s, study_id, name)
    return known


def _refuse_repeats(s: Session, study, parsed: _Parsed) -> None:  # noqa: ANN001 - Study row
    """Refuse a battle (or, for id-less rows, a file) that is already in the study."""
    keyed = ImportedBattle.battle_key
    for start in range(0, len(parsed.rows), 5_000):
        chunk = {row[8]: row[9] for row in parsed.rows[start : start + 5_000]}
        found = s.scalars(select(keyed).where(ImportedBattle.study_id == study.id, keyed.in_(chunk))).first()
        if found is not None:
            what = "this battle" if found in parsed.first_where else "this file"
            raise ImportFailed(f"{chunk[found]}: {what} was already imported into study {study.name!r}")


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
    for where, record in battle_records(path):
        parsed.add(where, record)
    if not parsed.rows:
        raise ImportFailed(f"{path}: no battles to import")

    def write(s: Session) -> int:
        st = wb._study(s, study)
        if st.kind not in BATTLE_STUDY_KINDS:
            raise ImportFailed(
                f"{path}: study {st.name!r} is a {st.kind} study; battles need a preference study"
            )
        ids = _system_ids(wb, s, st.id, parsed, allow_new_systems)
        _refuse_repeats(s, st, parsed)
        now, conn, table = utcnow(), s.connection(), ImportedBattle.__table__
        for start in range(0, len(parsed.rows), INSERT_CHUNK):
            conn.execute(insert(table), [
                {"study_id": st.id, "system_a_id": ids[a], "system_b_id": ids[b], "winner": w, "judge": j,
                 "question_id": q, "language": lang, "tstamp": t, "anony": anony, "battle_key": key,
                 "source": where, "created_at": now}
                for a, b, w, j, q, lang, t, anony, key, where in parsed.rows[start : start + INSERT_CHUNK]
            ])  # fmt: skip
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
    from workbench.arena.store import voted_battles

    with wb.db.read.begin() as s:
        st = wb._study(s, study)
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


def epoch(moment: datetime) -> float:
    """Seconds since 1970 (FastChat's ``tstamp``) of a stored timestamp (SQLite returns naive UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
