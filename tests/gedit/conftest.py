"""GEdit fixtures: a generated mini bench (same schema as the HF dataset) and a tiny deterministic editor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.gedit.dataset import load_bench, write_synthetic_bench


@pytest.fixture(scope="session")
def bench_file(tmp_path_factory) -> Path:
    return write_synthetic_bench(
        tmp_path_factory.mktemp("bench") / "train-00000-of-00001.parquet", per_type=2
    )


@pytest.fixture(scope="session")
def bench(bench_file):
    return load_bench(bench_file)


@dataclass
class EditorOutput:
    images: list
    seed: int


class TinyEditor:
    """Has the Step1XEditPipeline call signature; output = source tinted by a seed-derived colour."""

    name = "tiny-editor"

    def __init__(self, fail_on: set[str] | None = None):
        self.calls: list[dict] = []
        self.fail_on = fail_on or set()

    def __call__(
        self,
        image,
        prompt,
        negative_prompt="",
        num_inference_steps=28,
        guidance_scale=6.0,
        size_level=512,
        seed=None,
        timesteps_truncate=0.93,
        callback_on_step_end=None,
    ):
        if prompt in self.fail_on:
            raise RuntimeError(f"editor crashed on {prompt!r}")
        self.calls.append({"prompt": prompt, "seed": seed, "size": image.size})
        rng = np.random.default_rng(seed)
        tint = rng.integers(0, 256, 3, dtype=np.uint8)
        pixels = (np.asarray(image, dtype=np.uint16) + tint) // 2
        return EditorOutput([Image.fromarray(pixels.astype(np.uint8))], seed)


@pytest.fixture
def make_editor():
    """Factory for fresh tiny editors (test modules cannot import conftest under importlib mode)."""
    return TinyEditor


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL + processor saved like a Hub judge folder (model.tiny's local tokenizer)."""
    import torch

    from model.tiny import tiny_processor, tiny_text_encoder

    folder = tmp_path_factory.mktemp("tiny-qwen25vl-judge")
    processor = tiny_processor()
    torch.manual_seed(0)
    tiny_text_encoder(processor.tokenizer).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
