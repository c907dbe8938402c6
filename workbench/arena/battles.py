"""The arena's battle flow: validate the prompt, pick a pair, run both systems in parallel, store, vote.

``Arena.start`` returns only when both systems are done (both images together, no hint of which was faster)
or one of them failed or timed out (the battle then ends without a vote and the failure is counted for the
system). ``Arena.vote`` stores the visitor's answer exactly once per battle and reveals the names.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from PIL import Image

from db.models import CHOICES, utcnow
from workbench import scheduler
from workbench.arena import store
from workbench.arena.contestants import ContestantSpec, Editor, make_editor
from workbench.arena.prompts import Prompt, check_prompt

if TYPE_CHECKING:
    from workbench.service import StudyRef, Workbench

CONTESTANTS_TTL_S = 10.0


class BattleFailed(RuntimeError):
    """A system failed or timed out: the battle ended without a vote (the message says which side)."""


class RateLimited(ValueError):
    """The visitor started too many battles recently."""


@dataclass
class Limits:
    """Per-visitor limits (environment: ARENA_BATTLES_PER_MINUTE, ARENA_BATTLES_PER_DAY)."""

    per_minute: int = field(default_factory=lambda: int(os.environ.get("ARENA_BATTLES_PER_MINUTE", "6")))
    per_day: int = field(default_factory=lambda: int(os.environ.get("ARENA_BATTLES_PER_DAY", "300")))


# Contestant calls run here. A system that hangs past its timeout is abandoned and keeps one worker until it
# returns; the pool is large enough that a few hung calls do not hold up other battles.
_SYSTEMS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="arena-system")


class Arena:
    """Battles of the arena studies in one workbench. Thread-safe; one per process."""

    def __init__(
        self, wb: Workbench, limits: Limits | None = None, editors: Mapping[str, Editor] | None = None
    ) -> None:
        """``editors`` (by contestant name) replace how a contestant runs, e.g. a stand-in in tests."""
        self.wb = wb
        self.limits = limits or Limits()
        self._overrides = dict(editors or {})
        self._editors: dict[tuple[str, str], tuple[str, Editor]] = {}
        self._specs: dict[StudyRef, tuple[float, list[tuple[int, ContestantSpec, bool]]]] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._rng = random.Random()

    # ------------------------------------------------------------------ contestants
    def contestants(self, study: StudyRef) -> list[tuple[int, ContestantSpec, bool]]:
        """Active contestants (cached briefly: Admin changes reach new battles within seconds)."""
        cached = self._specs.get(study)
        if cached is None or time.monotonic() - cached[0] > CONTESTANTS_TTL_S:
            cached = (time.monotonic(), store.contestants(self.wb, study))
            self._specs[study] = cached
        return cached[1]

    def forget(self, study: StudyRef) -> None:
        """Drop cached contestants (after an Admin change)."""
        self._specs.pop(study, None)

    def _editor(self, study: StudyRef, spec: ContestantSpec) -> Editor:
        if spec.name in self._overrides:
            return self._overrides[spec.name]
        key, signature = (str(study), spec.name), repr((spec.kind, sorted(spec.config.items())))
        with self._lock:
            cached = self._editors.get(key)
            if cached is None or cached[0] != signature:
                cached = (signature, make_editor(spec, self.wb.data_dir / "arena-remote"))
                self._editors[key] = cached
            return cached[1]

    # ------------------------------------------------------------------ pairing
    def _choose(
        self, study: StudyRef, avoid: frozenset[str] | None
    ) -> tuple[tuple[int, ContestantSpec], tuple[int, ContestantSpec], bool]:
        """The scheduler's rule: most overlapping rating CIs first, then least shown, then random; the lower id
        on the side it has been on less often. ``avoid`` (names) skips the last pair when others exist."""
        active = {sid: spec for sid, spec, _ in self.contestants(study)}
        if len(active) < 2:
            raise ValueError("this arena needs at least two active contestants")
        pairs = list(itertools.combinations(sorted(active), 2))
        if avoid:
            others = [p for p in pairs if {active[p[0]].name, active[p[1]].name} != set(avoid)]
            pairs = others or pairs
        priority = self.wb._pair_priority(study)
        with self.wb.db.read.begin() as s:
            study_id = self.wb._study_record(s, study).id
            counts = scheduler.pair_counts(s.connection(), study_id, sorted(active))
        with self._lock:
            rng = random.Random(self._rng.getrandbits(64))
        lo, hi, lo_on_left = scheduler.pick_pair(pairs, counts, rng, priority)
        left, right = (lo, hi) if lo_on_left else (hi, lo)
        return (left, active[left]), (right, active[right]), lo_on_left

    # ------------------------------------------------------------------ limits
    def _admit(self, study: StudyRef, visitor: str) -> None:
        now = utcnow()
        with self.wb.db.read.begin() as s:
            study_id = self.wb._study_record(s, study).id
            minute, day = store.recent_battles(
                s, study_id, visitor, now - timedelta(minutes=1), now - timedelta(days=1)
            )
        if minute >= self.limits.per_minute:
            raise RateLimited(
                f"Too many battles in a minute (limit {self.limits.per_minute}); please wait a moment."
            )
        if day >= self.limits.per_day:
            raise RateLimited(
                f"Daily battle limit reached ({self.limits.per_day}); please come back tomorrow."
            )

    # ------------------------------------------------------------------ battle
    def _run(
        self, study: StudyRef, spec: ContestantSpec, image: Image.Image, instruction: str
    ) -> tuple[str, float]:
        """Run one side; its output's hash and the system's own seconds (storing the image is not counted)."""
        started = time.perf_counter()
        out = self._editor(study, spec)(image.copy(), instruction)
        seconds = time.perf_counter() - started
        if not isinstance(out, Image.Image):
            raise TypeError(f"the system returned {type(out).__name__}, not an image")
        return self.wb.images.put(out), seconds

    def _collect(self, sid: int, spec: ContestantSpec, future: Future, deadline: float) -> store.BattleResult:
        try:
            image_hash, seconds = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return store.BattleResult(sid, None, error=f"{store.TIMED_OUT} after {spec.timeout_s:g} s")
        except Exception as exc:  # any failure of a contestant ends the battle, recorded per system
            return store.BattleResult(sid, None, error=f"{type(exc).__name__}: {exc}"[:2000])
        return store.BattleResult(sid, round(seconds, 4), image_hash=image_hash)

    def start(self, study: StudyRef, visitor: str, image: Image.Image, instruction: str,
              avoid: frozenset[str] | None = None) -> dict[str, Any]:  # fmt: skip
        """Run one battle. Returns the token and both output paths; ``BattleFailed`` when a side failed."""
        prompt = check_prompt(instruction)
        with self._lock:
            if visitor in self._busy:
                raise RateLimited("Your previous battle is still running; please wait for it.")
            self._busy.add(visitor)
        try:
            self._admit(study, visitor)
            return self._battle(study, visitor, image, prompt, avoid)
        finally:
            with self._lock:
                self._busy.discard(visitor)

    def _battle(self, study: StudyRef, visitor: str, image: Image.Image, prompt: Prompt,
                avoid: frozenset[str] | None) -> dict[str, Any]:  # fmt: skip
        (lsid, lspec), (rsid, rspec), lo_on_left = self._choose(study, avoid)
        started = time.monotonic()
        futures = [
            _SYSTEMS.submit(self._run, study, spec, image, prompt.instruction) for spec in (lspec, rspec)
        ]
        source_hash = self.wb.images.put(image)  # while the systems run
        left = self._collect(lsid, lspec, futures[0], started + lspec.timeout_s)
        right = self._collect(rsid, rspec, futures[1], started + rspec.timeout_s)
        token = secrets.token_urlsafe(16)
        record = {"source_hash": source_hash, "instruction": prompt.instruction, "language": prompt.language,
                  "category": prompt.category}  # fmt: skip
        stored = store.store_battle(self.wb, study, token, visitor, record, left, right, lo_on_left)
        if stored["status"] == "failed":
            # Which side failed and how, never the error text: it could name the system (a URL, a model path).
            sides = [f"system {side} {'timed out' if r.error.startswith(store.TIMED_OUT) else 'failed'}"
                     for side, r in (("A", left), ("B", right)) if r.error]  # fmt: skip
            raise BattleFailed(f"This battle ended without a vote: {'; '.join(sides)}. Start a new round.")
        return {
            "battle_id": token,
            "left_path": str(self.wb.images.path(left.image_hash)),
            "right_path": str(self.wb.images.path(right.image_hash)),
            "source_path": str(self.wb.images.path(source_hash)),
            "instruction": prompt.instruction,
            "language": prompt.language,
            "pair": frozenset((lspec.name, rspec.name)),
        }

    # ------------------------------------------------------------------ vote
    def vote(self, battle_id: str, choice: str, seconds_on_task: float | None = None) -> dict[str, Any]:
        """Store the vote (A = left, B = right, tie, both_bad) once per battle; returns the revealed names.

        Sending the same answer again is harmless (``stored: False``); a different answer is refused.
        """
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        if not isinstance(battle_id, str) or not battle_id:
            raise ValueError("battle_id is required")
        battle = store.battle_by_token(self.wb, battle_id)
        if battle["status"] != "ready":
            raise ValueError("this battle ended without a vote (a system failed); start a new round")
        result = self.wb.submit_vote(battle["impression_id"], store.ARENA_RATER, choice, f"arena:{battle_id}",
                                     seconds_on_task=seconds_on_task)  # fmt: skip
        if not result["stored"]:
            previous = store.current_choice(self.wb, battle["impression_id"])
            if previous != choice:
                raise ValueError(f"this battle already has a vote ({previous}); start a new round")
        return {
            "stored": result["stored"],
            "choice": choice,
            "model_a": battle["left"],
            "model_b": battle["right"],
        }
