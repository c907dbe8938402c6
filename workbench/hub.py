"""Optional push of append-only study snapshots to a Hugging Face dataset repo.

Active only when a repo and a token are configured (``WORKBENCH_HF_REPO`` + ``HF_TOKEN``, or passed in). Every
push uploads a NEW folder ``snapshots/<study>/<UTC time>-<uuid>/`` (JSONL tables), never rewriting earlier files:
the append-only layout the Hub's scheduled-upload guide asks for, safe with several replicas. Pushes run on a
daemon thread; failures (offline, bad token) are logged and retried at the next tick, never raised into the app.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.export import export_study
from workbench.service import Workbench

log = logging.getLogger(__name__)
REPO_ENV, TOKEN_ENV = "WORKBENCH_HF_REPO", "HF_TOKEN"


@dataclass
class HubPusher:
    """Push snapshots of ``studies`` to ``repo_id`` now (``push``) or every ``every_s`` seconds (``start``)."""

    wb: Workbench
    repo_id: str
    token: str
    studies: Sequence[str]
    every_s: float = 600.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, wb: Workbench, studies: Sequence[str], **kwargs: object) -> HubPusher | None:
        """A pusher when both ``WORKBENCH_HF_REPO`` and ``HF_TOKEN`` are set, else None (pushing is off)."""
        repo, token = os.environ.get(REPO_ENV), os.environ.get(TOKEN_ENV)
        return cls(wb, repo, token, studies, **kwargs) if repo and token else None

    def push(self) -> list[str]:
        """Upload one snapshot folder per study; returns the repo paths written. Raises on failure."""
        from huggingface_hub import HfApi

        api = HfApi(token=self.token)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        written = []
        for study in self.studies:
            with tempfile.TemporaryDirectory() as tmp:
                export_study(self.wb, study, tmp, formats=("jsonl",))
                path_in_repo = f"snapshots/{study}/{stamp}-{uuid.uuid4().hex[:8]}"
                api.upload_folder(
                    repo_id=self.repo_id, repo_type="dataset", folder_path=Path(tmp), path_in_repo=path_in_repo,
                    commit_message=f"workbench snapshot of {study} at {stamp}",
                )  # fmt: skip
                written.append(path_in_repo)
        return written

    def push_logged(self) -> bool:
        """``push`` that logs instead of raising (for the background thread); True on success."""
        try:
            paths = self.push()
        except Exception:  # offline, auth or Hub errors must never reach the app
            log.exception("snapshot push to %s failed; will retry at the next tick", self.repo_id)
            return False
        log.info("pushed snapshots %s to %s", paths, self.repo_id)
        return True

    def start(self) -> threading.Thread:
        """Start the background pushes (first one immediately); returns the daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="workbench-hub-push", daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.push_logged()
            self._stop.wait(self.every_s)
