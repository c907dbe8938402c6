"""Export a study with pandas (CSV, Parquet, JSONL) and the accepted curation set as fine-tuning metadata.

Tables written per study: ``votes`` (current votes in FastChat's shape, for analysis), ``vote_history`` (every
row, undos and edits included), ``impressions`` (what each rater saw, with sides), ``items``; for curation
studies ``decisions`` (current), ``decision_history`` and ``candidates``; for every study ``rater_sessions`` (a
recruiting platform's study and session ids per rater). Nested values (metadata, reasons) are
JSON text in CSV/Parquet and objects in JSONL. CSV cells that a spreadsheet would evaluate are neutralised
(workbench.csvsafe); Parquet and JSONL keep the raw values.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from db.models import Assignment, CurationCandidate, Decision, Impression, Item, Rater, Vote
from workbench import rater_sessions
from workbench.csvsafe import write_csv
from workbench.lookup import StudyRef
from workbench.reading import StudyReader
from workbench.sides import LEFT_OUTPUT, LEFT_SYSTEM, RIGHT_OUTPUT, RIGHT_SYSTEM, join_sides
from workbench.study_frames import decisions_frame, votes_frame

FORMATS = ("csv", "parquet", "jsonl")


def _frame(wb: StudyReader, query) -> pd.DataFrame:  # a SELECT
    with wb.db.read.begin() as s:
        result = s.execute(query)
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def _history_tables(wb: StudyReader, study_id: int) -> dict[str, pd.DataFrame]:
    impressions = join_sides(
        select(
            Impression.id.label("impression_id"), Rater.handle.label("rater"), Impression.item_id,
            LEFT_SYSTEM.c.name.label("left_system"), RIGHT_SYSTEM.c.name.label("right_system"),
            LEFT_OUTPUT.c.image_hash.label("left_hash"), RIGHT_OUTPUT.c.image_hash.label("right_hash"),
            Impression.status, Assignment.extra, Impression.shown_at,
        )
        .join(Rater, Rater.id == Impression.rater_id)
        .outerjoin(Assignment, Assignment.id == Impression.assignment_id)
    ).where(Impression.study_id == study_id).order_by(Impression.id)  # fmt: skip
    history = (
        select(
            Vote.id.label("vote_id"), Vote.impression_id, Rater.handle.label("rater"), Vote.choice, Vote.semantic,
            Vote.quality, Vote.overall, Vote.comment, Vote.seconds_on_task, Vote.idempotency_key,
            Vote.supersedes_id, Vote.created_at,
        )
        .join(Impression, Impression.id == Vote.impression_id)
        .join(Rater, Rater.id == Vote.rater_id)
        .where(Impression.study_id == study_id)
        .order_by(Vote.id)
    )  # fmt: skip
    items = select(
        Item.id.label("item_id"), Item.external_key.label("key"), Item.instruction, Item.language, Item.category,
        Item.source_hash, Item.is_gold, Item.meta.label("metadata"),
    ).where(Item.study_id == study_id).order_by(Item.id)  # fmt: skip
    return {
        "impressions": _frame(wb, impressions),
        "vote_history": _frame(wb, history),
        "items": _frame(wb, items),
    }


def _curation_tables(wb: StudyReader, study_id: int) -> dict[str, pd.DataFrame]:
    history = (
        select(
            Decision.id.label("decision_id"), Decision.candidate_id, Rater.handle.label("rater"), Decision.decision,
            Decision.reasons, Decision.note, Decision.idempotency_key, Decision.supersedes_id, Decision.created_at,
        )
        .join(Rater, Rater.id == Decision.rater_id)
        .join(CurationCandidate, CurationCandidate.id == Decision.candidate_id)
        .where(CurationCandidate.study_id == study_id)
        .order_by(Decision.id)
    )  # fmt: skip
    candidates = select(
        CurationCandidate.id.label("candidate_id"), CurationCandidate.external_key.label("key"),
        CurationCandidate.instruction, CurationCandidate.language, CurationCandidate.category,
        CurationCandidate.source_hash, CurationCandidate.target_hash, CurationCandidate.filter_score,
        CurationCandidate.filter_reason, CurationCandidate.meta.label("metadata"),
    ).where(CurationCandidate.study_id == study_id).order_by(CurationCandidate.id)  # fmt: skip
    return {
        "decisions": decisions_frame(wb, study_id),
        "decision_history": _frame(wb, history),
        "candidates": _frame(wb, candidates),
    }


def study_tables(wb: StudyReader, study: StudyRef) -> dict[str, pd.DataFrame]:
    """Every exported table of the study, by name."""
    info = wb.study_info(study)
    visits = {"rater_sessions": _frame(wb, rater_sessions.listing_query(info["study_id"]))}
    if info["kind"] == "curation":
        return {**_curation_tables(wb, info["study_id"]), **visits}
    return {"votes": votes_frame(wb, info["study_id"]), **_history_tables(wb, info["study_id"]), **visits}


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Nested values as JSON text; timestamps as UTC (SQLite returns naive UTC, PostgreSQL aware)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.map(lambda v: isinstance(v, dict | list)).any():
            out[column] = values.map(lambda v: None if v is None else json.dumps(v, ensure_ascii=False))
        elif column.endswith("_at") or column == "shown_at":
            out[column] = pd.to_datetime(values, utc=True)
    return out


def write_table(frame: pd.DataFrame, path_without_suffix: Path, fmt: str) -> Path:
    """Write one table as ``.csv``, ``.parquet`` or ``.jsonl``; returns the file written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
    path = path_without_suffix.with_suffix(f".{fmt}")
    tmp = path.with_name(path.name + ".partial")
    if fmt == "jsonl":
        frame.assign(
            **{c: pd.to_datetime(frame[c], utc=True) for c in frame.columns if c.endswith("_at")}
        ).to_json(tmp, orient="records", lines=True, date_format="iso", force_ascii=False)
    elif fmt == "csv":
        write_csv(_flat(frame), tmp)
    else:
        _flat(frame).to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def export_study(
    wb: StudyReader, study: StudyRef, out_dir: str | os.PathLike, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write every table of the study in each format under ``out_dir``; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_table(frame, out / name, fmt)
        for name, frame in study_tables(wb, study).items()
        for fmt in formats
    ]


def accepted_candidates(wb: StudyReader, study: StudyRef, rule: str = "majority") -> pd.DataFrame:
    """Candidates accepted by their reviewers: ``majority`` (more accepts than other decisions) or
    ``unanimous`` (every current decision is accept)."""
    if rule not in ("majority", "unanimous"):
        raise ValueError(f"rule must be 'majority' or 'unanimous', got {rule!r}")
    tables = _curation_tables(wb, wb.study_info(study)["study_id"])
    decisions, candidates = tables["decisions"], tables["candidates"]
    if decisions.empty:
        return candidates.iloc[0:0]
    accepts = (
        decisions.assign(ok=decisions["decision"] == "accept")
        .groupby("candidate_id")["ok"]
        .agg(["sum", "count"])
    )
    keep = (
        accepts["sum"] == accepts["count"] if rule == "unanimous" else accepts["sum"] * 2 > accepts["count"]
    )
    return candidates[candidates["candidate_id"].isin(accepts.index[keep])].reset_index(drop=True)


def export_accepted(
    wb: StudyReader, study: StudyRef, out_dir: str | os.PathLike, rule: str = "majority"
) -> Path:
    """Write the accepted triplets as the official fine-tuning metadata: ``out_dir/metadata.json`` =
    ``{target_path: {"ref_image_path", "caption", "category", "language"}}`` with the images copied to
    ``out_dir/images/`` (paths relative to the JSON file). Returns the JSON path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    for row in accepted_candidates(wb, study, rule).itertuples():
        paths = []
        for digest in (row.target_hash, row.source_hash):
            relative = f"images/{digest}.png"
            if not (out / relative).exists():
                shutil.copyfile(wb.images.path(digest), out / relative)
            paths.append(relative)
        entry = {"ref_image_path": paths[1], "caption": row.instruction, "language": row.language}
        if row.category is not None:
            entry["category"] = row.category
        entries[paths[0]] = entry
    target = out / "metadata.json"
    tmp = target.with_name("metadata.json.partial")
    tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, target)
    return target
