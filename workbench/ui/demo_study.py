"""First-start demo content: a preference and a curation study built from the editor's own outputs.

The samples (source image, instruction, optional rendered reference target) are injected by app.py, so this
module stays independent of the model package. Everything shown is real model output, labelled by setting.
"""

from __future__ import annotations

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
    out = editor(image=sample.source, prompt=sample.instruction, seed=seed, size_level=512, **setting)
    return out.images[0]


def ensure_demo_studies(
    wb: Any, editor: Any, samples: Iterable[DemoSample], data_dir: Path, n_examples: int = 4
) -> list[list[str]]:
    """Create both demo studies unless they exist; returns Edit-tab examples [[image path, instruction], ...]."""
    examples_dir = Path(data_dir) / "examples"
    existing = {s["name"] for s in wb.list_studies()}
    samples = list(samples)
    examples = []
    for i, sample in enumerate(samples[:n_examples]):
        path = examples_dir / f"example-{i}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sample.source.save(path)
        examples.append([str(path), sample.instruction])
    if PREFERENCE_STUDY in existing and CURATION_STUDY in existing:
        return examples
    name = str(getattr(editor, "name", "model"))
    outputs = [
        {f"{name} ({label})": _edit(editor, s, cfg, seed=i) for label, cfg in SETTINGS.items()}
        for i, s in enumerate(samples)
    ]
    if PREFERENCE_STUDY not in existing:
        wb.create_study(PREFERENCE_STUDY, kind="preference", k=3, guidelines=DEMO_GUIDELINES)
        for i, (sample, outs) in enumerate(zip(samples, outputs, strict=True)):
            wb.add_item(
                PREFERENCE_STUDY, sample.source, sample.instruction, language=sample.language,
                category=sample.category, outputs=outs, key=f"demo-{i}",
            )  # fmt: skip
    if CURATION_STUDY not in existing:
        wb.create_study(CURATION_STUDY, kind="curation", k=1, guidelines=DEMO_GUIDELINES)
        for i, (sample, outs) in enumerate(zip(samples, outputs, strict=True)):
            target = outs[f"{name} (full)"]
            score = None if sample.reference is None else agreement(target, sample.reference)
            reason = "no reference" if score is None else "pixel agreement with the rendered reference target"
            wb.add_candidate(
                CURATION_STUDY, sample.source, sample.instruction, target, score, reason,
                category=sample.category, language=sample.language, key=f"demo-{i}",
            )  # fmt: skip
    return examples
