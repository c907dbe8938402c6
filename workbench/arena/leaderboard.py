"""The arena leaderboard: Bradley–Terry ratings with two 95 % intervals (votes resampled, and prompts resampled
as clusters), the win-rate matrix, battles per system and per-language / per-category boards.

It reads the same votes as the Results tab (``workbench.study_frames.votes_frame``: live votes plus imported
battles) and adds a ``prompt`` column (source image + instruction), so that battles on one prompt — "same
prompt, new pair" rounds, or one prompt re-used by many visitors — count as one cluster.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select

from db.models import Item
from workbench.arena.store import arena_study
from workbench.stats import grouped_leaderboards, leaderboard, system_counts, win_rate_matrix
from workbench.study_frames import votes_frame

if TYPE_CHECKING:
    from workbench.service import StudyRef, Workbench

PUBLIC_COLUMNS = ["rank", "system", "rating", "ci_low", "ci_high", "prompt_ci_low", "prompt_ci_high", "battles",
                  "win_rate"]  # fmt: skip
CACHE_TTL_S = 30.0
MIN_BATTLES_FOR_CI = 10


def arena_votes(wb: Workbench, study: StudyRef) -> pd.DataFrame:
    """Current votes of the arena (FastChat shape) with a ``prompt`` cluster label."""
    with wb.db.read.begin() as s:
        st = arena_study(wb, s, study)
        prompts = {
            item_id: hashlib.sha256(f"{source}\n{text}".encode()).hexdigest()[:16]
            for item_id, source, text in s.execute(
                select(Item.id, Item.source_hash, Item.instruction).where(Item.study_id == st.id)
            )
        }
    votes = votes_frame(wb, st.id)
    votes["prompt"] = votes["item_id"].map(prompts) if "item_id" in votes and len(votes) else None
    return votes


def _round(value: Any, digits: int = 1) -> Any:
    return round(float(value), digits) if isinstance(value, int | float) and math.isfinite(value) else None


def board(votes: pd.DataFrame, rounds: int = 200, seed: int = 0) -> pd.DataFrame:
    """One row per system: rating, vote-level CI, prompt-clustered CI, rank (UB), battles, wins, win rate."""
    if votes.empty:
        return pd.DataFrame(columns=PUBLIC_COLUMNS)
    plain = leaderboard(votes, rounds=rounds, seed=seed)
    clustered = leaderboard(votes, rounds=rounds, cluster="prompt", seed=seed).set_index("system")
    plain["prompt_ci_low"] = plain["system"].map(clustered["ci_low"])
    plain["prompt_ci_high"] = plain["system"].map(clustered["ci_high"])
    return plain.rename(columns={"votes": "battles"})


def arena_report(wb: Workbench, study: StudyRef, rounds: int = 200) -> dict[str, Any]:
    """Everything the Arena and Results tabs show: overall board, win-rate matrix, battle counts, and boards
    per language and per category."""
    votes = arena_votes(wb, study)
    overall = board(votes, rounds)
    report: dict[str, Any] = {"votes": len(votes), "leaderboard": overall}
    if votes.empty:
        return report | {"win_matrix": pd.DataFrame(), "battles": pd.Series(dtype=int), "per_language": {},
                         "per_category": {}}  # fmt: skip
    report["win_matrix"] = win_rate_matrix(votes).round(3)
    report["battles"] = system_counts(votes)
    for column, key in (("language", "per_language"), ("category", "per_category")):
        present = votes[votes[column].notna()] if column in votes else votes.iloc[0:0]
        report[key] = grouped_leaderboards(present, by=column, rounds=rounds) if len(present) else {}
    return report


def _interval(low: Any, high: Any, battles: int) -> str:
    # A bootstrap over a handful of battles can collapse to a point (all resamples alike): say so instead.
    if battles < MIN_BATTLES_FOR_CI:
        return f"after {MIN_BATTLES_FOR_CI} battles"
    return f"{_round(low)} – {_round(high)}"


def public_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows for the public table: rank, system, rating, 95 % CI (votes), 95 % CI (prompts), battles, win rate."""
    rows = []
    for r in frame.to_dict("records"):
        battles = int(r["battles"])
        # Rank (UB) compares the intervals: without them it would rank on a handful of battles.
        rank = int(r["rank"]) if battles >= MIN_BATTLES_FOR_CI else "–"
        rows.append([
            rank, r["system"], _round(r["rating"]), _interval(r["ci_low"], r["ci_high"], battles),
            _interval(r["prompt_ci_low"], r["prompt_ci_high"], battles), battles, _round(r["win_rate"], 3),
        ])  # fmt: skip
    return rows


PUBLIC_HEADERS = ["rank", "system", "rating", "95% CI (votes)", "95% CI (prompts)", "battles", "win rate"]


class BoardCache:
    """The public leaderboard per arena, recomputed after a vote in this process or after CACHE_TTL_S (votes
    arriving through other replicas)."""

    def __init__(self, wb: Workbench, rounds: int = 200) -> None:
        self.wb, self.rounds = wb, rounds
        self._cache: dict[str, tuple[float, list[list[Any]]]] = {}
        self._lock = threading.Lock()

    def invalidate(self, study: StudyRef | None = None) -> None:
        """Forget one arena's board (all of them with None)."""
        with self._lock:
            if study is None:
                self._cache.clear()
            else:
                self._cache.pop(str(study), None)

    def rows(self, study: StudyRef) -> list[list[Any]]:
        with self._lock:
            cached = self._cache.get(str(study))
        if cached is None or time.monotonic() - cached[0] > CACHE_TTL_S:
            cached = (time.monotonic(), public_rows(board(arena_votes(self.wb, study), self.rounds)))
            with self._lock:
                self._cache[str(study)] = cached
        return cached[1]
