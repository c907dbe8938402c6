"""Importers: item manifests, GEdit-Bench result trees and fine-tuning metadata (curation); arena battle logs
are imported by ``workbench.arena.battle_log``.

Every import is all-or-nothing: the whole file is parsed and validated first, images are copied into the
content-addressed store (harmless if the import later fails: unreferenced files), and all rows are inserted in
ONE transaction, so an error leaves the database exactly as it was. With ``create=StudySpec(...)`` the study itself
is created in that same transaction: a failed import leaves no study behind. Each import is written to the audit
log (same transaction). Errors are ``ImportFailed`` and name the file
and line (or record). Paths in a manifest are resolved inside the import root only: no ``..``, no absolute paths
outside it, no symlinks that lead out of it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Item
from workbench import studies
from workbench.image_store import ImageStoreError
from workbench.lookup import study_row
from workbench.service import Workbench
from workbench.studies import StudySpec

OUTPUT_PREFIX = "output:"
ITEM_FIELDS = {
    "source",
    "source_image",
    "instruction",
    "language",
    "category",
    "key",
    "gold",
    "metadata",
    "outputs",
}
CANDIDATE_FIELDS = {
    "source", "source_image", "instruction", "target", "target_image", "filter_score", "filter_reason",
    "category", "language", "key", "metadata",
}  # fmt: skip


class ImportFailed(ValueError):
    """An import was refused; nothing was written. The message starts with ``file:line:``."""


@dataclass(frozen=True)
class SafeRoot:
    """Resolves manifest paths inside one folder, refusing ``..``, outside absolute paths and escaping symlinks."""

    root: Path

    def resolve(self, value: object, where: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise ImportFailed(f"{where}: expected a file path, got {value!r}")
        raw = Path(value)
        if ".." in raw.parts:
            raise ImportFailed(f"{where}: path {value!r} contains '..'; paths must stay inside {self.root}")
        base = self.root.resolve()
        path = (raw if raw.is_absolute() else base / raw).resolve()
        if not path.is_relative_to(base):
            raise ImportFailed(
                f"{where}: path {value!r} leads outside the import root {base} (symlink or absolute)"
            )
        if not path.is_file():
            raise ImportFailed(f"{where}: file not found: {value!r} (looked at {path})")
        return path


@dataclass
class _Row:
    """One validated manifest row; images still as paths (or bytes), stored only once every row is valid."""

    where: str
    fields: dict[str, Any]
    images: dict[str, Path | bytes] = field(default_factory=dict)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a key given twice is an error (json.loads would keep the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _loads(text: str, where: str, first_line: int = 1) -> Any:
    """json.loads with clear ImportFailed errors: invalid JSON, nesting too deep, a key given twice (both lines
    named). ``where`` is ``file`` and ``first_line`` the line ``text`` starts on."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{where}:{first_line + exc.lineno - 1}: invalid JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise ImportFailed(f"{where}:{first_line}: JSON nested too deeply") from exc
    except _DuplicateKey as exc:
        needle = json.dumps(exc.key, ensure_ascii=False)
        first = text.find(needle)
        second = text.find(needle, first + 1)
        lines = [first_line + text.count("\n", 0, i) for i in (first, second) if i >= 0]
        at = " and ".join(f"line {n}" for n in lines) or f"line {first_line}"
        raise ImportFailed(
            f"{where}:{lines[-1] if lines else first_line}: key {exc.key!r} is given twice ({at})"
        ) from exc


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, an optional byte-order mark dropped; invalid UTF-8 is refused with its line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportFailed(f"{path}:{line}: not valid UTF-8 (byte {raw[exc.start]:#04x})") from exc


def _csv_records(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            raise ImportFailed(f"{path}:1: empty CSV (no header)")
        for record in reader:
            if None in record:
                raise ImportFailed(f"{path}:{reader.line_num}: more values than header columns")
            yield f"{path}:{reader.line_num}", {k: v for k, v in record.items() if v not in ("", None)}
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ImportFailed(f"{path}:{reader.line_num + 1}: unreadable CSV ({exc})") from exc


def read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, record) for a JSONL or CSV file; blank JSONL lines are ignored."""
    if not path.is_file():
        raise ImportFailed(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise ImportFailed(f"{path}: unsupported manifest type {suffix!r} (use .jsonl or .csv)")
    text = _read_text(path)
    if suffix == ".csv":
        yield from _csv_records(path, text)
        return
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 is valid in JSON
        if not line.strip():
            continue
        record = _loads(line, str(path), number)
        if not isinstance(record, dict):
            raise ImportFailed(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{number}", record


def _metadata(value: object, where: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ImportFailed(
                f"{where}: metadata is not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})"
            ) from exc
        if isinstance(parsed, dict):
            return parsed
    raise ImportFailed(f"{where}: metadata must be a JSON object")


def _text(record: Mapping[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ImportFailed(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return value


def _check_duplicate_key(rows: Sequence[_Row], where: str, key: str | None) -> None:
    if key is None:
        return
    for row in rows:
        if row.fields.get("key") == key:
            raise ImportFailed(f"{where}: duplicate key {key!r} (first at {row.where})")


def _item_row(record: dict[str, Any], where: str, root: SafeRoot, systems: set[str] | None) -> _Row:
    unknown = {k for k in record if k not in ITEM_FIELDS and not k.startswith(OUTPUT_PREFIX)}
    if unknown:
        raise ImportFailed(
            f"{where}: unknown column(s) {sorted(unknown)}; outputs go in 'output:<system>' columns"
        )
    outputs = {k[len(OUTPUT_PREFIX) :]: v for k, v in record.items() if k.startswith(OUTPUT_PREFIX)}
    nested = record.get("outputs") or {}
    if not isinstance(nested, dict):
        raise ImportFailed(f"{where}: 'outputs' must be an object {{system: path}}")
    outputs.update(nested)
    if len(outputs) < 2:
        raise ImportFailed(f"{where}: an item needs outputs from at least two systems, got {sorted(outputs)}")
    if systems is not None and (strangers := sorted(set(outputs) - systems)):
        raise ImportFailed(f"{where}: unknown system(s) {strangers}; expected only {sorted(systems)}")
    source = record.get("source", record.get("source_image"))
    row = _Row(
        where,
        {
            "instruction": _text(record, "instruction", where),
            "language": _text(record, "language", where, required=False) or "en",
            "category": _text(record, "category", where, required=False),
            "key": _text(record, "key", where, required=False),
            "gold": _text(record, "gold", where, required=False),
            "metadata": _metadata(record.get("metadata"), where),
        },
    )
    row.images["source"] = root.resolve(source, f"{where}: source")
    for system, value in outputs.items():
        if not system:
            raise ImportFailed(f"{where}: an output column has an empty system name")
        row.images[OUTPUT_PREFIX + system] = root.resolve(value, f"{where}: output {system!r}")
    gold = row.fields["gold"]
    if gold is not None and gold != "both_bad" and gold not in outputs:
        raise ImportFailed(
            f"{where}: gold {gold!r} is neither 'both_bad' nor one of the systems {sorted(outputs)}"
        )
    return row


def _candidate_row(record: dict[str, Any], where: str, root: SafeRoot) -> _Row:
    unknown = set(record) - CANDIDATE_FIELDS
    if unknown:
        raise ImportFailed(
            f"{where}: unknown column(s) {sorted(unknown)}; allowed: {sorted(CANDIDATE_FIELDS)}"
        )
    score = record.get("filter_score")
    try:
        score = None if score is None else float(score)
    except (TypeError, ValueError) as exc:
        raise ImportFailed(f"{where}: filter_score must be a number, got {score!r}") from exc
    row = _Row(
        where,
        {
            "instruction": _text(record, "instruction", where),
            "filter_score": score,
            "filter_reason": _text(record, "filter_reason", where, required=False),
            "category": _text(record, "category", where, required=False),
            "language": _text(record, "language", where, required=False) or "en",
            "key": _text(record, "key", where, required=False),
            "metadata": _metadata(record.get("metadata"), where),
        },
    )
    row.images["source"] = root.resolve(record.get("source", record.get("source_image")), f"{where}: source")
    row.images["target"] = root.resolve(record.get("target", record.get("target_image")), f"{where}: target")
    return row


def _store_images(wb: Workbench, rows: Sequence[_Row]) -> list[dict[str, str]]:
    hashes = []
    for row in rows:
        try:
            hashes.append({name: wb.images.put(path) for name, path in row.images.items()})
        except ImageStoreError as exc:
            raise ImportFailed(f"{row.where}: {exc}") from exc
    return hashes


@dataclass(frozen=True)
class Target:
    """Where an import goes: an existing study, or a new one (``create``) made in the import's transaction."""

    study: str | int
    create: StudySpec | None = None
    actor: str = "system"

    def kind(self, wb: Workbench) -> str:
        if self.create is not None:
            return self.create.kind
        try:
            return wb.study_info(self.study)["kind"]
        except LookupError as exc:
            raise ImportFailed(f"{exc}; create it first or import with a new study's settings") from exc

    def open(self, s: Session):
        """The study row inside the import's transaction (created here when asked)."""
        if self.create is None:
            return study_row(s, self.study)
        try:
            return studies.insert_study(s, self.create, self.actor)
        except ValueError as exc:
            raise ImportFailed(str(exc)) from exc


def _target(study: str | int, create: StudySpec | None, actor: str) -> Target:
    if create is not None and create.name != study:
        raise ImportFailed(f"the new study's settings name {create.name!r}, not {study!r}")
    return Target(study, create, actor)


def _insert_all(wb: Workbench, target: Target, rows: Sequence[_Row], insert_one, source: object) -> int:
    """Store the images, then insert every row in one transaction; any error rolls back the whole import
    (including a study created for it)."""
    hashes = _store_images(wb, rows)

    def write(s: Session) -> int:
        st = target.open(s)
        for row, row_hashes in zip(rows, hashes, strict=True):
            try:
                insert_one(s, st, row, row_hashes)
            except (ValueError, LookupError) as exc:
                raise ImportFailed(f"{row.where}: {exc}") from exc
        studies.audit(s, st, target.actor, "import", {"rows": len(rows), "source": Path(str(source)).name})
        return len(rows)

    try:
        return wb.db.run_write(write)
    except LookupError as exc:
        raise ImportFailed(str(exc)) from exc


def _insert_item(wb: Workbench):
    def insert_one(s: Session, study, row: _Row, hashes: dict[str, str]) -> None:
        outputs = {k[len(OUTPUT_PREFIX) :]: v for k, v in hashes.items() if k.startswith(OUTPUT_PREFIX)}
        f = row.fields
        wb.insert_item(
            s, study, hashes["source"], f["instruction"], outputs, f["language"], f["category"], f["metadata"],
            f["key"], f["gold"],
        )  # fmt: skip

    return insert_one


def import_manifest(
    wb: Workbench, study: str | int, manifest: str | os.PathLike, root: str | os.PathLike | None = None,
    systems: Sequence[str] | None = None, create: StudySpec | None = None, actor: str = "system",
) -> dict[str, Any]:  # fmt: skip
    """Import a JSONL/CSV manifest into a study (items for preference studies, triplets for curation ones).

    Preference columns: ``source``, ``instruction``, ``language``, ``category``, ``key``, ``gold``, ``metadata``
    and one ``output:<system>`` column per system (JSONL may instead hold ``outputs: {system: path}``).
    Curation columns: ``source``, ``instruction``, ``target``, ``filter_score``, ``filter_reason``, ``category``,
    ``language``, ``key``, ``metadata``. Paths are relative to ``root`` (default: the manifest's folder).
    ``systems``, when given, is the closed list of allowed system names. ``create``: make the study in the same
    transaction (nothing is left when the import fails).
    """
    manifest = Path(manifest)
    safe = SafeRoot(Path(root) if root is not None else manifest.parent)
    target = _target(study, create, actor)
    kind = target.kind(wb)
    allowed = set(systems) if systems else None
    rows: list[_Row] = []
    for where, record in read_records(manifest):
        row = (
            _item_row(record, where, safe, allowed)
            if kind == "preference"
            else _candidate_row(record, where, safe)
        )
        _check_duplicate_key(rows, where, row.fields["key"])
        rows.append(row)
    if not rows:
        raise ImportFailed(f"{manifest}: no rows to import")
    insert_one = _insert_item(wb) if kind == "preference" else _insert_candidate(wb)
    return {"study": study, "imported": _insert_all(wb, target, rows, insert_one, manifest), "kind": kind}


def _insert_candidate(wb: Workbench):
    def insert_one(s: Session, study, row: _Row, hashes: dict[str, str]) -> None:
        f = row.fields
        wb.insert_candidate(
            s, study, hashes["source"], f["instruction"], hashes["target"], f["filter_score"], f["filter_reason"],
            f["category"], f["language"], f["metadata"], f["key"],
        )  # fmt: skip

    return insert_one


def _line_of(text: str, needle: str) -> int:
    """1-based line where ``needle`` first occurs in ``text`` (for errors inside one big JSON document)."""
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def import_finetune_metadata(
    wb: Workbench, study: str | int, metadata_json: str | os.PathLike, root: str | os.PathLike | None = None,
    create: StudySpec | None = None, actor: str = "system",
) -> dict[str, Any]:  # fmt: skip
    """Curation candidates from the official fine-tuning metadata ``{target_path: {"ref_image_path", "caption"}}``.

    Optional per-entry fields: ``filter_score``, ``filter_reason``, ``category``, ``language``. The target path
    is the candidate's key, so importing the same file twice is refused as a duplicate.
    """
    path = Path(metadata_json)
    dest = _target(study, create, actor)
    if dest.kind(wb) != "curation":
        raise ImportFailed(
            f"{path}: fine-tuning metadata becomes curation candidates; {study!r} is not a curation study"
        )
    if not path.is_file():
        raise ImportFailed(f"{path}: metadata file not found")
    text = _read_text(path)
    data = _loads(text, str(path))
    if not isinstance(data, dict) or not data:
        raise ImportFailed(
            f"{path}:1: expected a non-empty object {{target_path: {{ref_image_path, caption}}}}"
        )
    safe = SafeRoot(Path(root) if root is not None else path.parent)
    rows = []
    for target, entry in data.items():
        where = f"{path}:{_line_of(text, json.dumps(target))}"
        if not isinstance(entry, dict):
            raise ImportFailed(f"{where}: entry for {target!r} must be an object")
        extra = set(entry) - {
            "ref_image_path",
            "caption",
            "filter_score",
            "filter_reason",
            "category",
            "language",
        }
        if extra:
            raise ImportFailed(f"{where}: unknown field(s) {sorted(extra)} for {target!r}")
        record = {
            "source": entry.get("ref_image_path"), "target": target, "instruction": entry.get("caption"),
            "key": target, **{k: entry[k] for k in ("filter_score", "filter_reason", "category", "language") if k in entry},
        }  # fmt: skip
        rows.append(_candidate_row(record, where, safe))
    return {
        "study": study,
        "imported": _insert_all(wb, dest, rows, _insert_candidate(wb), path),
        "kind": "curation",
    }


def import_gedit_results(
    wb: Workbench, study: str | int, results_root: str | os.PathLike, bench_source: str | os.PathLike,
    systems: Sequence[str] | None = None, create: StudySpec | None = None, actor: str = "system",
) -> dict[str, Any]:  # fmt: skip
    """Items from ``results/{system}/fullset/{task_type}/{en|cn}/{key}.png`` plus the bench's source images.

    ``bench_source`` is the GEdit-Bench parquet/arrow file or folder (``workbench.gedit.dataset.load_bench``).
    ``systems`` defaults to every folder under ``results_root``. Samples with outputs from fewer than two systems
    are left out (counted); samples already in the study (same ``task_type/language/key``) are skipped, so a rerun
    imports only what is new. The item metadata carries the task type, key and intersection flag.
    """
    from workbench.gedit.dataset import BenchLoadError, load_bench
    from workbench.gedit.judge import find_output

    results = Path(results_root)
    safe = SafeRoot(results)
    target = _target(study, create, actor)
    if target.kind(wb) != "preference":
        raise ImportFailed(
            f"{results}: a GEdit results tree becomes preference items; {study!r} is a curation study"
        )
    names = (
        list(systems) if systems else sorted(p.name for p in results.iterdir() if (p / "fullset").is_dir())
    )
    for name in names:
        if not (results / name / "fullset").is_dir():
            raise ImportFailed(f"{results}: unknown system {name!r}: no folder {results / name / 'fullset'}")
    if len(names) < 2:
        raise ImportFailed(f"{results}: need results from at least two systems, found {names}")
    try:
        samples = load_bench(bench_source)
    except BenchLoadError as exc:
        raise ImportFailed(f"{bench_source}: {exc}") from exc
    present = set() if create is not None else _existing_item_keys(wb, study)
    rows, too_few = [], 0
    for sample in samples:
        if sample.uid in present:
            continue
        where = f"{results}: {sample.uid}"
        found = {name: p for name in names if (p := find_output(results, name, sample)) is not None}
        if len(found) < 2:
            too_few += 1
            continue
        row = _Row(where, {
            "instruction": sample.instruction, "language": sample.language, "category": sample.task_type,
            "key": sample.uid, "gold": None,
            "metadata": {"gedit": {"task_type": sample.task_type, "key": sample.key, "intersection": sample.intersection}},
        })  # fmt: skip
        row.images = {
            OUTPUT_PREFIX + n: safe.resolve(str(p.relative_to(results)), where) for n, p in found.items()
        }
        row.images["source"] = sample.input_image_raw  # bytes: the store accepts them directly
        rows.append(row)
    if not rows and create is not None:
        raise ImportFailed(f"{results}: no sample has outputs from two systems; the study was not created")
    imported = _insert_all(wb, target, rows, _insert_item(wb), results) if rows else 0
    return {"study": study, "imported": imported, "already_present": len(present), "too_few_outputs": too_few}


def _existing_item_keys(wb: Workbench, study: str | int) -> set[str]:
    study_id = wb.study_info(study)["study_id"]
    with wb.db.read.begin() as s:
        return set(
            s.scalars(
                select(Item.external_key).where(Item.study_id == study_id, Item.external_key.is_not(None))
            )
        )


def detect_format(path: Path) -> str:
    """``gedit`` for a results folder, ``finetune`` for a ``.json`` metadata file, else ``manifest``."""
    if path.is_dir():
        return "gedit"
    return "finetune" if path.suffix.lower() == ".json" else "manifest"


def import_source(
    wb: Workbench, study: str | int, source: str | os.PathLike, fmt: str | None = None,
    root: str | os.PathLike | None = None, systems: Sequence[str] | None = None,
    bench: str | os.PathLike | None = None, create: StudySpec | None = None, actor: str = "system",
) -> dict[str, Any]:  # fmt: skip
    """Import a manifest, fine-tuning metadata or GEdit results tree (``fmt``, default: by file type) into an
    existing study, or into a new one made in the same transaction (``create``)."""
    source = Path(source)
    fmt = fmt or detect_format(source)
    if fmt == "gedit":
        if not bench:
            raise ImportFailed(
                f"{source}: a GEdit results tree needs the bench parquet file or folder (--bench)"
            )
        return import_gedit_results(wb, study, source, bench, systems=systems, create=create, actor=actor)
    if fmt == "finetune":
        return import_finetune_metadata(wb, study, source, root=root, create=create, actor=actor)
    if fmt == "manifest":
        return import_manifest(wb, study, source, root=root, systems=systems, create=create, actor=actor)
    raise ImportFailed(f"{source}: unknown import format {fmt!r} (manifest, gedit or finetune)")
