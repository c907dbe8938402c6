"""`inspect` names dtype outliers (and fails on them with --strict) and reports VAE keys in the file's naming."""

from __future__ import annotations

import json
from argparse import Namespace

import torch
from diffusers import AutoencoderKL

from model.checkpoints import OFFICIAL_V10, OFFICIAL_V11, OFFICIAL_VAE
from model.inspection import inspect_checkpoint, run_inspect
from model.key_mapping import FLUX_VAE_CONFIG, convert_ldm_vae_state_dict, ldm_vae_key_for


def _dit(official_keys, v10: bool = False) -> dict:
    return official_keys["dit"]() | official_keys["connector"](v10=v10)


def test_one_f32_tensor_in_a_bf16_dit_is_named_and_fails_strict(official_keys, tmp_path, capsys):
    outliers = {"final_layer.linear.bias": "F32", "double_blocks.0.img_attn.qkv.weight": "F32"}
    path = official_keys["sparse_file"](tmp_path / "mixed.safetensors", _dit(official_keys), dtypes=outliers)
    report = inspect_checkpoint(path)
    assert report.compatible and report.dtype == "BF16"
    assert report.dtype_outliers == sorted(f"{name}: F32" for name in outliers)
    assert run_inspect(Namespace(checkpoint=str(path), json=False)) == 0  # loadable: cast on load
    text = capsys.readouterr().out
    assert "precision:  BF16, but 2 tensor(s) stored otherwise:" in text
    assert "  final_layer.linear.bias: F32" in text and "  double_blocks.0.img_attn.qkv.weight: F32" in text
    assert run_inspect(Namespace(checkpoint=str(path), json=True, strict=True)) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["compatible"] and not payload["passed"] and len(payload["dtype_outliers"]) == 2


def test_connector_tensors_kept_in_fp32_officially_are_allowed(official_keys, tmp_path, capsys):
    fp32 = {
        "connector.global_proj_out.weight": "F32",
        "connector.global_proj_out.bias": "F32",
        "connector.scale_factor": "F32",
    }
    path = official_keys["sparse_file"](
        tmp_path / "v10.safetensors", _dit(official_keys, v10=True), dtypes=fp32
    )
    report = inspect_checkpoint(path)
    assert report.format == OFFICIAL_V10 and report.dtype_outliers == [] and report.dtype == "BF16"
    assert run_inspect(Namespace(checkpoint=str(path), json=False, strict=True)) == 0
    assert "precision:  BF16\n" in capsys.readouterr().out  # not "all": three fp32 tensors are allowed


def test_uniform_f32_and_f8_files_are_reported_as_such(official_keys, tmp_path):
    f32 = inspect_checkpoint(
        official_keys["sparse_file"](tmp_path / "a.safetensors", _dit(official_keys), "F32")
    )
    assert f32.format == OFFICIAL_V11 and f32.dtype == "F32" and not f32.dtype_outliers
    assert "precision:  all F32 (full precision" in f32.to_text()
    f8 = inspect_checkpoint(
        official_keys["sparse_file"](tmp_path / "b.safetensors", _dit(official_keys), "F8_E4M3")
    )
    assert "precision:  all F8_E4M3 (an fp8 file" in f8.to_text()
    vae = inspect_checkpoint(
        official_keys["sparse_file"](tmp_path / "v.safetensors", official_keys["vae"](), "F32")
    )
    assert "precision:  all F32\n" in vae.to_text() + "\n"  # a VAE is fp32 by design: no remark


def test_missing_vae_keys_are_named_as_the_official_file_names_them(official_keys, tmp_path):
    shapes = official_keys["vae"]()
    gone = [
        "encoder.mid.attn_1.q.weight",
        "decoder.up.1.block.2.conv1.bias",
        "decoder.up.2.block.0.norm1.weight",
    ]
    for key in gone:
        del shapes[key]
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "vae.safetensors", shapes, "F32"))
    assert report.format == OFFICIAL_VAE
    assert report.missing == sorted(gone)


def test_ldm_names_invert_the_diffusers_vae_converter() -> None:
    """Every key of the full-size AutoencoderKL, named the LDM way, converts back to itself."""
    with torch.device("meta"):
        expected = AutoencoderKL(**FLUX_VAE_CONFIG).state_dict()
    levels = len(FLUX_VAE_CONFIG["block_out_channels"])
    ldm = {}
    for key, tensor in expected.items():
        name = ldm_vae_key_for(key, levels)
        square_1x1 = ".attn_1." in name and name.endswith("weight") and tensor.ndim == 2
        ldm[name] = torch.empty((*tensor.shape, 1, 1) if square_1x1 else tensor.shape, device="meta")
    conversion = convert_ldm_vae_state_dict(ldm, FLUX_VAE_CONFIG)
    assert not conversion.unmapped and set(conversion.modules["vae"]) == set(expected)
    assert all(conversion.origin[f"vae:{key}"] == ldm_vae_key_for(key, levels) for key in expected)
    assert (
        ldm_vae_key_for("decoder.up_blocks.0.resnets.0.conv1.weight", levels)
        == "decoder.up.3.block.0.conv1.weight"
    )
