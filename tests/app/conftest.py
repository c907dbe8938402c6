"""Fixtures for the app tests: a real Workbench on a temporary SQLite DB, an editor, a launched app."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ADMIN_PASSWORD = "test-admin-pw"


class RecolorEditor:
    """Test double with the pipeline's call signature: blends toward inverted colours step by step.

    Used only when model.tiny is not importable; it reports every step like the real pipeline does.
    """

    name = "test-recolor"

    def __call__(self, image, prompt, num_inference_steps=28, guidance_scale=6.0, size_level=512, seed=None,
                 callback_on_step_end=None, **_):  # fmt: skip
        arr = np.asarray(image.convert("RGB"), dtype=np.float32)
        out = arr
        for step in range(1, num_inference_steps + 1):
            out = arr + (255 - 2 * arr) * (step / num_inference_steps) * min(1.0, guidance_scale / 6.0)
            if callback_on_step_end is not None:  # diffusers' contract: (pipe, step index, timestep, tensors)
                callback_on_step_end(self, step - 1, 1000 * (1 - step / num_inference_steps), {})
        return SimpleNamespace(images=[Image.fromarray(out.clip(0, 255).astype(np.uint8))], seed=seed)


def make_editor():
    try:
        from model.tiny import tiny_pipeline
    except ImportError:
        return RecolorEditor()
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def editor():
    return make_editor()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene(seed: int, size: int = 64) -> Image.Image:
    """A small deterministic test picture (coloured blocks)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.NEAREST)


@pytest.fixture(scope="session")
def make_scene():
    return scene


@pytest.fixture(scope="session")
def admin_password() -> str:
    return ADMIN_PASSWORD


@pytest.fixture
def workbench(tmp_path: Path):
    from workbench.service import Workbench

    wb = Workbench(db_url=f"sqlite:///{tmp_path}/wb.db", data_dir=tmp_path / "data")
    wb.init()
    seed_studies(wb)
    yield wb
    wb.close()


def seed_studies(wb, n_items: int = 3) -> None:
    """A preference study with three systems and a curation study, from deterministic pictures."""
    wb.create_study("pref", kind="preference", k=2)
    for i in range(n_items):
        src = scene(i)
        outs = {f"system-{j}": scene(100 + 10 * i + j) for j in range(3)}
        wb.add_item("pref", src, f"edit number {i}", outputs=outs, category="color")
    wb.create_study("cur", kind="curation", k=1)
    for i in range(n_items):
        wb.add_candidate("cur", scene(i), f"candidate {i}", scene(200 + i), 0.5 + i / 10, "test filter")


@pytest.fixture
def settings(tmp_path: Path):
    from workbench.ui import AppSettings

    return AppSettings(
        data_dir=tmp_path / "data", admin_password=ADMIN_PASSWORD, port=free_port(), demo_study=False
    )


@pytest.fixture
def ctx(settings, editor, workbench):
    from workbench.ui.context import UIContext

    return UIContext(settings=settings, editor=editor, workbench=workbench)


def launch_app(root: Path, editor, **settings_kwargs):
    """Build and launch the full app (seeded studies, SQLite) under `root`; returns (demo, namespace)."""
    from workbench.service import Workbench
    from workbench.ui import AppSettings, build_demo, launch_kwargs

    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio-tmp")
    settings = AppSettings(
        data_dir=root / "data", admin_password=ADMIN_PASSWORD, port=free_port(), demo_study=False,
        **settings_kwargs,
    )  # fmt: skip
    wb = Workbench(db_url=f"sqlite:///{root}/wb.db", data_dir=settings.data_dir)
    wb.init()
    seed_studies(wb)
    demo = build_demo(settings, editor, wb)
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    return demo, SimpleNamespace(url=url, settings=settings, workbench=wb, root=root)


@pytest.fixture(scope="session")
def launch_app_factory():
    """`launch_app` for tests that launch the app with another editor or settings."""
    return launch_app


@pytest.fixture(scope="module")
def launched(tmp_path_factory, editor) -> Iterator[SimpleNamespace]:
    """The full app on a free port with seeded studies; yields url, settings, workbench."""
    demo, app = launch_app(tmp_path_factory.mktemp("app"), editor)
    yield app
    demo.close()
    app.workbench.close()


@pytest.fixture(scope="module")
def browser(chromium: dict):
    """Debian's Chromium through Playwright (skips when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(**chromium)
        yield b
        b.close()
