"""Step1X-Edit Studio: `python app.py [--host] [--port] [--db URL] [--model PATH_OR_ID] [--data-dir data]`.

Serves the editor (Edit tab), the Arena and the workbench (Rate, Curate, Results, Admin) in one Gradio app,
locally or as a Hugging Face Space. On first start it creates demo studies from the model's own outputs and a
demo arena.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# On ZeroGPU, `spaces` must be imported before torch; elsewhere the import is cheap or absent.
with contextlib.suppress(ImportError):
    import spaces  # noqa: F401


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument(
        "--db", default=os.environ.get("WORKBENCH_DB"), help="database URL (default: SQLite in --data-dir)"
    )
    p.add_argument(
        "--model",
        default=os.environ.get("STUDIO_MODEL"),
        help="local folder or Hub id (default: embedded nano model)",
    )
    p.add_argument("--data-dir", default=os.environ.get("STUDIO_DATA_DIR", "data"))
    p.add_argument("--no-demo", action="store_true", help="do not create the demo studies on first start")
    return p.parse_args(argv)


def nano_samples(n: int = 12, seed: int = 2026) -> list:
    """Held-out edits from the nano model's synthetic world (English and Chinese), with reference targets."""
    from model.nano.world import make_triplet
    from workbench.ui.demo_study import DemoSample

    out = []
    for i in range(n):
        t = make_triplet(seed, i, split="eval", size=64)
        out.append(DemoSample(t.source, t.instruction, t.language, t.category, t.target))
    return out


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    from model.edit_settings import read_edit_settings
    from model.toy_examples import save_examples
    from workbench.service import Workbench
    from workbench.ui import AppSettings, build_demo, launch_kwargs
    from workbench.ui.demo_study import ensure_demo_studies
    from workbench.ui.lazy_editor import BackgroundEditor

    settings = AppSettings(
        host=args.host, port=args.port, db_url=args.db, model=args.model, data_dir=Path(args.data_dir),
        demo_study=not args.no_demo,
    )  # fmt: skip
    if not settings.admin_password and not settings.on_space:
        # Local run without a configured password: a one-off password, printed for the person who started it.
        settings.admin_password = secrets.token_urlsafe(9)
        print(f"Admin/curator password for this run: {settings.admin_password}", flush=True)
    wb = Workbench(db_url=args.db, data_dir=settings.data_dir)
    wb.init()
    samples = nano_samples() if settings.demo_study else []
    if settings.demo_study:
        from workbench.arena.demo import ensure_demo_arena

        ensure_demo_arena(wb)
    settings.examples = save_examples(settings.data_dir / "examples")
    settings.edit_settings = read_edit_settings(args.model)  # from the model's files: the weights load later

    def seed_demo(editor) -> None:
        if settings.demo_study:
            # After the editor, so that start-up is not slowed by loading the arena's models as well.
            from workbench.arena.demo import warm_demo_arena

            warm_demo_arena()
        if samples:
            ensure_demo_studies(wb, editor, samples, marker=settings.data_dir / ".demo-studies-done")
            print(
                f"Demo studies ready after {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True
            )

    def load_editor():  # torch, diffusers and transformers are imported here, not before the server starts
        from model.loading import load_editor

        return load_editor(args.model)

    if os.environ.get("SPACES_ZERO_GPU"):
        # ZeroGPU packs the model's CUDA tensors at the first launch(): load it before launching.
        editor = load_editor()
        seed_demo(editor)
    else:
        editor = BackgroundEditor(load_editor, after_load=seed_demo)
    demo = build_demo(settings, editor, wb)
    demo.queue(default_concurrency_limit=8, max_size=256)
    demo.launch(prevent_thread_lock=True, **launch_kwargs(settings))
    wall, cpu = time.perf_counter() - started, time.process_time()
    print(
        f"Serving after {wall:.1f} s wall, {cpu:.1f} s CPU (model loading continues)",
        file=sys.stderr,
        flush=True,
    )
    demo.block_thread()


if __name__ == "__main__":
    main()
