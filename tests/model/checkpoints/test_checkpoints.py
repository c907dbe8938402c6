"""Key mapping and header-only inspection against the official Step1X-Edit layout (no weights, no downloads)."""

from __future__ import annotations

import json
import time
from argparse import Namespace

import pytest
import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

from model.checkpoints import (
    KOHYA_LORA,
    OFFICIAL_V10,
    OFFICIAL_V11,
    OFFICIAL_VAE,
    CheckpointFormatError,
    detect_format,
    read_safetensors_header,
)
from model.connector import Step1XEditConnector
from model.inspection import inspect_checkpoint, run_inspect
from model.key_mapping import (
    FLUX_VAE_CONFIG,
    convert_dit_state_dict,
    convert_ldm_vae_state_dict,
    infer_ldm_vae_config,
    infer_transformer_config,
)


def meta(shapes):
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def shapes_of(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def assert_same_shapes(converted: dict, expected: dict) -> None:
    got = {k: tuple(v.shape) for k, v in converted.items()}
    assert sorted(set(expected) - set(got)) == [], "missing"
    assert sorted(set(got) - set(expected)) == [], "unexpected"
    assert {k: s for k, s in got.items() if s != expected[k]} == {}, "mis-shaped"


@pytest.mark.parametrize(("v10", "count"), [(True, 817), (False, 816)])
def test_full_size_official_dit_maps_onto_flux_and_connector_exactly(official_keys, v10, count):
    shapes = official_keys["dit"]() | official_keys["connector"](v10=v10)
    assert len(shapes) == count
    conversion = convert_dit_state_dict(meta(shapes), hidden_size=3072, layout="official")
    assert conversion.unmapped == [] and conversion.errors == {}
    with torch.device("meta"):
        flux = FluxTransformer2DModel()  # its default config is the official DiT
        connector = Step1XEditConnector(use_scale_factor=v10)
    assert_same_shapes(conversion.modules["transformer"], shapes_of(flux))
    assert_same_shapes(conversion.modules["connector"], shapes_of(connector))
    total = sum(torch.Size(s).numel() for s in shapes.values())
    assert round(total / 1e9, 3) == 12.428  # the official DiT + connector: 12.428 B counted on meta
    assert detect_format(shapes) == (OFFICIAL_V10 if v10 else OFFICIAL_V11)


def test_full_size_mapping_agrees_with_diffusers_own_flux_converter(official_keys):
    shapes = official_keys["dit"]()
    ours = convert_dit_state_dict(meta(shapes), hidden_size=3072, layout="official").modules["transformer"]
    theirs = convert_flux_transformer_checkpoint_to_diffusers(meta(shapes))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_full_size_official_vae_maps_onto_autoencoderkl_exactly(official_keys):
    shapes = official_keys["vae"]()
    conversion = convert_ldm_vae_state_dict(meta(shapes), FLUX_VAE_CONFIG)
    assert conversion.unmapped == []
    with torch.device("meta"):
        vae = AutoencoderKL(**FLUX_VAE_CONFIG)
    assert_same_shapes(conversion.modules["vae"], shapes_of(vae))
    assert round(sum(torch.Size(s).numel() for s in shapes.values()) / 1e6, 2) == 83.82  # 335 MB in fp32
    assert infer_ldm_vae_config(shapes) == FLUX_VAE_CONFIG


def test_vae_conversion_reports_keys_diffusers_would_silently_drop(official_keys):
    shapes = official_keys["vae"]() | {"encoder.extra_layer.weight": (4,)}
    conversion = convert_ldm_vae_state_dict(meta(shapes), FLUX_VAE_CONFIG)
    assert conversion.unmapped == ["encoder.extra_layer.weight"]


def test_config_read_off_full_size_shapes_is_the_official_dit(official_keys):
    config = infer_transformer_config(official_keys["dit"]())
    with torch.device("meta"):
        reference = FluxTransformer2DModel().config
    for key, value in config.items():
        assert reference[key] == value, key


def test_tiny_mapping_moves_values_split_and_swapped_exactly(official_keys):
    hidden = 32
    tensors = official_keys["random"](official_keys["dit"](hidden=hidden, heads=2, depth=1, depth_single=1))
    out = convert_dit_state_dict(tensors, hidden_size=hidden, layout="official").modules["transformer"]
    qkv = tensors["double_blocks.0.txt_attn.qkv.weight"]
    assert torch.equal(out["transformer_blocks.0.attn.add_k_proj.weight"], qkv[hidden : 2 * hidden])
    linear1 = tensors["single_blocks.0.linear1.bias"]
    assert torch.equal(out["single_transformer_blocks.0.attn.to_v.bias"], linear1[2 * hidden : 3 * hidden])
    assert torch.equal(out["single_transformer_blocks.0.proj_mlp.bias"], linear1[3 * hidden :])
    shift, scale = tensors["final_layer.adaLN_modulation.1.weight"].chunk(2)
    assert torch.equal(out["norm_out.linear.weight"], torch.cat([scale, shift]))
    assert torch.equal(
        out["transformer_blocks.0.attn.norm_added_q.weight"],
        tensors["double_blocks.0.txt_attn.norm.query_norm.scale"],
    )


def test_inspect_reads_only_the_header_of_a_25_gb_file(official_keys, tmp_path):
    shapes = official_keys["dit"]() | official_keys["connector"](v10=True)
    path = official_keys["sparse_file"](tmp_path / "step1x-edit-i1258.safetensors", shapes)
    assert path.stat().st_size > 24e9  # declared size; the data region is a sparse hole
    inspect_checkpoint(
        official_keys["sparse_file"](
            tmp_path / "warm.safetensors", {"double_blocks.0.img_mod.lin.weight": (8, 8)}
        )
    )
    start = time.perf_counter()
    report = inspect_checkpoint(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"inspection took {elapsed:.2f} s"
    assert report.format == OFFICIAL_V10 and report.version == "v1.0"
    assert report.tensor_count == 817
    assert report.parameter_count == sum(torch.Size(s).numel() for s in shapes.values())
    assert report.dtypes == {"BF16": 817}
    assert report.compatible, report.to_text()


def test_inspect_cli_exit_codes_and_json(official_keys, tmp_path, capsys):
    good = official_keys["sparse_file"](
        tmp_path / "v11.safetensors", official_keys["dit"]() | official_keys["connector"]()
    )
    assert run_inspect(Namespace(checkpoint=str(good), json=True)) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["format"] == OFFICIAL_V11 and payload["tensor_count"] == 816 and payload["compatible"]

    shapes = official_keys["dit"]() | official_keys["connector"]()
    del shapes["double_blocks.3.img_attn.qkv.weight"]
    del shapes["connector.S.individual_token_refiner.blocks.1.norm2.bias"]
    shapes["single_blocks.5.linear2.weight"] = (3072, 15000)
    shapes["connector.S.input_embedder.weight"] = (4096, 3500)
    shapes["guidance_in.in_layer.weight"] = (3072, 256)
    shapes["not_a_layer.weight"] = (3,)
    bad = official_keys["sparse_file"](tmp_path / "bad.safetensors", shapes)
    assert run_inspect(Namespace(checkpoint=str(bad), json=False)) == 1
    text = capsys.readouterr().out
    assert "compatible: NO (2 missing, 2 unexpected, 2 mis-shaped" in text
    for needle in (
        "  double_blocks.3.img_attn.qkv.weight",  # reported under the file's own (official) name
        "  connector.S.individual_token_refiner.blocks.1.norm2.bias",
        "  guidance_in.in_layer.weight",
        "  not_a_layer.weight",
        "single_blocks.5.linear2.weight (as transformer single_transformer_blocks.5.proj_out.weight): "
        "checkpoint [3072, 15000], model expects [3072, 15360]",
        "connector.S.input_embedder.weight (as connector S.input_embedder.weight): "
        "checkpoint [4096, 3500], model expects [4096, 3584]",
    ):
        assert needle in text


def test_inspect_vae_and_unsplittable_fused_tensor(official_keys, tmp_path):
    vae = official_keys["sparse_file"](tmp_path / "vae.safetensors", official_keys["vae"](), dtype="F32")
    report = inspect_checkpoint(vae)
    assert report.format == OFFICIAL_VAE and report.compatible and report.tensor_count == 244

    shapes = official_keys["dit"]() | official_keys["connector"]()
    shapes["single_blocks.0.linear1.weight"] = (9000, 3072)  # smaller than q+k+v: cannot be split
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "x.safetensors", shapes))
    assert not report.compatible
    assert any(
        p.startswith("single_blocks.0.linear1.weight: fused linear1 has 9000 rows") for p in report.problems
    )

    shapes["double_blocks.0.img_attn.qkv.weight"] = (9216, 3000)  # splits, but each part is too narrow
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "y.safetensors", shapes))
    assert (
        "double_blocks.0.img_attn.qkv.weight (as transformer transformer_blocks.0.attn.to_k.weight): "
        "checkpoint [9216, 3000] gives [3072, 3000], model expects [3072, 3072]"
    ) in report.mis_shaped


def test_inspect_flags_a_truncated_file(official_keys, tmp_path):
    path = official_keys["sparse_file"](tmp_path / "cut.safetensors", official_keys["vae"](), dtype="F32")
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 4)
    report = inspect_checkpoint(path)
    assert not report.compatible
    assert any("file is truncated" in p for p in report.problems)


def test_inspect_refuses_pickles_and_non_safetensors(tmp_path, capsys):
    pickle = tmp_path / "model.bin"
    pickle.write_bytes(b"\x80\x04not really")
    assert run_inspect(Namespace(checkpoint=str(pickle), json=False)) == 2
    assert "only .safetensors files are accepted" in capsys.readouterr().out
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointFormatError, match="not a safetensors file"):
        read_safetensors_header(junk)


def test_a_deeply_nested_header_is_refused_with_a_message(tmp_path):
    """A header nested deeper than the JSON parser's recursion limit is a malformed file, not a traceback."""
    header = b"[" * 200_000 + b"]" * 200_000
    deep = tmp_path / "deep.safetensors"
    deep.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointFormatError, match="nested too deeply"):
        read_safetensors_header(deep)


def test_inspect_kohya_lora_against_full_size_dit(tmp_path, official_keys):
    rank = 4
    shapes = {
        "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (rank, 3072),
        "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": (3 * 3072, rank),
        "lora_unet_double_blocks_0_img_attn_qkv.alpha": (),
        "lora_unet_single_blocks_37_linear1.lora_down.weight": (rank, 3072),
        "lora_unet_single_blocks_37_linear1.lora_up.weight": (21504, rank),
    }
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "lora.safetensors", shapes))
    assert report.format == KOHYA_LORA and report.compatible, report.to_text()
    shapes["lora_unet_single_blocks_38_linear1.lora_down.weight"] = (rank, 3072)  # block 38 does not exist
    shapes["lora_unet_double_blocks_1_txt_mlp_2.lora_up.weight"] = (3072, rank)  # no lora_down
    shapes["lora_unet_double_blocks_1_txt_mlp_2.lora_down.weight"] = (rank, 3000)  # wrong width
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "bad.safetensors", shapes))
    assert report.unexpected == ["lora_unet_single_blocks_38_linear1.lora_down.weight"]
    assert len(report.mis_shaped) == 1 and "double_blocks.1.txt_mlp.2.weight" in report.mis_shaped[0]


def test_inspect_diffusers_layouts_ours_and_the_forks(official_keys, tmp_path):
    with torch.device("meta"):
        flux = shapes_of(FluxTransformer2DModel())
    folder = tmp_path / "transformer"
    folder.mkdir()
    names = sorted(flux)
    official_keys["sparse_file"](
        folder / "part-1.safetensors", {k: flux[k] for k in names[: len(names) // 2]}
    )
    official_keys["sparse_file"](
        folder / "part-2.safetensors", {k: flux[k] for k in names[len(names) // 2 :]}
    )
    report = inspect_checkpoint(folder)  # this project's layout: the DiT alone, in shards
    assert report.format == "diffusers transformer" and report.version is None and report.compatible

    renames = {
        "time_text_embed.timestep_embedder.linear_1.": "time_embed.in_layer.",
        "time_text_embed.timestep_embedder.linear_2.": "time_embed.out_layer.",
        "time_text_embed.text_embedder.linear_1.": "vec_embed.in_layer.",
        "time_text_embed.text_embedder.linear_2.": "vec_embed.out_layer.",
    }
    shapes = {}  # the fork (Step1XEditTransformer2DModel) renames the two embedders
    for key, shape in flux.items():
        for old, new in renames.items():
            key = key.replace(old, new)
        shapes[key] = shape
    shapes |= official_keys["connector"]()  # the fork keeps the connector inside, official names
    report = inspect_checkpoint(official_keys["sparse_file"](tmp_path / "fork.safetensors", shapes))
    assert report.format == "diffusers transformer" and report.version == "v1.1"
    assert report.compatible, report.to_text()


def test_inspect_an_official_model_folder_checks_each_file(official_keys, tmp_path, capsys):
    folder = tmp_path / "Step1X-Edit"
    folder.mkdir()
    dit = official_keys["dit"]() | official_keys["connector"](v10=True)
    official_keys["sparse_file"](folder / "step1x-edit-i1258.safetensors", dit)
    official_keys["sparse_file"](folder / "vae.safetensors", official_keys["vae"](), dtype="F32")
    assert run_inspect(Namespace(checkpoint=str(folder), json=True)) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["format"] for r in payload["reports"]] == [OFFICIAL_V10, OFFICIAL_VAE] and payload["compatible"]
