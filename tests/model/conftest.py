"""Fixtures for the model tests: tiny random pipelines built locally (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.tiny import tiny_pipeline, tiny_processor


@pytest.fixture(scope="session")
def tiny_pipe():
    """A v1.1 tiny pipeline; tests must not change its weights or config."""
    pipe = tiny_pipeline(seed=0, version="v1.1")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_pipe_v10():
    pipe = tiny_pipeline(seed=1, version="v1.0")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def processor():
    return tiny_processor()


@pytest.fixture
def photo() -> Image.Image:
    """A small random RGB image (80x60, landscape)."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
