"""Judge-cache check: judging the same outputs twice must cost (almost) nothing the second time.

Builds a mini GEdit bench, writes identity "edits" (the source image), then judges them twice with a tiny
random Qwen2.5-VL through the real transformers path. Prints cold vs warm wall time, the number of real
generate calls in each pass and the ratio. No downloads; CPU is enough.

    OMP_NUM_THREADS=1 .venv/bin/python bench/gedit_judge_cache.py [--per-type 1] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from model.tiny import tiny_processor, tiny_text_encoder
from workbench.gedit.dataset import filter_samples, load_bench, write_synthetic_bench
from workbench.gedit.judge import JudgeCache, QwenVLJudge, judge_run
from workbench.gedit.run import output_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gedit-cache-"))
    samples = filter_samples(load_bench(write_synthetic_bench(work / "bench.parquet", args.per_type)), ["en"])
    for sample in samples:  # identity editor: the output is the source
        target = output_path(work / "results", "identity", sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        sample.source_image().save(target)

    processor = tiny_processor()
    torch.manual_seed(0)
    tiny_text_encoder(processor.tokenizer).save_pretrained(work / "judge")
    processor.save_pretrained(work / "judge")
    judge = QwenVLJudge.load(
        str(work / "judge"), device="cpu", dtype="float32", max_new_tokens=args.max_new_tokens
    )
    cache = JudgeCache(work / "cache")

    timings = []
    for _ in range(2):
        started = time.perf_counter()
        manifest = judge_run(
            judge, samples, work / "results", "identity", work / "scores", cache, progress=False
        )
        timings.append((time.perf_counter() - started, manifest["cache"]))
    (cold, cold_cache), (warm, warm_cache) = timings
    print(f"samples judged: {len(samples)} (2 questions each, up to 2 attempts)")
    print(f"cold pass: {cold:.2f} s, generate calls {cold_cache['misses']}, cache hits {cold_cache['hits']}")
    print(f"warm pass: {warm:.2f} s, generate calls {warm_cache['misses']}, cache hits {warm_cache['hits']}")
    print(f"warm/cold time ratio: {warm / cold:.3f}")


if __name__ == "__main__":
    main()
