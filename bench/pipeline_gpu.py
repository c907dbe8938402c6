"""GPU benchmark: one full Step1X-Edit edit (28 steps, batched CFG) at size levels 512 / 768 / 1024.

The full-size model (Qwen2.5-VL-7B, 537 M connector, 11.9 B FLUX DiT, FLUX VAE) is built with random weights:
speed and memory do not depend on the values, and no weights can be downloaded here. DiT, connector and VAE
are built on the meta device and materialised directly on the GPU in bf16 (VAE fp32, as official), so no
full-size copy ever exists on the CPU. Qwen is constructed under a CUDA device context (transformers needs
its rotary buffers computed at construction). The tokenizer is the project's local byte-level Qwen stand-in
with the official image budget, so the DiT sees exactly the official token counts (640 text + 2 x image).

Each configuration gets a fresh pipeline with the same seeded random weights. Outputs are compared with the
``base`` configuration at the same seed (PSNR in dB on the 8-bit output image, ``inf`` = identical), which
states each option's effect on the output. Official H800 figures (README) are printed beside the measurements.

    python bench/pipeline_gpu.py                                  # base, offload, offload+compile, offload+fp8
    python bench/pipeline_gpu.py --configs base offload --sizes 1024
    python bench/pipeline_gpu.py --tiny                           # tiny random model on the CPU (smoke test)

Options (comma-joined in ``--configs``): ``offload`` (Qwen leaves the GPU once the prompt is encoded),
``compile`` (regional torch.compile of the DiT blocks), ``fp8`` (torchao float8 weight-only DiT linears),
``flash`` / ``cudnn`` / ``efficient`` / ``math`` (force that PyTorch SDPA kernel; the default ``native``
lets PyTorch choose).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.connector import Step1XEditConnector
from model.encoder import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, prefix_token_count
from model.key_mapping import FLUX_VAE_CONFIG, OFFICIAL_CONNECTOR_CONFIG
from model.pipeline import Step1XEditPipeline

# Official README, one H800, batch 1 with CFG, 28 steps, flash-attn: (seconds, peak GB) per size level. Its
# "offload" moves every module (Qwen, DiT, VAE) on and off the GPU; here `offload` moves Qwen only.
OFFICIAL_H800 = {
    "base": {512: (5.0, 42.5), 768: (11.0, 46.5), 1024: (22.0, 49.8)},
    "fp8": {512: (6.8, 31.0), 768: (13.5, 31.5), 1024: (25.0, 34.0)},
    "offload": {512: (49.6, 25.9), 768: (54.1, 27.3), 1024: (63.2, 29.1)},
    "fp8,offload": {512: (35.0, 18.0), 768: (40.0, 18.0), 1024: (51.0, 18.0)},
}
DEFAULT_CONFIGS = ["base", "offload", "offload,compile", "offload,fp8"]
ATTENTION_OPTIONS = {"flash": "_native_flash", "cudnn": "_native_cudnn", "efficient": "_native_efficient"}
ATTENTION_OPTIONS["math"] = "_native_math"
KNOWN_OPTIONS = {"offload", "compile", "fp8", *ATTENTION_OPTIONS}
INSTRUCTION = "Make the car blue"  # the DiT always sees 640 text slots, so its length does not matter


@dataclass
class Row:
    """One measured (or skipped) edit."""

    config: str
    size_level: int
    seconds: float | None
    peak_allocated_gb: float | None
    peak_reserved_gb: float | None
    psnr_vs_base_db: float | None
    note: str = ""


# --------------------------------------------------------------------------------------------------------------
# Full-size random model
# --------------------------------------------------------------------------------------------------------------


@contextmanager
def default_dtype(dtype: torch.dtype):
    """Construct modules in ``dtype`` (transformers builds Qwen's weights in the default dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@torch.no_grad()
def materialize_random(module: torch.nn.Module, device: torch.device, seed: int):
    """Meta module -> uninitialised storage on ``device`` (same dtype) -> seeded random values (no CPU copy).

    Matrices get N(0, 1/fan_in) (keeps activations O(1) through 57 blocks), biases 0, norm gains 1.
    """
    module.to_empty(device=device)
    generator = torch.Generator(device).manual_seed(seed)
    for name, param in module.named_parameters():
        if param.ndim >= 2:
            param.normal_(0.0, 1.0 / math.sqrt(param[0].numel()), generator=generator)
        elif name.endswith("bias") or name.endswith("scale_factor"):
            param.zero_()
        else:
            param.fill_(1.0)
    return module.eval()


# Qwen2.5-VL-7B-Instruct's config.json (text and vision towers).
QWEN_7B_TEXT = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
QWEN_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}


@dataclass(frozen=True)
class ModelSizes:
    """Configs of the random model; the defaults are the official full size."""

    transformer: dict = field(default_factory=dict)  # FluxTransformer2DModel's defaults are the official DiT
    connector: dict = field(default_factory=lambda: dict(OFFICIAL_CONNECTOR_CONFIG))
    vae: dict = field(default_factory=lambda: dict(FLUX_VAE_CONFIG))
    qwen_text: dict = field(default_factory=lambda: dict(QWEN_7B_TEXT))
    qwen_vision: dict = field(default_factory=lambda: dict(QWEN_7B_VISION))


def random_qwen(processor, sizes: ModelSizes, device: torch.device, dtype: torch.dtype, seed: int):
    """Qwen2.5-VL with random weights, constructed on ``device`` (its token ids follow ``processor``)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = processor.tokenizer.convert_tokens_to_ids
    special = {"bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>")}
    config = Qwen2_5_VLConfig(
        text_config=sizes.qwen_text | special | {"pad_token_id": ids("<|endoftext|>")},
        vision_config=sizes.qwen_vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        return Qwen2_5_VLForConditionalGeneration(config).eval()


def random_pipeline(
    device: torch.device, seed: int, sizes: ModelSizes = ModelSizes(), dtype: torch.dtype = torch.bfloat16
) -> Step1XEditPipeline:
    """Step1X-Edit v1.1 with seeded random weights on ``device`` (official full size by default)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from model.tiny import flux_scheduler, tiny_processor

    processor = tiny_processor()
    processor.image_processor = type(processor.image_processor)(
        min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS
    )
    with torch.device("meta"), default_dtype(dtype):
        transformer = FluxTransformer2DModel(**sizes.transformer)
        connector = Step1XEditConnector(**sizes.connector)
    with torch.device("meta"):
        vae = AutoencoderKL(**sizes.vae)  # fp32, as official
    # Byte-level tokenizer: the template+PREFIX span is longer than Qwen's 217 tokens; drop what it really is.
    drop = prefix_token_count(processor, Image.new("RGB", (512, 512)))
    return Step1XEditPipeline(
        text_encoder=random_qwen(processor, sizes, device, dtype, seed),
        processor=processor,
        connector=materialize_random(connector, device, seed + 1),
        transformer=materialize_random(transformer, device, seed + 2),
        vae=materialize_random(vae, device, seed + 3),
        scheduler=flux_scheduler(),
        version="v1.1",
        drop_tokens=drop,
        model_name="step1x-edit-v1.1 (random weights)",
    )


def build_pipeline(tiny: bool, device: torch.device, seed: int) -> Step1XEditPipeline:
    """Full size on ``device``, or the project's tiny random pipeline (CPU smoke test)."""
    if not tiny:
        return random_pipeline(device, seed)
    from model.tiny import tiny_pipeline

    return tiny_pipeline(seed=seed).to(device)


# --------------------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------------------


def parse_config(config: str) -> set[str]:
    """``"offload,fp8"`` -> ``{"offload", "fp8"}``; ``"base"`` -> no options."""
    options = set() if config == "base" else set(config.split(","))
    unknown = options - KNOWN_OPTIONS
    if unknown:
        raise SystemExit(
            f"unknown option(s) {sorted(unknown)} in {config!r}; known: base, {sorted(KNOWN_OPTIONS)}"
        )
    return options


def apply_options(pipe: Step1XEditPipeline, options: set[str]) -> str:
    """Switch the options on; returns a note when one cannot run here (the row is then skipped)."""
    cuda = pipe.transformer.device.type == "cuda"
    if "fp8" in options and not cuda:
        return "skipped: FP8 weights need CUDA (torchao)"
    for option, backend in ATTENTION_OPTIONS.items():
        if option in options:
            pipe.transformer.set_attention_backend(backend)
    if "offload" in options:
        pipe.enable_text_encoder_offload()
    if "fp8" in options:
        pipe.enable_fp8_weights()
    if "compile" in options:
        pipe.enable_transformer_compile()
    return ""


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB of two 8-bit images (``inf`` when identical)."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def synthetic_image(size: int, seed: int) -> Image.Image:
    """A square RGB test picture: two gradients and a noise channel."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    pixels = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.add.outer(ramp[::-1], ramp) / 2, rng.uniform(0, 255, (size, size))]
    )
    return Image.fromarray(pixels.transpose(1, 2, 0).astype(np.uint8))


def timed_edit(pipe, image, steps: int, size: int, seed: int, device: torch.device):
    """One edit: (output image, seconds, (peak allocated GB, peak reserved GB) or Nones off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = pipe(image=image, prompt=INSTRUCTION, num_inference_steps=steps, size_level=size, seed=seed)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        memory = (torch.cuda.max_memory_allocated() / 1e9, torch.cuda.max_memory_reserved() / 1e9)
    else:
        memory = (None, None)
    return out.images[0], seconds, memory


def run(args: argparse.Namespace) -> list[Row]:
    """Every configuration x size level, each configuration on a fresh pipeline."""
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny for the CPU smoke test")
    rows: list[Row] = []
    base_outputs: dict[int, Image.Image] = {}
    for config in args.configs:
        options = parse_config(config)
        pipe = build_pipeline(args.tiny, device, args.seed)
        pipe.set_progress_bar_config(disable=True)
        note = apply_options(pipe, options)
        for size in args.sizes:
            if note:
                rows.append(Row(config, size, None, None, None, None, note))
                print(format_row(rows[-1], args.tiny), flush=True)
                continue
            image = synthetic_image(size, args.seed)
            if args.warmup_steps:  # kernels, allocator, compile graphs for this resolution
                pipe(
                    image=image,
                    prompt=INSTRUCTION,
                    num_inference_steps=args.warmup_steps,
                    size_level=size,
                    seed=0,
                )
            output, seconds, (allocated, reserved) = timed_edit(
                pipe, image, args.steps, size, args.seed, device
            )
            if config == "base":
                base_outputs[size] = output
            quality = psnr(output, base_outputs[size]) if size in base_outputs else None
            rows.append(Row(config, size, seconds, allocated, reserved, quality))
            print(format_row(rows[-1], args.tiny), flush=True)
        del pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def official_config(config: str) -> str:
    """The official README row an option set compares with (compile and kernels change no memory plan)."""
    options = parse_config(config) & {"offload", "fp8"}
    return ",".join(sorted(options)) or "base"


def format_row(row: Row, tiny: bool) -> str:
    """One table line (with the official H800 figures for the full-size model)."""

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    reference = official_config(row.config)
    seconds, gb = OFFICIAL_H800[reference].get(row.size_level, (math.nan, math.nan))
    official = "" if tiny else f"{seconds:>5.1f} s {gb:>5.1f} GB ({reference})"
    return (
        f"{row.config:<22} {row.size_level:>5} {num(row.seconds, '8.2f')} s "
        f"{num(row.peak_allocated_gb, '7.1f')} GB {num(row.peak_reserved_gb, '7.1f')} GB "
        f"{num(row.psnr_vs_base_db, '8.1f')} dB   {official}  {row.note}"
    )


def environment() -> str:
    """Library versions and the device, printed first so every table says what produced it."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("torch", "diffusers", "transformers", "torchao"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} absent")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    return f"# {', '.join(found)}; {device}"


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Parse the command line, run, print the table (and write JSON); returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model on the CPU (smoke test)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="size levels (default 512 768 1024)"
    )
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per size first (0 = none)")
    parser.add_argument(
        "--configs", nargs="+", default=DEFAULT_CONFIGS, help="base or options joined by commas"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([64, 96] if args.tiny else [512, 768, 1024])
    if "base" not in args.configs:
        args.configs = ["base", *args.configs]  # every option is judged against it
    args.configs = ["base"] + [c for c in args.configs if c != "base"]
    header = "" if args.tiny else "  official H800"
    print(environment(), flush=True)
    print(
        f"{'config':<22} {'size':>5} {'time':>10} {'peak alloc':>10} {'reserved':>10} {'PSNR vs base':>11}{header}"
    )
    rows = run(args)
    if args.tiny:
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return rows


if __name__ == "__main__":
    main()
