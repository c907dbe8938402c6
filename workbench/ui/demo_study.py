"""First-start demo content: a preference and a curation study built from the editor's own outputs.

The samples (source image, instruction, optional rendered reference target) are injected by app.py, so this
module stays independent of the model package. Everything shown is real model output, labelled by setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PREFERENCE_STUDY = "demo-preference"
CURATION_STUDY = "demo-curation"
# Two settings of the same model: few denoising steps versus the full schedule.
SETTINGS = {"fast": {"num_inference_steps": 4}, "full": {"num_inference_steps": 16}}
DEMO_GUIDELINES = (
    "Demo study built from the embedded model's own edits. Pick the output that follows the instruction better "
    "while keeping everything else unchanged."
)


@dataclass(frozen=True)
class DemoSample:
    """One edit request for the demo; `reference` is the known-correct target when there is one."""

    source: Image.Image
    instruction: str
    language: str = "en"
    category: str | None = None
    reference: Image.Image | None = None


def agreement(a: Image.Image, b: Image.Image) -> float:
    """1 - mean absolute pixel difference (0..1): the demo curation filter's score against the reference."""
    x = np.asarray(a.convert("RGB").resize(b.size), dtype=np.float32)
    y = np.asarray(b.convert("RGB"), dtype=np.float32)
    return float(1.0 - np.abs(x - y).mean() / 255.0)


def _edit(editor: Any, sample: DemoSample, setting: dict[str, Any], seed: int) -> Image.Image:
    # Work at the sample's native size: demo sources are small, and upscaling only costs time.
    size = max(64, *sample.source.size)
    out = editor(image=sample.source, prompt=sample.instruction, seed=seed, size_level=size, **setting)
    return out.images[0]


def _create(wb: Any, name: str, kind: str, k: int) -> None:
    if name not in {s["name"] for s in wb.list_studies()}:
        wb.create_study(name, kind=kind, k=k, guidelines=DEMO_GUIDELINES)


def ensure_demo_studies(
    wb: Any, editor: Any, samples: Iterable[DemoSample], marker: Path | None = None
) -> int:
    """Create both demo studies and fill them item by item (raters can start on the first one).

    Items carry keys demo-<i>, so a restart after an interrupted first start adds only what is missing; once
    `marker` exists (written at the end) nothing is generated again. Returns the number of items added.
    """
    if marker is not None and marker.exists():
        return 0
    _create(wb, PREFERENCE_STUDY, "preference", k=3)
    _create(wb, CURATION_STUDY, "curation", k=1)
    name = str(getattr(editor, "name", "model"))
    added = 0
    for i, sample in enumerate(samples):
        outs = {f"{name} ({label})": _edit(editor, sample, cfg, seed=i) for label, cfg in SETTINGS.items()}
        target = outs[f"{name} (full)"]
        score = None if sample.reference is None else agreement(target, sample.reference)
        reason = "no reference" if score is None else "pixel agreement with the rendered reference target"
        with contextlib.suppress(ValueError):  # duplicate key: added by an earlier, interrupted start
            wb.add_item(
                PREFERENCE_STUDY, sample.source, sample.instruction, language=sample.language,
                category=sample.category, outputs=outs, key=f"demo-{i}",
            )  # fmt: skip
            added += 1
        with contextlib.suppress(ValueError):
            wb.add_candidate(
                CURATION_STUDY, sample.source, sample.instruction, target, score, reason,
                category=sample.category, language=sample.language, key=f"demo-{i}",
            )  # fmt: skip
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{name}\n", encoding="utf-8")
    return added
