"""`python -m model nano-data | train | eval-nano | nano-ship`: the nano data loop, training, evaluation.

`model/__main__.py` calls `register(subparsers)`. The workbench is imported lazily (only for
`nano-data --push-study`), so `model/` keeps no import-time dependency on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.nano.grammar import VARIANTS
from model.nano.world import CATEGORIES


def _categories(value: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in value.split(",") if c.strip())
    unknown = [c for c in names if c not in CATEGORIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown categories {unknown}; choose from {', '.join(CATEGORIES)}")
    return names


def _variants(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return names


def register(subparsers) -> None:
    """Add the nano subcommands to an argparse subparsers object."""
    data = subparsers.add_parser(
        "nano-data", help="generate + filter synthetic edit triplets (metadata.json)"
    )
    data.add_argument("out", type=Path, help="output folder (images/, metadata.json, rejected.json)")
    data.add_argument("--count", type=int, default=1000)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--split", choices=("train", "eval"), default="train")
    data.add_argument("--categories", type=_categories, default=CATEGORIES)
    data.add_argument("--zh-fraction", type=float, default=0.3, help="share of Chinese instructions")
    data.add_argument("--push-study", metavar="NAME", help="also queue every triplet in this curation study")
    data.add_argument("--db", default=None, help="workbench database URL (default: the workbench's)")
    data.add_argument("--data-dir", default="data", help="workbench data folder")
    data.set_defaults(func=_cmd_data)

    train = subparsers.add_parser("train", help="train the nano model on a metadata.json (CPU)")
    train.add_argument("data", type=Path, help="metadata.json in the official fine-tuning format")
    train.add_argument("--run-dir", type=Path, default=Path("runs/nano"), help="checkpoints + loss curve")
    train.add_argument(
        "--out", type=Path, default=None, help="save the trained pipeline here (diffusers layout)"
    )
    train.add_argument("--steps", type=int, default=6000)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1.5e-3)
    train.add_argument(
        "--changed-weight", type=float, default=0.0, help="extra loss weight on pixels the edit changes"
    )
    train.add_argument(
        "--category-weight",
        action="append",
        default=[],
        metavar="CATEGORY=W",
        help="draw this category W times as often (repeatable), e.g. text=2",
    )
    train.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this wall time")
    train.add_argument(
        "--init-from", default=None, help="warm start from a saved model (tensors whose shapes match)"
    )
    train.add_argument(
        "--no-rephrase",
        action="store_true",
        help="train on the recorded captions only (no grammar phrasings)",
    )
    train.add_argument("--typo-prob", type=float, default=0.3, help="chance of each typo in a phrasing")
    train.add_argument(
        "--unknown-prob",
        type=float,
        default=0.3,
        help="chance of each unknown word inserted into a phrasing (teaches the model to ignore them)",
    )
    train.add_argument(
        "--zh-fraction", type=float, default=0.35, help="share of Chinese phrasings when rephrasing"
    )
    train.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_cmd_train)

    ev = subparsers.add_parser("eval-nano", help="held-out success / PSNR / seconds per edit of a nano model")
    which = ev.add_mutually_exclusive_group()
    which.add_argument("--model", default=None, help="model folder (default: assets/step1x-edit-nano)")
    which.add_argument(
        "--checkpoint", type=Path, default=None, help="a training checkpoint.pt (its EMA weights), mid-run"
    )
    ev.add_argument("--per-category", type=int, default=20)
    ev.add_argument("--categories", type=_categories, default=CATEGORIES)
    ev.add_argument(
        "--eval-seed", type=int, default=None, help="draw other held-out edits (default: the shipped seed)"
    )
    ev.add_argument(
        "--variants",
        type=_variants,
        default=VARIANTS,
        help=f"comma-separated phrasing variants to add as rows (default all: {','.join(VARIANTS)}; '' none)",
    )
    ev.add_argument("--threads", type=int, default=1, help="torch threads (small models: 1 is fastest)")
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")
    ev.add_argument(
        "--rows", type=Path, default=None, help="also write every edit's result to this JSON file"
    )
    ev.set_defaults(func=_cmd_eval)

    ship = subparsers.add_parser("nano-ship", help="package a trained run: eval, subset record, model card")
    ship.add_argument("run_dir", type=Path, help="training run folder (holds model/, loss.csv, ...)")
    ship.add_argument("--out", type=Path, default=None, help="default: assets/step1x-edit-nano")
    ship.add_argument("--per-category", type=int, default=20)
    ship.add_argument(
        "--eval-seed", type=int, default=None, help="held-out edits to evaluate (default: fixed)"
    )
    ship.add_argument("--threads", type=int, default=1)
    ship.add_argument("--notes", default="", help="extra text for the model card's Notes section")
    ship.set_defaults(func=_cmd_ship)


def _cmd_ship(args: argparse.Namespace) -> int:
    import torch

    from model.loading import DEFAULT_MODEL_DIR
    from model.nano.evaluate import format_table
    from model.nano.ship import ship

    torch.set_num_threads(args.threads)
    out = args.out or DEFAULT_MODEL_DIR
    summary = ship(
        args.run_dir, out, per_category=args.per_category, notes=args.notes, eval_seed=args.eval_seed
    )
    print(f"shipped to {out}")
    print(format_table(summary))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from model.nano.data import METADATA, REJECTED, export_world

    counts = export_world(
        args.out,
        args.count,
        seed=args.seed,
        split=args.split,
        categories=args.categories,
        zh_fraction=args.zh_fraction,
    )
    print(f"{counts['accepted']} accepted, {counts['rejected']} rejected -> {args.out / METADATA}")
    if args.push_study:
        pushed = push_to_curation(
            [args.out / METADATA, args.out / REJECTED], args.push_study, args.db, args.data_dir
        )
        print(f"queued {pushed} new candidates in curation study {args.push_study!r}")
    return 0


def push_to_curation(metadata_files: list[Path], study: str, db_url: str | None, data_dir: str) -> int:
    """Queue every triplet of the metadata files as a curation candidate (with its filter verdict).

    The candidate key is the target path, so pushing the same export twice adds nothing new.
    Returns the number of newly queued candidates.
    """
    from model.nano.data import read_metadata
    from workbench.service import Workbench  # lazy: model/ must not need the workbench to import

    wb = Workbench(db_url=db_url, data_dir=data_dir)
    wb.init()
    if study not in {s["name"] for s in wb.list_studies()}:
        wb.create_study(study, kind="curation", k=1)
    pushed = 0
    for path in metadata_files:
        if not Path(path).is_file():
            continue
        for record in read_metadata(path):
            source, target = record.load()
            try:
                wb.add_candidate(
                    study,
                    source,
                    record.caption,
                    target,
                    filter_score=record.extra.get("filter_score"),
                    filter_reason=record.extra.get("filter_reason"),
                    category=record.extra.get("category"),
                    language=record.extra.get("language", "en"),
                    metadata={"target_path": str(record.target_path)},
                    key=str(record.target_path),
                )
            except ValueError as exc:
                if "duplicate candidate key" not in str(exc):
                    raise
                continue  # queued by an earlier push
            pushed += 1
    return pushed


def _category_weights(items: list[str]) -> dict[str, float]:
    """["text=2", ...] -> {"text": 2.0}; unknown categories and bad numbers are usage errors."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in CATEGORIES:
            raise SystemExit(f"--category-weight: unknown category {name!r} (known: {', '.join(CATEGORIES)})")
        try:
            weights[name] = float(value)
        except ValueError:
            raise SystemExit(f"--category-weight {item!r}: expected CATEGORY=NUMBER") from None
        if weights[name] < 0:
            raise SystemExit(f"--category-weight {item!r}: the weight must be >= 0")
    return weights


def _cmd_train(args: argparse.Namespace) -> int:
    from model.nano.train import TrainConfig, train

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        changed_weight=args.changed_weight,
        category_weights=_category_weights(args.category_weight),
        max_minutes=args.max_minutes,
        threads=args.threads,
        seed=args.seed,
        rephrase=not args.no_rephrase,
        typo_prob=args.typo_prob,
        unknown_prob=args.unknown_prob,
        zh_fraction=args.zh_fraction,
        init_from=args.init_from,
    )
    pipe = train(args.data, args.run_dir, config, progress=not args.no_progress)
    out = args.out or args.run_dir / "model"
    pipe.save_pretrained(out)
    print(f"saved {pipe.name} to {out}; loss curve {args.run_dir / 'loss.png'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from model.loading import load_editor
    from model.nano.evaluate import EVAL_SEED, evaluate, format_table

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        from model.nano.train import pipeline_from_checkpoint

        pipe = pipeline_from_checkpoint(args.checkpoint)
    else:
        pipe = load_editor(args.model)
    pipe.set_progress_bar_config(disable=True)
    result = evaluate(
        pipe,
        per_category=args.per_category,
        categories=args.categories,
        eval_seed=EVAL_SEED if args.eval_seed is None else args.eval_seed,
        variants=args.variants,
    )
    if args.rows:
        args.rows.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        json.dump({"model": pipe.name, **result["summary"]}, sys.stdout, indent=1)
        print()
    else:
        print(f"model: {pipe.name}")
        print(format_table(result["summary"]))
    return 0
