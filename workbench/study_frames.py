"""Read a study's current votes and decisions out of the database as the DataFrames ``workbench.stats`` takes.

Only the *current* answer of each append-only chain counts: the newest row per impression (votes) or per
assignment (decisions), dropped when it is an undo ("retract"). Votes are written in FastChat's shape with
``model_a``/``model_b`` in alphabetical order and ``left`` saying which of them the rater saw on the left, so
the position-bias report can separate side from system.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from db.models import (
    RETRACT,
    Assignment,
    CurationCandidate,
    Decision,
    GoldItem,
    ImportedBattle,
    Impression,
    Item,
    Rater,
    System,
    Vote,
)
from workbench.lookup import StudyRef
from workbench.reading import StudyReader
from workbench.sides import LEFT_OUTPUT, LEFT_SYSTEM, RIGHT_OUTPUT, RIGHT_SYSTEM, join_sides

CHOICE_TO_SCREEN_WINNER = {"A": "left", "B": "right", "tie": "tie", "both_bad": "tie (bothbad)"}


def _current(model, parent_column):  # ORM class / column
    """Subquery of the newest row id per parent (the head of each append-only chain)."""
    return select(func.max(model.id).label("id")).group_by(parent_column).subquery()


def votes_frame(wb: StudyReader, study_id: int) -> pd.DataFrame:
    """Current votes of the study (gold items included, flagged by ``gold_winner``) plus imported battles."""
    head = _current(Vote, Vote.impression_id)
    query = (
        join_sides(
            select(
                Vote.id.label("vote_id"),
                Vote.choice,
                Vote.semantic,
                Vote.quality,
                Vote.overall,
                Vote.seconds_on_task,
                Vote.created_at,
                Impression.item_id,
                Impression.id.label("impression_id"),
                Rater.handle.label("rater"),
                Item.category,
                Item.language,
                Item.is_gold,
                GoldItem.good_output_id,
                Assignment.extra,
                LEFT_OUTPUT.c.id.label("left_output_id"),
                RIGHT_OUTPUT.c.id.label("right_output_id"),
                LEFT_SYSTEM.c.name.label("left_system"),
                RIGHT_SYSTEM.c.name.label("right_system"),
            )
            .join(head, head.c.id == Vote.id)
            .join(Impression, Impression.id == Vote.impression_id)
            .join(Rater, Rater.id == Vote.rater_id)
            .join(Item, Item.id == Impression.item_id)
            .outerjoin(GoldItem, GoldItem.item_id == Item.id)
            .outerjoin(Assignment, Assignment.id == Impression.assignment_id)
        )
        .where(Impression.study_id == study_id, Vote.choice != RETRACT)
        .order_by(Vote.id)
    )
    with wb.db.read.begin() as s:
        live = pd.DataFrame(s.execute(query).mappings().all())
        battles = pd.DataFrame(
            s.execute(
                select(
                    System.name.label("model_a"),
                    ImportedBattle.system_b_id,
                    ImportedBattle.winner,
                    ImportedBattle.judge.label("rater"),
                    ImportedBattle.language,
                    ImportedBattle.question_id,
                )
                .join(System, System.id == ImportedBattle.system_a_id)
                .where(ImportedBattle.study_id == study_id)
                .order_by(ImportedBattle.id)
            )
            .mappings()
            .all()
        )
        names = dict(s.execute(select(System.id, System.name).where(System.study_id == study_id)).all())
    frames = [_live_votes(live)] if len(live) else []
    if len(battles):
        battles["model_b"] = battles.pop("system_b_id").map(names)
        battles["left"] = "model_a"  # FastChat/GenAI-Arena logs: Model A is the left panel
        battles["imported"] = True
        frames.append(battles)
    if not frames:
        return pd.DataFrame(columns=["model_a", "model_b", "winner", "item_id", "rater", "left"])
    return pd.concat(frames, ignore_index=True)


def _live_votes(live: pd.DataFrame) -> pd.DataFrame:
    """Map on-screen choices (A = left) to FastChat winners over alphabetically ordered model_a/model_b."""
    left_first = (live["left_system"] <= live["right_system"]).to_numpy()
    screen = live["choice"].map(CHOICE_TO_SCREEN_WINNER).to_numpy()
    winner = np.select(
        [screen == "left", screen == "right"],
        [np.where(left_first, "model_a", "model_b"), np.where(left_first, "model_b", "model_a")],
        default=screen,
    )
    gold_side = np.where(
        live["good_output_id"].to_numpy() == live["left_output_id"].to_numpy(),
        np.where(left_first, "model_a", "model_b"),
        np.where(left_first, "model_b", "model_a"),
    )
    gold_winner = np.where(
        live["is_gold"].to_numpy(dtype=bool),
        np.where(live["good_output_id"].isna().to_numpy(), "tie (bothbad)", gold_side),
        None,
    )
    return pd.DataFrame(
        {
            "model_a": np.where(left_first, live["left_system"], live["right_system"]),
            "model_b": np.where(left_first, live["right_system"], live["left_system"]),
            "winner": winner,
            "left": np.where(left_first, "model_a", "model_b"),
            "item_id": live["item_id"],
            "impression_id": live["impression_id"],
            "vote_id": live["vote_id"],
            "rater": live["rater"],
            "category": live["category"],
            "language": live["language"],
            "seconds_on_task": live["seconds_on_task"],
            "semantic": live["semantic"],
            "quality": live["quality"],
            "overall": live["overall"],
            "gold_winner": gold_winner,
            "created_at": live["created_at"],
            # A late answer on a lapsed claim whose slot another rater had taken: a rating beyond k.
            "extra": live["extra"].fillna(False).astype(bool),
            "imported": False,
        }
    )


def decisions_frame(wb: StudyReader, study_id: int) -> pd.DataFrame:
    """Current curation decisions of the study (one row per reviewer and candidate)."""
    head = _current(Decision, Decision.assignment_id)
    query = (
        select(
            Decision.id.label("decision_id"),
            Decision.candidate_id,
            Rater.handle.label("rater"),
            Decision.decision,
            Decision.reasons,
            Decision.note,
            Decision.created_at,
            Assignment.extra,
            CurationCandidate.category,
            CurationCandidate.language,
            CurationCandidate.filter_score,
            CurationCandidate.filter_reason,
        )
        .join(head, head.c.id == Decision.id)
        .join(Assignment, Assignment.id == Decision.assignment_id)
        .join(Rater, Rater.id == Decision.rater_id)
        .join(CurationCandidate, CurationCandidate.id == Decision.candidate_id)
        .where(Assignment.study_id == study_id, Decision.decision != RETRACT)
        .order_by(Decision.id)
    )
    with wb.db.read.begin() as s:
        rows = s.execute(query).mappings().all()
    columns = ["decision_id", "candidate_id", "rater", "decision", "reasons", "note", "created_at", "extra",
               "category", "language", "filter_score", "filter_reason"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def study_stats(
    wb: StudyReader, study: StudyRef, bootstrap_rounds: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Everything ``Workbench.stats`` returns (see ``workbench.stats.report.stats_report``).

    Gold items judge raters, not systems: they are left out of the ratings but used for rater quality.
    """
    from workbench.stats import rater_quality, stats_report, to_jsonable  # pure functions over DataFrames

    info = wb.study_info(study)
    if info["kind"] == "curation":
        decisions = decisions_frame(wb, info["study_id"])
        empty = {
            k: None
            for k in ("win_matrix", "per_category", "per_language", "agreement", "position_bias", "raters")
        }
        return {**empty, "leaderboard": [], "curation": _curation_section(decisions)}
    votes = votes_frame(wb, info["study_id"])
    rated = _without_gold(votes)
    if rated.empty:
        return {"leaderboard": [], "win_matrix": None, "per_category": None, "per_language": None,
                "agreement": None, "position_bias": None, "raters": None, "curation": None}  # fmt: skip
    report = stats_report(rated, rounds=bootstrap_rounds, seed=seed)
    if "rater" in votes:
        report["raters"] = to_jsonable(rater_quality(votes.dropna(subset=["rater"])))
    return report


def _without_gold(votes: pd.DataFrame) -> pd.DataFrame:
    return votes[votes["gold_winner"].isna()] if "gold_winner" in votes else votes


def quick_leaderboard(wb: StudyReader, study_id: int, rounds: int = 100) -> list[dict[str, Any]]:
    """Ratings with vote-resampled CIs only (no agreement, no per-category boards): what pair scheduling needs."""
    from workbench.stats import leaderboard

    rated = _without_gold(votes_frame(wb, study_id))
    if rated.empty:
        return []
    return leaderboard(rated, rounds=rounds).to_dict("records")


def _curation_section(decisions: pd.DataFrame) -> dict[str, Any] | None:
    """Acceptance rates, reasons and reviewer agreement (None before the first decision)."""
    from workbench.stats import curation_report, to_jsonable

    return to_jsonable(curation_report(decisions)) if len(decisions) else None


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def ci_overlap_priority(
    leaderboard: list[dict[str, Any]], system_ids: dict[str, int]
) -> dict[tuple[int, int], float]:
    """Per system pair (lo id, hi id): how much their rating CIs overlap, relative to the narrower one
    (at most 1.0; negative for a gap). The scheduler shows the highest first: the least certain pair.

    Pairs the leaderboard has not seen (no CI yet) get the top priority 1.0, so new systems get compared first.
    """
    bounds = {
        row["system"]: (row.get("ci_low"), row.get("ci_high"))
        for row in leaderboard
        if _finite(row.get("ci_low")) and _finite(row.get("ci_high"))
    }
    priority: dict[tuple[int, int], float] = {}
    names = sorted(system_ids, key=system_ids.get)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pair = tuple(sorted((system_ids[a], system_ids[b])))
            if a not in bounds or b not in bounds:
                priority[pair] = 1.0
                continue
            (lo_a, hi_a), (lo_b, hi_b) = bounds[a], bounds[b]
            overlap = min(hi_a, hi_b) - max(lo_a, lo_b)
            narrow = max(min(hi_a - lo_a, hi_b - lo_b), 1e-9)
            # Negative when the intervals are apart: the further apart, the more settled the pair.
            priority[pair] = float(min(overlap / narrow, 1.0))
    return priority
