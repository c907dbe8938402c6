"""Package a trained nano run as a shipped model: pipeline files, training record, loss curve, held-out
evaluation, the fixed reproduction subset and the model card, all in one diffusers-layout folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from model.nano.card import EVAL_FILE, EXAMPLES_PNG, FAILURES_PNG, TRAIN_FILE, write_model_card
from model.nano.evaluate import EVAL_SEED, SUBSET_FILE, evaluate, heldout_triplets, rephrased, subset_rows
from model.nano.gallery import contact_sheet, edit_all
from model.nano.grammar import VARIANTS
from model.nano.train import LOSS_CSV, LOSS_PNG, SUMMARY

FAILURE_PICTURES = 8


def ship(
    run_dir: str | Path,
    out_dir: str | Path,
    per_category: int = 20,
    notes: str = "",
    eval_seed: int | None = None,
) -> dict:
    """Copy `<run_dir>/model` to `out_dir`, evaluate it there and write the card; returns the summary."""
    from model.pipeline import Step1XEditPipeline

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    source = run_dir / "model"
    if not (source / "model_index.json").is_file():
        raise FileNotFoundError(f"{source} holds no saved pipeline (model_index.json); train first")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(source, out_dir)
    shutil.copy(run_dir / SUMMARY, out_dir / TRAIN_FILE)
    for name in (LOSS_CSV, LOSS_PNG):
        shutil.copy(run_dir / name, out_dir / name)
    pipe = Step1XEditPipeline.from_pretrained(str(out_dir))
    pipe.set_progress_bar_config(disable=True)
    result = evaluate(
        pipe, per_category=per_category, eval_seed=EVAL_SEED if eval_seed is None else eval_seed
    )
    result["eval_seed"] = EVAL_SEED if eval_seed is None else eval_seed
    (out_dir / EVAL_FILE).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    rows = subset_rows(pipe)
    (out_dir / SUBSET_FILE).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    write_pictures(pipe, out_dir)
    write_model_card(out_dir, notes)
    return result["summary"]


def write_pictures(pipe, out_dir: Path) -> None:
    """examples.png: one held-out-frame edit per category; failures.png: the first misses among the
    English variant rows (Chinese is left out: the bundled font has no CJK glyphs)."""
    triplets = heldout_triplets(1, seed=EVAL_SEED + 1)
    contact_sheet(edit_all(pipe, rephrased(triplets, "en/heldout_frames")), out_dir / EXAMPLES_PNG)
    pool = heldout_triplets(4, seed=EVAL_SEED + 2)
    misses = []
    for variant in VARIANTS:
        misses += [r for r in edit_all(pipe, rephrased(pool, f"en/{variant}")) if not r[2].success]
    if misses:
        contact_sheet(misses[:FAILURE_PICTURES], out_dir / FAILURES_PNG)
