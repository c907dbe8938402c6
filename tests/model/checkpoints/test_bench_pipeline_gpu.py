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


def _load_bundle():
    path = BENCH.with_name("gpu_bundle.py")
    spec = importlib.util.spec_from_file_location("gpu_bundle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _probe_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (a package with an empty __init__), built locally: nothing is downloaded."""
    import zipfile

    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{p},,\n" for p in [*files, f"{info}/RECORD"]))
    return wheel


def test_bundle_pins_come_from_pyproject_and_target_the_gpu_python():
    import tomllib

    bundle = _load_bundle()
    requirements = bundle.pinned_requirements()
    project = tomllib.loads((BENCH.parents[1] / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["gpu"]]
    for name in ("diffusers", "transformers", "torchao"):
        assert next(r for r in requirements if r.startswith(f"{name}==")) in pins
    command = bundle.download_command(requirements, Path("w"))
    assert command[command.index("--python-version") + 1] == "3.12" and "--no-deps" in command
    assert "manylinux_2_28_x86_64" in command and command[-len(requirements) :] == requirements


def test_bundle_run_installs_the_carried_wheels_first_on_the_path_and_prints_the_table(tmp_path, capfd):
    """The whole recipe on the CPU: install the carried wheels into a private folder, run the benchmark with
    that folder first on PYTHONPATH. The probe wheel stands in for torchao (absent here): the benchmark's
    environment line shows the carried version, so the carried folder really is what the benchmark imports."""
    bundle = _load_bundle()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels, "torchao", "0.0.1")
    site = tmp_path / "site"
    argv = ["run", "--tiny", "--wheels", str(wheels), "--site", str(site), "--"]
    argv += ["--sizes", "48", "--steps", "1", "--warmup-steps", "0", "--configs", "base", "offload"]
    assert bundle.main(argv) == 0
    printed = capfd.readouterr().out
    assert "carried: torchao 0.0.1" in printed and (site / "torchao" / "__init__.py").is_file()
    assert "torchao 0.0.1" in printed.split("carried:")[1].split("\n")[1]  # the benchmark's environment line
    rows = [line.split() for line in printed.splitlines() if line.startswith(("base ", "offload "))]
    assert [row[:2] for row in rows] == [["base", "48"], ["offload", "48"]]
    assert rows[1][-2:] == ["inf", "dB"]  # offloading Qwen changes nothing


def test_bundle_run_without_wheels_says_how_to_get_them(tmp_path):
    bundle = _load_bundle()
    try:
        bundle.main(["run", "--wheels", str(tmp_path)])
    except SystemExit as exc:
        assert "gpu_bundle.py fetch" in str(exc)
    else:
        raise AssertionError("ran without wheels")


def test_each_row_stands_beside_the_matching_official_h800_row():
    bench = load_bench()
    rows = {
        "compile": ("22.0 s  49.8 GB (base)", 1024),
        "offload": ("49.6 s  25.9 GB (offload)", 512),
        "fp8": ("13.5 s  31.5 GB (fp8)", 768),
        "offload,fp8": ("51.0 s  18.0 GB (fp8,offload)", 1024),
    }
    for config, (official, size) in rows.items():
        line = bench.format_row(bench.Row(config, size, 1.0, 2.0, 3.0, 40.0), tiny=False)
        assert official in line, line
