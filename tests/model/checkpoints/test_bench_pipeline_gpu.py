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


def test_full_size_qwen_config_and_random_materialisation():
    import torch
    from diffusers import FluxTransformer2DModel

    from model.tiny import tiny_processor

    bench = load_bench()
    qwen = bench.random_qwen(
        tiny_processor(), bench.ModelSizes(), torch.device("meta"), torch.bfloat16, seed=0
    )
    assert round(sum(p.numel() for p in qwen.parameters()) / 1e9, 2) == 8.29  # Qwen2.5-VL-7B-Instruct
    assert qwen.dtype == torch.bfloat16
    with torch.device("meta"), bench.default_dtype(torch.bfloat16):
        dit = FluxTransformer2DModel(
            num_layers=1, num_single_layers=1, attention_head_dim=32, num_attention_heads=2
        )
    bench.materialize_random(dit, torch.device("cpu"), seed=0)
    weight = dit.x_embedder.weight.float()
    assert dit.dtype == torch.bfloat16 and not any(p.is_meta for p in dit.parameters())
    assert abs(weight.std().item() * 8 - 1) < 0.05  # N(0, 1/fan_in), fan_in 64
    assert (
        dit.norm_out.linear.bias.abs().max() == 0 and dit.transformer_blocks[0].attn.norm_q.weight.min() == 1
    )


def test_the_full_size_builder_runs_an_edit_at_reduced_sizes():
    """The GPU path's own builder (meta -> device, random values), shrunk so that it runs on the CPU."""
    import torch

    bench = load_bench()
    sizes = bench.ModelSizes(
        transformer={
            "num_layers": 1,
            "num_single_layers": 1,
            "attention_head_dim": 16,
            "num_attention_heads": 2,
        }
        | {"joint_attention_dim": 64, "pooled_projection_dim": 48, "axes_dims_rope": (4, 6, 6)},
        connector={"in_channels": 32, "hidden_size": 64, "num_heads": 4, "depth": 1, "pooled_dim": 48},
        vae={
            **bench.FLUX_VAE_CONFIG,
            "block_out_channels": [16] * 4,
            "layers_per_block": 1,
            "norm_num_groups": 8,
        },
        qwen_text={**bench.QWEN_7B_TEXT, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
        | {"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 400}
        | {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]}},
        qwen_vision={**bench.QWEN_7B_VISION, "depth": 1, "hidden_size": 16, "intermediate_size": 32}
        | {"num_heads": 2, "out_hidden_size": 32, "fullatt_block_indexes": [0]},
    )
    pipe = bench.random_pipeline(torch.device("cpu"), seed=0, sizes=sizes, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = bench.synthetic_image(48, seed=0)
    output, seconds, memory = bench.timed_edit(
        pipe, image, steps=2, size=32, seed=0, device=torch.device("cpu")
    )
    assert output.size == image.size and seconds > 0 and memory == (None, None)
