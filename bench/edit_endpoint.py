"""The Edit tab's `/edit` endpoint with its default settings on fresh toy-world edits, end to end.

Starts `python app.py` (the embedded nano model, SQLite, no demo studies) as a child process and calls
`/edit` through gradio_client with only the image and the instruction, so every sampling setting is the
endpoint's own default (the model's declared settings). The edits are held-out triplets (the world's "eval"
split, never trained on) from a stream neither the training export nor `eval-nano` draws (BENCH_SEED),
`--per-category` of every category, English and Chinese as the world mixes them, each in a fresh session.
Each output is scored with `model.nano.checks.check_edit`; the time is the client's wall time per call
(upload, queue, edit, download of the outputs).
The overall success is compared with what `eval-nano` recorded for the shipped model (its eval.json).

    .venv/bin/python bench/edit_endpoint.py [--per-category 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app_transport import AppServer  # noqa: E402
from PIL import Image  # noqa: E402

from bench._machine import machine_line  # noqa: E402
from model.edit_settings import DEFAULT_MODEL_DIR  # noqa: E402
from model.nano.checks import check_edit  # noqa: E402
from model.nano.world import CATEGORIES, Triplet, make_triplet  # noqa: E402

BENCH_SEED = 90_210  # neither the training export nor eval-nano (EVAL_SEED) draws this stream
TARGET_MEDIAN_S = 2.0
TARGET_GAP = 0.10  # success within 10 points of eval-nano's


def fresh_triplets(per_category: int) -> list[Triplet]:
    return [
        make_triplet(BENCH_SEED + c, i, categories=(category,), split="eval")
        for c, category in enumerate(CATEGORIES)
        for i in range(per_category)
    ]


def run(url: str, triplets: list[Triplet], folder: Path) -> list[dict]:
    """One `/edit` call per triplet with only (image, instruction), each in a fresh session (a new visitor:
    the history starts empty); one result row each."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=str(folder / "downloads"))
    warm = folder / "warm.png"
    triplets[0].source.save(warm)
    client.predict(handle_file(str(warm)), triplets[0].instruction, api_name="/edit")  # waits for the model
    rows = []
    for i, triplet in enumerate(triplets):
        source = folder / f"source-{i}.png"
        triplet.source.save(source)
        client.reset_session()
        started = time.perf_counter()
        (_, after), _, seed, *_ = client.predict(
            handle_file(str(source)), triplet.instruction, api_name="/edit"
        )
        seconds = time.perf_counter() - started
        result = check_edit(triplet, Image.open(after))
        rows.append(
            {"category": triplet.category, "language": triplet.language, "instruction": triplet.instruction,
             "success": result.success, "reason": result.reason, "seconds": round(seconds, 4), "seed": seed}
        )  # fmt: skip
    return rows


def report(rows: list[dict]) -> dict:
    groups = defaultdict(list)
    for row in rows:
        groups[row["category"]].append(row["success"])
        groups[row["language"]].append(row["success"])
    seconds = sorted(row["seconds"] for row in rows)
    recorded = json.loads((DEFAULT_MODEL_DIR / "eval.json").read_text(encoding="utf-8"))["summary"]["overall"]
    overall = sum(row["success"] for row in rows) / len(rows)
    return {
        "n": len(rows),
        "success": round(overall, 4),
        "eval_nano_success": recorded["success"],
        "groups": {name: round(sum(v) / len(v), 3) for name, v in sorted(groups.items())},
        "median_s": round(statistics.median(seconds), 3),
        "p90_s": round(seconds[int(0.9 * (len(seconds) - 1))], 3),
        "success_target_met": abs(overall - recorded["success"]) <= TARGET_GAP,
        "median_target_met": statistics.median(seconds) <= TARGET_MEDIAN_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the summary and every row here")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Every edit comes from this one client: lift the per-client edit limit for the run.
        env = {"STUDIO_EDITS_PER_10_MIN": str(10 * len(CATEGORIES) * args.per_category)}
        server = AppServer(f"sqlite:///{folder}/wb.db", folder / "data", folder / "app.log", env=env)
        server.start()
        try:
            rows = run(server.url, fresh_triplets(args.per_category), folder)
        finally:
            server.stop()
    summary = report(rows)
    for name, rate in summary["groups"].items():
        print(f"  {name:<12}{rate:>7.0%}")
    print(
        f"success {summary['success']:.1%} over {summary['n']} edits (eval-nano recorded "
        f"{summary['eval_nano_success']:.1%}; within 10 points: {summary['success_target_met']}); "
        f"median {summary['median_s']:.2f} s, p90 {summary['p90_s']:.2f} s per edit end to end "
        f"(target <= {TARGET_MEDIAN_S:.0f} s: {summary['median_target_met']})"
    )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
