"""CPU benchmark of the tiny random pipeline: seconds per denoising step, encode/decode time, peak RSS.

Each configuration runs in its own child process (so peak RSS is its own), with the same seeded weights
and inputs; after a warm-up edit (which includes torch.compile's compilation) one timed edit is measured.
Ratios are against the first configuration, all measured in this one run; the output column is the PSNR
of the 8-bit result against the first configuration (inf = identical), i.e. the option's effect on output.

    python bench/pipeline_cpu.py                       # eager, no-cfg, compile
    python bench/pipeline_cpu.py --configs eager compile --steps 8 --size-level 96 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "eager": {},
    "no-cfg": {"guidance_scale": -1},  # one forward per step instead of the batched [cond, uncond]
    "compile": {"compile": True},  # regional torch.compile of the FLUX blocks (inductor, needs a C compiler)
    "v1.0-release": {"timesteps_truncate": 1.0},
}


def run_child(name: str, steps: int, size_level: int, threads: int, out_png: Path) -> dict:
    """Build, warm up, then time one edit; report timings and this process's peak RSS."""
    import numpy as np
    import torch
    from PIL import Image

    from model.tiny import tiny_pipeline

    torch.set_num_threads(threads)
    options = dict(CONFIGS[name])
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    if options.pop("compile", False):
        pipe.enable_transformer_compile()
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (3 * size_level // 4, size_level, 3), dtype=np.uint8))
    kwargs = dict(num_inference_steps=steps, size_level=size_level, seed=0, **options)

    start = time.perf_counter()
    pipe(photo, "make the car red", **kwargs)
    warmup = time.perf_counter() - start

    stamps: list[float] = []

    def stamp(pipe, step, timestep, tensors):  # diffusers' step-end contract
        stamps.append(time.perf_counter())
        return tensors

    start = time.perf_counter()
    out = pipe(photo, "make the car red", callback_on_step_end=stamp, **kwargs)
    total = time.perf_counter() - start
    out.images[0].save(out_png)
    step_times = np.diff([start, *stamps])
    return {
        "config": name,
        "warmup_s": warmup,
        "total_s": total,
        "step_s": float(np.median(step_times[1:])),  # the first step also includes encoding
        "encode_plus_first_step_s": float(step_times[0]),
        "decode_s": total - (stamps[-1] - start),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def psnr(a: Path, b: Path) -> float:
    import numpy as np
    from PIL import Image

    x, y = (np.asarray(Image.open(p), dtype=np.float64) for p in (a, b))
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs", nargs="+", choices=sorted(CONFIGS), default=["eager", "no-cfg", "compile"]
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size-level", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="where the output images go (default: a temp dir)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="pipeline_cpu_"))
    args.out_dir.mkdir(parents=True, exist_ok=True)

    if args.child:
        result = run_child(
            args.child, args.steps, args.size_level, args.threads, args.out_dir / f"{args.child}.png"
        )
        print(json.dumps(result))
        return 0

    results = []
    for name in args.configs:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps)]
        cmd += [
            "--size-level",
            str(args.size_level),
            "--threads",
            str(args.threads),
            "--out-dir",
            str(args.out_dir),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if not results:
        return 1

    base = results[0]
    print(
        f"tiny pipeline, {args.steps} steps, size level {args.size_level}, {args.threads} thread(s); ratios vs {base['config']}"
    )
    header = f"{'config':<14}{'s/step':>9}{'ratio':>7}{'total s':>9}{'ratio':>7}{'warm-up s':>11}{'peak RSS MB':>13}{'PSNR dB':>9}"
    print(header)
    for r in results:
        quality = psnr(args.out_dir / f"{base['config']}.png", args.out_dir / f"{r['config']}.png")
        print(
            f"{r['config']:<14}{r['step_s']:>9.4f}{r['step_s'] / base['step_s']:>7.2f}{r['total_s']:>9.3f}"
            f"{r['total_s'] / base['total_s']:>7.2f}{r['warmup_s']:>11.2f}{r['peak_rss_mb']:>13.0f}{quality:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
