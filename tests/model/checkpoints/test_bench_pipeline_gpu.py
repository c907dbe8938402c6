"""bench/pipeline_gpu.py at tiny size on the CPU: the GPU benchmark's own code path, minus the GPU."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "pipeline_gpu.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("pipeline_gpu_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_tiny_run_times_every_config_and_compares_outputs_with_base(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "rows.json"
    argv = [
        "--tiny",
        "--sizes",
        "64",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--configs",
        "offload",
        "fp8",
        "math",
    ]
    rows = bench.main([*argv, "--json", str(out)])
    by_config = {row.config: row for row in rows}
    assert list(by_config) == ["base", "offload", "fp8", "math"]  # base is always run first
    assert all(by_config[c].seconds > 0 for c in ("base", "offload", "math"))
    assert by_config["base"].psnr_vs_base_db == math.inf
    assert by_config["offload"].psnr_vs_base_db == math.inf  # moving Qwen off the device changes nothing
    assert by_config["math"].psnr_vs_base_db > 40  # another SDPA kernel: float-rounding differences only
    assert by_config["fp8"].seconds is None and by_config["fp8"].note.startswith(
        "skipped: FP8 weights need CUDA"
    )
    assert len(json.loads(out.read_text())) == 4
    printed = capsys.readouterr().out
    assert "PSNR vs base" in printed and "skipped: FP8" in printed


def test_psnr_and_option_parsing():
    bench = load_bench()
    image = bench.synthetic_image(32, seed=1)
    assert bench.psnr(image, image) == math.inf
    noisy = bench.Image.fromarray((bench.np.asarray(image) ^ 1).astype("uint8"))
    assert 45 < bench.psnr(image, noisy) < 50  # every value off by one: 48.1 dB
    assert bench.parse_config("offload,fp8") == {"offload", "fp8"}
    try:
        bench.parse_config("offload,turbo")
    except SystemExit as exc:
        assert "turbo" in str(exc)
    else:
        raise AssertionError("unknown option accepted")


def test_full_size_builders_on_meta_and_random_materialisation():
    import torch
    from diffusers import FluxTransformer2DModel

    from model.tiny import tiny_processor

    bench = load_bench()
    qwen = bench.full_size_qwen(tiny_processor(), torch.device("meta"), torch.bfloat16, seed=0)
    assert round(sum(p.numel() for p in qwen.parameters()) / 1e9, 2) == 8.29  # Qwen2.5-VL-7B-Instruct
    assert qwen.dtype == torch.bfloat16
    with torch.device("meta"):
        dit = FluxTransformer2DModel(
            num_layers=1, num_single_layers=1, attention_head_dim=32, num_attention_heads=2
        )
    bench.materialize_random(dit, torch.device("cpu"), torch.bfloat16, seed=0)
    weight = dit.x_embedder.weight.float()
    assert dit.dtype == torch.bfloat16 and not any(p.is_meta for p in dit.parameters())
    assert abs(weight.std().item() * 8 - 1) < 0.05  # N(0, 1/fan_in), fan_in 64
    assert (
        dit.norm_out.linear.bias.abs().max() == 0 and dit.transformer_blocks[0].attn.norm_q.weight.min() == 1
    )
