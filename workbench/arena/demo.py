"""The demo arena created on first start: the two nano models shipped in assets/, pitted against each other."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from workbench.arena.contestants import demo_contestants, load_pipeline
from workbench.arena.store import create_arena

if TYPE_CHECKING:
    from workbench.service import Workbench

DEMO_ARENA = "demo-arena"
log = logging.getLogger(__name__)


def ensure_demo_arena(wb: Workbench) -> bool:
    """Create the demo arena unless a study of that name exists; True when it was created."""
    if DEMO_ARENA in {s["name"] for s in wb.list_studies()}:
        return False
    try:
        create_arena(
            wb, DEMO_ARENA, demo_contestants(), guidelines="Two versions of the embedded nano editor."
        )
    except ValueError:  # another replica created it first
        return False
    return True


def warm_demo_arena() -> threading.Thread:
    """Load the demo arena's models in a background thread, so the first battle does not wait for them."""
    models = [spec.config["model"] for spec in demo_contestants()]
    thread = threading.Thread(target=_warm, args=(models,), daemon=True, name="arena-warm-up")
    thread.start()
    return thread


def _warm(models: list[str]) -> None:
    for model in models:
        try:
            load_pipeline(model)
        except Exception:  # the first battle reports the problem to the visitor and the admin
            log.exception("loading arena model %s failed", model)
