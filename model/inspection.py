"""``python -m model inspect``: header-only checks of checkpoint files and model folders.

It sits above the pieces it reports on: :mod:`model.checkpoints` (headers, formats, key comparison),
:mod:`model.lora` (kohya LoRA files against the DiT) and :mod:`model.weights` (model folders as the loader sees
them). Nothing is read beyond the safetensors headers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.checkpoints import (
    KOHYA_LORA,
    CheckpointFormatError,
    CompatibilityReport,
    check_header,
    detect_format,
    header_report,
    read_headers,
    safetensors_files,
)
from model.lora import lora_report
from model.weights import OFFICIAL_DIT_FILES, OFFICIAL_VAE_FILE, check_component, diffusers_components


def inspect_checkpoint(path: str | Path) -> CompatibilityReport:
    """Header-only report of a checkpoint file (or a folder of shards) against the full-size model definition;
    a kohya LoRA is reported against the DiT it would patch."""
    header = read_headers(safetensors_files(path))
    if detect_format(header.tensors) != KOHYA_LORA:
        return check_header(str(path), header)
    report = header_report(str(path), header)
    report.missing, report.unexpected, report.mis_shaped = lora_report(header.tensors)
    return report


def inspect_model_folder(folder: str | Path) -> list[CompatibilityReport] | None:
    """Header-only reports for every weight file of a model folder; ``None`` if it is not a model folder.

    Official layout: each DiT file and the VAE against the full-size model. Diffusers layout: each component
    against the model its own ``config.json`` defines (so small models such as the nano model check out).
    """
    folder = Path(folder)
    official = [
        folder / name for name in (*OFFICIAL_DIT_FILES, OFFICIAL_VAE_FILE) if (folder / name).is_file()
    ]
    if any(path.name in OFFICIAL_DIT_FILES for path in official):
        return [inspect_checkpoint(path) for path in official]
    if (folder / "transformer").is_dir():
        return [check_component(specs, files)[1] for specs, files in diffusers_components(folder).values()]
    return None


def inspect_path(path: str | Path) -> list[CompatibilityReport]:
    """Reports for a file, a folder of shards, or every component of a model folder (official or diffusers)."""
    reports = inspect_model_folder(path) if Path(path).is_dir() else None
    return reports if reports is not None else [inspect_checkpoint(path)]


def passes(report: CompatibilityReport, strict: bool) -> bool:
    """Compatible, and with ``strict`` also free of tensors stored in another dtype than the file's own."""
    return report.compatible and not (strict and report.dtype_outliers)


def run_inspect(args: argparse.Namespace) -> int:
    """``inspect`` subcommand: print the report(s); exit 0 only when everything is fully compatible (and, with
    ``--strict``, stored in one dtype)."""
    try:
        reports = inspect_path(args.checkpoint)
    except (CheckpointFormatError, FileNotFoundError) as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"error: {exc}")
        return 2
    strict = getattr(args, "strict", False)
    compatible = all(report.compatible for report in reports)
    ok = all(passes(report, strict) for report in reports)
    if args.json:
        payload = reports[0].to_dict() if len(reports) == 1 else {"reports": [r.to_dict() for r in reports]}
        print(json.dumps(payload | {"compatible": compatible, "passed": ok}, indent=2))
    else:
        print("\n\n".join(report.to_text() for report in reports))
        if compatible and not ok:
            print("strict: FAILED (tensors stored in another dtype than the file's own)")
    return 0 if ok else 1


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``inspect`` to the ``python -m model`` command line."""
    parser = subparsers.add_parser(
        "inspect",
        help="check a checkpoint's keys, shapes and dtypes against the model (reads only the safetensors header)",
        description="Report format (official v1.0/v1.1, diffusers, VAE, LoRA), tensor and parameter counts, "
        "dtypes (and every tensor stored in another dtype than the file's own) and every missing/unexpected/"
        "mis-shaped key, in the file's own naming, against the full-size Step1X-Edit definition. Exit status: "
        "0 compatible, 1 incompatible (or, with --strict, mixed dtypes), 2 unreadable.",
    )
    parser.add_argument(
        "checkpoint",
        help="a .safetensors file, a folder of shards (e.g. transformer/), or a whole model folder "
        "(official: each DiT file + vae.safetensors vs the full-size model; diffusers: each component vs its "
        "config.json)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also fail (exit 1) when a tensor is stored in another dtype than the file's own "
        "(the connector tensors the official module keeps in fp32 are allowed)",
    )
    parser.set_defaults(func=run_inspect)
