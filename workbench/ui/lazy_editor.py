"""Load the editor in a background thread so the app serves (Rate, Curate, Results, Admin) within seconds.

Importing torch/diffusers/transformers and building the model takes far longer than starting Gradio; the Edit
tab waits for the model on its first call, and the first-start demo studies are generated once it is loaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundEditor:
    """Callable like the pipeline; `loader()` runs in a thread, then `after_load(editor)` (e.g. demo seeding)."""

    def __init__(
        self,
        loader: Callable[[], Any],
        after_load: Callable[[Any], None] | None = None,
        timeout_s: float = 600,
    ) -> None:
        self._editor: Any = None
        self._error: BaseException | None = None
        self._loaded = threading.Event()
        self.timeout_s = timeout_s
        self._thread = threading.Thread(
            target=self._load, args=(loader, after_load), daemon=True, name="editor-load"
        )
        self._thread.start()

    def _load(self, loader: Callable[[], Any], after_load: Callable[[Any], None] | None) -> None:
        try:
            self._editor = loader()
        except BaseException as exc:  # reported to every caller instead of dying silently
            log.exception("loading the editor failed")
            self._error = exc
        finally:
            self._loaded.set()
        if after_load is not None and self._editor is not None:
            try:
                after_load(self._editor)
            except Exception:  # the app keeps serving without demo content
                log.exception("post-load step failed")

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self._error is None

    def get(self) -> Any:
        """The loaded editor (blocks until loading finishes); RuntimeError if loading failed."""
        if not self._loaded.wait(self.timeout_s):
            raise RuntimeError("the model is still loading; try again in a minute")
        if self._error is not None:
            raise RuntimeError(f"the model failed to load: {self._error}") from self._error
        return self._editor

    @property
    def name(self) -> str:
        if not self._loaded.is_set():
            return "loading..."
        return "failed to load" if self._error is not None else str(getattr(self._editor, "name", "model"))

    @property
    def config(self) -> Any:
        return getattr(self.get(), "config", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get()(*args, **kwargs)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the loader and the after-load step; True when both finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
