"""The GPU benchmark in one command on a machine without network (and without diffusers).

The target machine has Python 3.12 with torch 2.11 and transformers 5.17 but no diffusers and no torchao, and
it cannot download anything. So the wheels the benchmark needs are downloaded here, into the git-ignored
``.gpu-wheels/``, travel with the checkout, and are installed there into a private folder that is put first on
``PYTHONPATH`` (nothing of the machine's own installation is changed):

    python bench/gpu_bundle.py fetch                  # here, online: the wheels into .gpu-wheels/
    python3 bench/gpu_bundle.py run                    # there: install them, print the benchmark table
    python bench/gpu_bundle.py run --tiny              # here: the same recipe on the tiny model (CPU)

``run`` passes anything after ``--`` on to ``bench/pipeline_gpu.py`` (default: base, offload, compile and fp8 at
size levels 512 / 768 / 1024, each beside the official H800 figures, each option's PSNR against base). The
wheels are the project's own pins (``pyproject.toml``): diffusers and transformers as tested here (transformers
shadows the machine's older one), torchao for fp8, and importlib_metadata, which diffusers needs and the
machine lacks. Binary wheels are chosen for CPython 3.12 on x86-64 Linux.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".gpu-wheels"
# Pinned in pyproject.toml (dependencies and the gpu extra); read from there so the pins live in one place.
PINNED = ("diffusers", "transformers", "torchao")
# Not pinned by the project (a dependency of diffusers); the version this project is tested with.
EXTRA = ("importlib_metadata==10.2.0",)
TARGET_PYTHON = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
DEFAULT_BENCH_ARGS = ("--configs", "base", "offload", "compile", "fp8", "--sizes", "512", "768", "1024")
# compile is left out on the CPU: inductor needs minutes there even for the tiny model.
TINY_BENCH_ARGS = ("--configs", "base", "offload", "fp8", "--steps", "2", "--warmup-steps", "0")


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==version`` for every wheel the GPU machine lacks, from the project's own pins."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["gpu"]]
    pins = {}
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", spec.strip())
        if match:
            pins[match[1].lower()] = spec.strip()
    missing = [name for name in PINNED if name not in pins]
    if missing:
        raise SystemExit(f"pyproject.toml pins no exact version of {missing}")
    return [pins[name] for name in PINNED] + list(EXTRA)


def download_command(requirements: Sequence[str], dest: Path) -> list[str]:
    """pip download of exactly these wheels (no dependencies) for the GPU machine's Python and platform."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        TARGET_PYTHON,
        "--implementation",
        "cp",
        *platforms,
        "--dest",
        str(dest),
        *requirements,
    ]


def install_command(wheels: Sequence[Path], site: Path) -> list[str]:
    """pip install of the carried wheels into ``site``, offline, leaving the machine's packages alone."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        str(site),
        *map(str, wheels),
    ]


def fetch(args: argparse.Namespace) -> int:
    dest = Path(args.wheels)
    command = download_command(pinned_requirements(), dest)
    if args.dry_run:
        print(" ".join(command))
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, check=False)
    if result.returncode == 0:
        print(f"wheels in {dest}: {', '.join(sorted(p.name for p in dest.glob('*.whl')))}")
    return result.returncode


def installed(site: Path) -> list[str]:
    """``name version`` of every distribution in ``site``."""
    names = (p.name.removesuffix(".dist-info").rsplit("-", 1) for p in site.glob("*.dist-info"))
    return sorted(f"{name} {version}" for name, version in names)


def run(args: argparse.Namespace) -> int:
    wheels = sorted(Path(args.wheels).glob("*.whl"))
    if not wheels:
        raise SystemExit(
            f"no wheels in {args.wheels}: run `python bench/gpu_bundle.py fetch` where pip is online"
        )
    site = Path(args.site or tempfile.mkdtemp(prefix="gpu-site-"))
    subprocess.run(install_command(wheels, site), check=True)
    print("carried:", ", ".join(installed(site)), flush=True)
    bench_args = list(args.bench_args) or list(TINY_BENCH_ARGS if args.tiny else DEFAULT_BENCH_ARGS)
    if args.tiny:
        bench_args = ["--tiny", *bench_args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pipeline_gpu.py"), *bench_args], env=env
    ).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download the wheels the GPU machine lacks (needs pip online)")
    get.add_argument("--wheels", default=str(WHEELS), help="where to put them (default .gpu-wheels/)")
    get.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    get.set_defaults(func=fetch)
    go = sub.add_parser("run", help="install the carried wheels into a private folder and run the benchmark")
    go.add_argument("--wheels", default=str(WHEELS))
    go.add_argument("--site", default=None, help="install folder (default: a fresh temporary one)")
    go.add_argument("--tiny", action="store_true", help="the tiny model on the CPU: tests the recipe here")
    go.add_argument("bench_args", nargs="*", help="after --: arguments for bench/pipeline_gpu.py")
    go.set_defaults(func=run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
