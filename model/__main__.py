"""`python -m model ...`: edit one image or a folder, inspect checkpoints, and the nano-model tools.

python -m model edit --image IN --instruction TEXT --out OUT.png [--model PATH_OR_ID] [--steps N]
                     [--cfg X] [--seed S] [--size-level L]
python -m model edit --json PROMPTS.json --input-dir DIR --output-dir OUT   # batch, resumable
python -m model inspect CHECKPOINT.safetensors
python -m model nano-data | train | eval-nano ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from model.image_input import TRANSPARENCY_MODES, ImageInputError
from model.inspection import register_cli as register_inspect
from model.nano.cli import register as register_nano

# The official batch script's default seed (inference.py --seed 42), so batch runs are reproducible.
BATCH_DEFAULT_SEED = 42


def register_edit(subparsers) -> None:
    """Add `edit` (one image, or a JSON {image_file: instruction} batch like the official inference.py)."""
    edit = subparsers.add_parser(
        "edit",
        help="edit one image, or a folder of images listed in a JSON file",
        description="Single edit: --image --instruction --out. Batch: --json --input-dir --output-dir; "
        "finished outputs are skipped, so an interrupted batch resumes where it stopped.",
    )
    single = edit.add_argument_group("single edit")
    single.add_argument("--image", type=Path, help="input image")
    single.add_argument("--instruction", help="the edit instruction (any language)")
    single.add_argument("--out", type=Path, help="output image file")
    batch = edit.add_argument_group("batch")
    batch.add_argument("--json", type=Path, dest="json_path", help='JSON {"image_file": "instruction", ...}')
    batch.add_argument("--input-dir", type=Path, help="folder holding the JSON's image files")
    batch.add_argument("--output-dir", type=Path, help="folder for the outputs (same file names)")
    options = edit.add_argument_group("model and sampling")
    options.add_argument(
        "--model", default=None, help="model folder or Hub id (default: the embedded nano model)"
    )
    options.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    options.add_argument(
        "--steps", type=int, default=None, help="Euler steps (default: the model's; official 28, nano 1)"
    )
    options.add_argument(
        "--cfg",
        type=float,
        default=None,
        help="CFG scale (default: the model's; official 6.0); -1 = off; ignored by models without CFG",
    )
    options.add_argument("--seed", type=int, default=None, help="seed (default: random; batch: 42)")
    options.add_argument(
        "--size-level",
        type=int,
        default=None,
        help="side of the square of equal area (default: the model's; official 512, also 768 and 1024)",
    )
    options.add_argument("--negative-prompt", default="", help='unconditional instruction (official "")')
    options.add_argument(
        "--timesteps-truncate",
        type=float,
        default=None,
        help="CFG rescale cut-off (default: the checkpoint's version: v1.0 1.0, v1.1 0.93)",
    )
    options.add_argument(
        "--transparency",
        choices=TRANSPARENCY_MODES,
        default="white",
        help="transparent pixels: composite onto white, or drop alpha as the official code does",
    )
    options.add_argument("--offload-text-encoder", action="store_true", help="Qwen on the GPU only to encode")
    options.add_argument("--compile", action="store_true", help="torch.compile the DiT (regional)")
    options.add_argument("--fp8", action="store_true", help="FP8 weight-only DiT (CUDA + torchao)")
    edit.set_defaults(func=run_edit)


class ModelLoadError(RuntimeError):
    """The requested model could not be loaded (message says why)."""


def _load(args: argparse.Namespace):
    from model.loading import load_editor

    try:
        pipe = load_editor(args.model, device=args.device)
    except (OSError, ValueError) as exc:  # missing folder, offline Hub, wrong format, mismatched keys
        raise ModelLoadError(f"cannot load model {args.model!r}: {exc}") from exc
    if args.offload_text_encoder:
        pipe.enable_text_encoder_offload()
    if args.compile:
        pipe.enable_transformer_compile()
    if args.fp8:
        pipe.enable_fp8_weights()
    return pipe


def _edit_kwargs(args: argparse.Namespace, pipe, seed: int | None) -> dict:
    """The given options, the model's declared defaults (model.edit_settings) for the rest."""
    from model.edit_settings import settings_of

    sampling = settings_of(pipe).pipeline_kwargs(
        args.steps, args.cfg, args.size_level, args.timesteps_truncate
    )
    return dict(negative_prompt=args.negative_prompt, seed=seed, transparency=args.transparency, **sampling)


def _save_atomically(image, out: Path) -> None:
    """Write next to the target, then rename: an interrupted run never leaves a half-written 'finished' file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    image.save(partial, format=image.format or None, lossless=True)
    os.replace(partial, out)


def run_edit(args: argparse.Namespace) -> int:
    single = (args.image, args.instruction, args.out)
    batch = (args.json_path, args.input_dir, args.output_dir)
    try:
        if all(v is not None for v in single) and not any(v is not None for v in batch):
            return _run_single(args)
        if all(v is not None for v in batch) and not any(v is not None for v in single):
            return _run_batch(args)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "error: give either --image, --instruction and --out, or --json, --input-dir and --output-dir",
        file=sys.stderr,
    )
    return 2


def _run_single(args: argparse.Namespace) -> int:
    pipe = _load(args)
    try:
        out = pipe(args.image, args.instruction, **_edit_kwargs(args, pipe, args.seed))
    except (ImageInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _save_atomically(out.images[0], args.out)
    print(f"{args.out} (model {pipe.name}, seed {out.seed})")
    return 0


def read_batch(json_path: Path) -> dict[str, str]:
    """The official batch file: a JSON object mapping image file names to instructions."""
    try:
        jobs = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {json_path}: {exc}") from exc
    if not isinstance(jobs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in jobs.items()
    ):
        raise ValueError(f"{json_path} must be a JSON object {{image_file: instruction}}")
    return jobs


def _run_batch(args: argparse.Namespace) -> int:
    try:
        jobs = read_batch(args.json_path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    todo = {name: text for name, text in jobs.items() if not (args.output_dir / name).is_file()}
    print(f"{len(jobs) - len(todo)} of {len(jobs)} already done; {len(todo)} to edit")
    if not todo:
        return 0
    pipe = _load(args)
    pipe.set_progress_bar_config(disable=True)
    seed = BATCH_DEFAULT_SEED if args.seed is None else args.seed
    failures, seconds = [], []
    for name, instruction in tqdm(todo.items(), desc="editing", unit="image"):
        start = time.perf_counter()
        try:
            out = pipe(args.input_dir / name, instruction, **_edit_kwargs(args, pipe, seed))
        except (ImageInputError, ValueError) as exc:
            failures.append(name)
            tqdm.write(f"skipped {name}: {exc}")
            continue
        _save_atomically(out.images[0], args.output_dir / name)
        seconds.append(time.perf_counter() - start)
    if len(seconds) > 1:  # like the official script: the first edit includes warm-up
        print(f"average {sum(seconds[1:]) / len(seconds[1:]):.2f} s per edit (excluding the first)")
    if failures:
        print(f"{len(failures)} failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


# Each registrar adds its subcommands; every parser sets `func(args) -> exit status`.
REGISTRARS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    register_edit,
    register_inspect,
    register_nano,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description="Step1X-Edit model tools.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for registrar in REGISTRARS:
        registrar(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
