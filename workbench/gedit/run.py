"""Run an editor (Step1XEditPipeline call signature) over GEdit-Bench into the official results layout.

``results/{model}/fullset/{task_type}/{en|cn}/{key}.png``. Seeds derive from (base seed, sample id), so a
sample gets the same seed whatever filter, order or process split produced it. Finished outputs are skipped,
so an interrupted run resumes. Under ``accelerate launch`` every process takes every ``world_size``-th sample
(in sorted id order) and writes into the same tree: outputs merge by path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from tqdm.auto import tqdm

from workbench.gedit import safe_name
from workbench.gedit.dataset import BenchSample


class Editor(Protocol):
    """The part of ``model.pipeline.Step1XEditPipeline`` that a bench run needs."""

    def __call__(self, *, image: Image.Image, prompt: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class RunSettings:
    """Generation settings recorded in the manifest (defaults = the pipeline's documented defaults)."""

    seed: int = 0
    num_inference_steps: int = 28
    guidance_scale: float = 6.0
    size_level: int = 1024
    negative_prompt: str = ""


def output_path(results_dir: Path, model_name: str, sample: BenchSample) -> Path:
    """The official location of one sample's edited image."""
    return results_dir / model_name / "fullset" / sample.task_type / sample.language / f"{sample.key}.png"


def sample_seed(base_seed: int, sample: BenchSample) -> int:
    """A per-sample seed, stable across runs, filters and process splits (31 bits: safe for any generator)."""
    digest = hashlib.sha256(f"{base_seed}:{sample.uid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def shard(samples: Sequence[BenchSample], rank: int, world_size: int) -> list[BenchSample]:
    """This process's share: every ``world_size``-th sample of the id-sorted list, starting at ``rank``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid process split rank={rank} world_size={world_size}")
    ordered = sorted(samples, key=lambda s: s.uid)
    return ordered[rank::world_size]


def distributed_context(env: Mapping[str, str] | None = None) -> tuple[int, int, str | None]:
    """(rank, world size, device) from the launcher's environment (``accelerate launch``, ``torchrun``).

    The processes never need to talk to each other (outputs merge by path), so no process group is started:
    RANK/WORLD_SIZE pick the share and LOCAL_RANK the GPU. Single process: (0, 1, None = default device).
    """
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", env.get("RANK", "0")))
    import torch

    return rank, world, f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


def code_version() -> str:
    """``git describe`` of this checkout, or "unknown" outside a git tree."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_bench(
    editor: Editor,
    samples: Sequence[BenchSample],
    results_dir: Path,
    model_name: str | None = None,
    settings: RunSettings | None = None,
    rank: int = 0,
    world_size: int = 1,
    bench_source: str = "",
    progress: bool = True,
) -> dict:
    """Edit this process's share of ``samples``, skipping finished outputs; returns the manifest written."""
    settings = settings or RunSettings()
    model_name = safe_name(model_name or getattr(editor, "name", None) or type(editor).__name__)
    if hasattr(editor, "set_progress_bar_config"):  # diffusers: one bar over samples, not one per sample
        editor.set_progress_bar_config(disable=True)
    mine = shard(samples, rank, world_size)
    generated, skipped, seeds, failed = [], [], {}, {}
    for sample in tqdm(mine, desc=f"{model_name} [{rank + 1}/{world_size}]", disable=not progress):
        target = output_path(results_dir, model_name, sample)
        seed = sample_seed(settings.seed, sample)
        seeds[sample.uid] = seed
        if target.is_file():
            skipped.append(sample.uid)
            continue
        try:
            result = editor(
                image=sample.source_image(raw=True),
                prompt=sample.instruction,
                negative_prompt=settings.negative_prompt,
                num_inference_steps=settings.num_inference_steps,
                guidance_scale=settings.guidance_scale,
                size_level=settings.size_level,
                seed=seed,
            )
        except Exception as exc:  # one bad sample must not cost the rest of a long run
            # No output is written: the judge records it as missing_output (an editor failure).
            failed[sample.uid] = f"{exc.__class__.__name__}: {exc}"
            print(f"edit failed for {sample.uid}: {failed[sample.uid]}", file=sys.stderr)
            continue
        _save_atomically(result.images[0], target)
        generated.append(sample.uid)
    manifest = {
        "model": model_name,
        "model_name": getattr(editor, "name", None),
        "model_config": _plain_config(editor),
        "settings": asdict(settings),
        "seed_rule": "sha256(f'{seed}:{task_type}/{language}/{key}')[:4] & 0x7fffffff",
        "seeds": seeds,
        "editor_input": "input_image_raw at native size; output saved at the pipeline's output size",
        "bench": bench_source,
        "code_version": code_version(),
        "rank": rank,
        "world_size": world_size,
        "generated": len(generated),
        "skipped_existing": len(skipped),
        "failed": failed,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    name = "run_manifest.json" if world_size == 1 else f"run_manifest.rank{rank}-of-{world_size}.json"
    manifest_path = results_dir / model_name / name
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


def _plain_config(editor: Editor) -> dict:
    """The editor's diffusers config (version, sizes, defaults), JSON-safe values only."""
    config = getattr(editor, "config", None) or {}
    return {
        k: v
        for k, v in dict(config).items()
        if isinstance(v, str | int | float | bool) and not k.startswith("_")
    }


def _save_atomically(image: Image.Image, target: Path) -> None:
    """Write via a temporary file so an interrupted run never leaves a truncated ``{key}.png`` to skip."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(target)
