"""Loading through the real loaders: tiny official-layout folders, save/load round trips, errors, LoRA, Hub."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from model.checkpoints import CheckpointMismatchError
from model.key_mapping import CheckpointFormatError
from model.loading import ModelNotAvailableError, load_editor, load_pipeline
from model.lora import LoraFormatError, merge_kohya_lora
from model.pipeline import Step1XEditPipeline
from model.tiny import TINY_TEXT_HIDDEN, tiny_pipeline

HIDDEN = 32  # tiny DiT width: 2 heads of 16 -> rope axes (4, 6, 6), connector 64 / 16 = 4 heads
TINY_DIT = {"hidden": HIDDEN, "heads": 2, "depth": 2, "depth_single": 2, "context_dim": 64, "vec_dim": 48}
TINY_CONNECTOR = {"in_channels": TINY_TEXT_HIDDEN, "hidden": 64, "depth": 2, "pooled": 48}
TINY_VAE = {"ch": 32, "ch_mult": (1, 1, 1, 1), "num_res_blocks": 1}


def official_from_diffusers(transformer: dict, connector: dict) -> dict:
    """Rebuild official DiT keys from the loaded diffusers modules (the inverse, written out by hand)."""
    t, out = transformer, {"connector." + k: v for k, v in connector.items()}
    renames = {
        "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
        "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
        "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
        "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
        "txt_in": "context_embedder",
        "img_in": "x_embedder",
        "final_layer.linear": "proj_out",
    }
    blocks = {k.split(".")[1] for k in t if k.startswith("transformer_blocks.")}
    singles = {k.split(".")[1] for k in t if k.startswith("single_transformer_blocks.")}
    for i in blocks:
        d, b = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        renames |= {d + "img_mod.lin": b + "norm1.linear", d + "txt_mod.lin": b + "norm1_context.linear"}
        renames |= {d + "img_attn.proj": b + "attn.to_out.0", d + "txt_attn.proj": b + "attn.to_add_out"}
        renames |= {d + "img_mlp.0": b + "ff.net.0.proj", d + "img_mlp.2": b + "ff.net.2"}
        renames |= {d + "txt_mlp.0": b + "ff_context.net.0.proj", d + "txt_mlp.2": b + "ff_context.net.2"}
        for p in ("weight", "bias"):
            out[f"{d}img_attn.qkv.{p}"] = torch.cat([t[f"{b}attn.to_{x}.{p}"] for x in "qkv"])
            out[f"{d}txt_attn.qkv.{p}"] = torch.cat([t[f"{b}attn.add_{x}_proj.{p}"] for x in "qkv"])
        out[d + "img_attn.norm.query_norm.scale"] = t[b + "attn.norm_q.weight"]
        out[d + "img_attn.norm.key_norm.scale"] = t[b + "attn.norm_k.weight"]
        out[d + "txt_attn.norm.query_norm.scale"] = t[b + "attn.norm_added_q.weight"]
        out[d + "txt_attn.norm.key_norm.scale"] = t[b + "attn.norm_added_k.weight"]
    for i in singles:
        s, b = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        renames |= {s + "linear2": b + "proj_out", s + "modulation.lin": b + "norm.linear"}
        for p in ("weight", "bias"):
            parts = [t[f"{b}attn.to_{x}.{p}"] for x in "qkv"] + [t[f"{b}proj_mlp.{p}"]]
            out[f"{s}linear1.{p}"] = torch.cat(parts)
        out[s + "norm.query_norm.scale"] = t[b + "attn.norm_q.weight"]
        out[s + "norm.key_norm.scale"] = t[b + "attn.norm_k.weight"]
    for official, diffusers in renames.items():
        for p in ("weight", "bias"):
            out[f"{official}.{p}"] = t[f"{diffusers}.{p}"]
    for p in ("weight", "bias"):
        scale, shift = t[f"norm_out.linear.{p}"].chunk(2)
        out[f"final_layer.adaLN_modulation.1.{p}"] = torch.cat([shift, scale])
    return out


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    """A tiny Qwen2.5-VL saved like the official ``Qwen2.5-VL-7B-Instruct`` folder."""
    folder = tmp_path_factory.mktemp("qwen") / "Qwen2.5-VL-7B-Instruct"
    pipe = tiny_pipeline(seed=3)
    pipe.text_encoder.save_pretrained(folder)
    pipe.processor.save_pretrained(folder)
    return folder


def official_tensors(official_keys, v10: bool, seed: int = 0) -> tuple[dict, dict]:
    shapes = official_keys["dit"](**TINY_DIT) | official_keys["connector"](**TINY_CONNECTOR, v10=v10)
    return official_keys["random"](shapes, seed), official_keys["random"](
        official_keys["vae"](**TINY_VAE), seed + 1
    )


def write_official_folder(folder, dit: dict, vae: dict, qwen_folder, dit_name: str):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(dit, str(folder / dit_name))
    save_file(vae, str(folder / "vae.safetensors"))
    (folder / "Qwen2.5-VL-7B-Instruct").symlink_to(qwen_folder, target_is_directory=True)
    return folder


@pytest.mark.parametrize(
    ("version", "dit_name"),
    [("v1.0", "step1x-edit-i1258.safetensors"), ("v1.1", "step1x-edit-v1p1-official.safetensors")],
)
def test_official_folder_loads_exactly_the_checkpoint_values(
    official_keys, qwen_folder, tmp_path, version, dit_name
):
    dit, vae = official_tensors(official_keys, v10=version == "v1.0")
    folder = write_official_folder(tmp_path / "official", dit, vae, qwen_folder, dit_name)

    pipe = Step1XEditPipeline.from_pretrained(str(folder), device="cpu")

    assert pipe.config.version == version and pipe.name == f"step1x-edit-{version}"
    assert pipe.transformer.config.axes_dims_rope == (4, 6, 6) and pipe.connector.config.num_heads == 4
    rebuilt = official_from_diffusers(pipe.transformer.state_dict(), pipe.connector.state_dict())
    assert rebuilt.keys() == dit.keys()
    assert all(torch.equal(rebuilt[k], dit[k]) for k in dit)
    loaded_vae = pipe.vae.state_dict()
    assert pipe.vae.dtype == torch.float32 and pipe.vae.config.block_out_channels == [32, 32, 32, 32]
    assert torch.equal(loaded_vae["encoder.conv_in.weight"], vae["encoder.conv_in.weight"])
    # 1x1-conv attention becomes linear; BFL's up.3 is diffusers' first up block.
    assert torch.equal(
        loaded_vae["decoder.mid_block.attentions.0.to_q.weight"],
        vae["decoder.mid.attn_1.q.weight"][:, :, 0, 0],
    )
    assert torch.equal(
        loaded_vae["decoder.up_blocks.0.resnets.1.conv2.bias"], vae["decoder.up.3.block.1.conv2.bias"]
    )
    qwen = tiny_pipeline(seed=3).text_encoder.state_dict()
    assert all(torch.equal(v, qwen[k]) for k, v in pipe.text_encoder.state_dict().items())


def test_official_folder_in_bf16_casts_dit_and_keeps_vae_fp32(official_keys, qwen_folder, tmp_path):
    dit, vae = official_tensors(official_keys, v10=False)
    folder = write_official_folder(
        tmp_path / "m", dit, vae, qwen_folder, "step1x-edit-v1p1-official.safetensors"
    )
    pipe = load_pipeline(folder, torch_dtype=torch.bfloat16, device="cpu")
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.connector.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    assert torch.equal(pipe.transformer.x_embedder.weight, dit["img_in.weight"].to(torch.bfloat16))


def test_mismatched_official_checkpoint_lists_every_problem_and_loads_nothing(
    official_keys, qwen_folder, tmp_path
):
    dit, vae = official_tensors(official_keys, v10=False)
    del dit["double_blocks.1.txt_mlp.2.bias"]
    dit["single_blocks.1.linear2.weight"] = torch.zeros(HIDDEN, 7)
    dit["connector.S.extra.weight"] = torch.zeros(2)
    folder = write_official_folder(
        tmp_path / "m", dit, vae, qwen_folder, "step1x-edit-v1p1-official.safetensors"
    )
    with pytest.raises(CheckpointMismatchError) as caught:
        load_pipeline(folder, device="cpu")
    report = caught.value.report
    assert report.missing == ["double_blocks.1.txt_mlp.2.bias"]
    assert report.unexpected == ["connector.S.extra.weight"]
    assert len(report.mis_shaped) == 1 and report.mis_shaped[0].startswith("single_blocks.1.linear2.weight")
    message = str(caught.value)
    assert "double_blocks.1.txt_mlp.2.bias" in message and "connector.S.extra.weight" in message


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_save_pretrained_then_from_pretrained_round_trip(tmp_path, version):
    pipe = tiny_pipeline(seed=5, version=version)
    pipe.save_pretrained(tmp_path / "saved")
    loaded = Step1XEditPipeline.from_pretrained(str(tmp_path / "saved"), device="cpu")
    for name in ("transformer", "connector", "vae", "text_encoder"):
        expected, got = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert expected.keys() == got.keys(), name
        assert all(torch.equal(expected[k], got[k]) for k in expected), name
    settings = {k: v for k, v in pipe.config.items() if not k.startswith("_")}
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == settings
    assert loaded.processor.chat_template == pipe.processor.chat_template
    assert loaded.processor.image_processor.to_dict() == pipe.processor.image_processor.to_dict()
    assert (
        loaded.processor.tokenizer("“quoted” text!")["input_ids"]
        == pipe.processor.tokenizer("“quoted” text!")["input_ids"]
    )


def test_diffusers_folder_with_a_damaged_transformer_is_refused(tmp_path):
    pipe = tiny_pipeline(seed=6)
    pipe.save_pretrained(tmp_path / "saved")
    shard = tmp_path / "saved" / "transformer" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(str(shard))
    tensors.pop("proj_out.bias")
    save_file(tensors, str(shard))
    with pytest.raises(CheckpointMismatchError, match="proj_out.bias"):
        load_pipeline(tmp_path / "saved", device="cpu")


def test_pickle_weights_are_refused_with_a_clear_message(tmp_path):
    pipe = tiny_pipeline(seed=7)
    pipe.save_pretrained(tmp_path / "saved")
    transformer = tmp_path / "saved" / "transformer"
    (transformer / "diffusion_pytorch_model.safetensors").rename(transformer / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointFormatError, match="pickle formats are refused"):
        load_pipeline(tmp_path / "saved", device="cpu")
    with pytest.raises(CheckpointFormatError, match="only .safetensors files are accepted"):
        load_pipeline(transformer / "diffusion_pytorch_model.bin", device="cpu")


def test_hub_id_offline_gives_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE=1 or no network") as caught:
        Step1XEditPipeline.from_pretrained("stepfun-ai/Step1X-Edit-v1p1-diffusers")
    assert "stepfun-ai/Step1X-Edit-v1p1-diffusers" in str(caught.value)


def test_unknown_local_path_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_pipeline(tmp_path / "does" / "not" / "exist")
    with pytest.raises(CheckpointFormatError, match="not a Step1X-Edit model folder"):
        load_pipeline(tmp_path)


def test_load_editor_without_a_model_is_a_labelled_tiny_random_pipeline(monkeypatch, tmp_path):
    import model.loading

    monkeypatch.setattr(model.loading, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    editor = load_editor(device="cpu")
    assert editor.name == "tiny-random (untrained)"


def kohya_file(path, modules: dict[str, tuple[int, int]], rank: int, alpha: float, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (out_features, in_features) in modules.items():
        tensors[f"{module}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator)
        tensors[f"{module}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator)
        tensors[f"{module}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return tensors


def test_kohya_lora_merges_w_plus_up_down_alpha_over_rank(official_keys, qwen_folder, tmp_path):
    dit, vae = official_tensors(official_keys, v10=False)
    folder = write_official_folder(
        tmp_path / "m", dit, vae, qwen_folder, "step1x-edit-v1p1-official.safetensors"
    )
    pipe = load_pipeline(folder, device="cpu")
    mlp = 4 * HIDDEN
    targets = {
        "lora_unet_double_blocks_1_img_attn_qkv": (3 * HIDDEN, HIDDEN),
        "lora_unet_double_blocks_0_txt_mod_lin": (6 * HIDDEN, HIDDEN),
        "lora_unet_single_blocks_1_linear1": (3 * HIDDEN + mlp, HIDDEN),
        "lora_unet_single_blocks_0_linear2": (HIDDEN, HIDDEN + mlp),
    }
    rank, alpha = 4, 2.0
    lora = kohya_file(tmp_path / "lora.safetensors", targets, rank, alpha)
    assert merge_kohya_lora(pipe.transformer, tmp_path / "lora.safetensors") == len(targets)
    merged = official_from_diffusers(pipe.transformer.state_dict(), pipe.connector.state_dict())
    for key in dit:
        module = "lora_unet_" + key.removesuffix(".weight").replace(".", "_")
        expected = dit[key]
        if module in targets:
            expected = (
                dit[key]
                + lora[f"{module}.lora_up.weight"] @ lora[f"{module}.lora_down.weight"] * alpha / rank
            )
        torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-5, msg=key)


def test_kohya_lora_with_foreign_modules_leaves_the_model_untouched(tmp_path):
    pipe = tiny_pipeline(seed=8)
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    kohya_file(tmp_path / "te.safetensors", {"lora_te1_text_model_encoder_layers_0_mlp_fc1": (4, 4)}, 2, 2.0)
    with pytest.raises(LoraFormatError, match="lora_te1_text_model_encoder_layers_0_mlp_fc1"):
        merge_kohya_lora(pipe.transformer, tmp_path / "te.safetensors")
    kohya_file(tmp_path / "wide.safetensors", {"lora_unet_double_blocks_0_img_attn_proj": (999, 32)}, 2, 2.0)
    with pytest.raises(LoraFormatError, match="LoRA delta"):
        merge_kohya_lora(pipe.transformer, tmp_path / "wide.safetensors")
    assert all(torch.equal(v, before[k]) for k, v in pipe.transformer.state_dict().items())


def test_diffusers_fork_layout_with_the_connector_inside_the_transformer(tmp_path):
    import json
    import shutil

    pipe = tiny_pipeline(seed=9)
    folder = tmp_path / "Step1X-Edit-v1p1-diffusers"
    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "connector")
    shutil.rmtree(folder / "transformer")
    (folder / "transformer").mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "Step1XEditPipeline"}))
    config = dict(pipe.transformer.config) | {"_class_name": "Step1XEditTransformer2DModel"}
    config |= {"vector_in_dim": 48, "connector_in_channels": TINY_TEXT_HIDDEN, "connector_hidden_size": 64}
    config |= {"connector_heads_num": 4, "connector_depth": 2, "enable_text_token_mapping": False}
    (folder / "transformer" / "config.json").write_text(json.dumps(config))
    fork_names = {"time_text_embed.timestep_embedder.linear_1.": "time_embed.in_layer."}
    fork_names["time_text_embed.text_embedder.linear_2."] = "vec_embed.out_layer."
    tensors = {}
    for key, value in pipe.transformer.state_dict().items():
        for old, new in fork_names.items():
            key = key.replace(old, new)
        tensors[key] = value
    tensors |= {"connector." + k: v for k, v in pipe.connector.state_dict().items()}
    half = sorted(tensors)[: len(tensors) // 2]  # two shards, as the 24.9 GB original has three
    save_file({k: tensors[k] for k in half}, str(folder / "transformer" / "model-00001-of-00002.safetensors"))
    rest = {k: v for k, v in tensors.items() if k not in half}
    save_file(rest, str(folder / "transformer" / "model-00002-of-00002.safetensors"))

    loaded = load_pipeline(folder, device="cpu")
    assert (
        loaded.config.version == "v1.1" and loaded.config.max_length == 640
    )  # fork index: official defaults
    for name in ("transformer", "connector"):
        expected, got = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)

    config["enable_text_token_mapping"] = True
    (folder / "transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match="v1.2"):
        load_pipeline(folder, device="cpu")


def test_load_editor_default_loads_the_embedded_pixel_space_nano_folder(monkeypatch, tmp_path):
    import model.loading
    from model.nano.build import build_nano_pipeline

    nano = build_nano_pipeline(seed=2)
    nano.save_pretrained(tmp_path / "step1x-edit-nano")  # no vae/ and no scheduler/: pixel space
    monkeypatch.setattr(model.loading, "DEFAULT_MODEL_DIR", tmp_path / "step1x-edit-nano")
    editor = load_editor(device="cpu")
    assert editor.name == nano.name and editor.vae is None and editor.scheduler is None
    assert {k: v for k, v in editor.config.items() if not k.startswith("_")} == {
        k: v for k, v in nano.config.items() if not k.startswith("_")
    }
    for name in ("transformer", "connector", "text_encoder"):
        expected, got = getattr(nano, name).state_dict(), getattr(editor, name).state_dict()
        assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected), name


def flux_output(transformer, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    tokens, text = 16, 8
    ids = torch.zeros(tokens, 3)
    ids[:, 1], ids[:, 2] = torch.arange(tokens) // 4, torch.arange(tokens) % 4
    with torch.no_grad():
        return transformer(
            hidden_states=torch.randn(1, tokens, 64, generator=generator),
            encoder_hidden_states=torch.randn(1, text, 64, generator=generator),
            pooled_projections=torch.randn(1, 48, generator=generator),
            timestep=torch.tensor([0.7]),
            img_ids=ids,
            txt_ids=torch.zeros(text, 3),
            return_dict=False,
        )[0]


def test_peft_adapter_path_matches_the_merge_and_refuses_what_does_not_fit(tmp_path):
    from model.lora import load_kohya_lora_adapter

    width, mlp = 32, 128
    targets = {
        "lora_unet_double_blocks_0_img_attn_qkv": (3 * width, width),
        "lora_unet_double_blocks_0_txt_mlp_0": (mlp, width),
        "lora_unet_single_blocks_0_linear2": (width, width + mlp),
        "lora_unet_single_blocks_0_modulation_lin": (3 * width, width),
    }
    kohya_file(tmp_path / "lora.safetensors", targets, rank=4, alpha=8.0)
    base = flux_output(tiny_pipeline(seed=10).transformer)
    merged_model = tiny_pipeline(seed=10).transformer
    merge_kohya_lora(merged_model, tmp_path / "lora.safetensors", multiplier=0.5)
    adapter_model = tiny_pipeline(seed=10).transformer
    load_kohya_lora_adapter(adapter_model, tmp_path / "lora.safetensors", scale=0.5)
    merged, adapted = flux_output(merged_model), flux_output(adapter_model)
    assert (merged - base).abs().max() > 1e-2  # the LoRA does change the output
    torch.testing.assert_close(adapted, merged, rtol=1e-4, atol=1e-4)

    kohya_file(
        tmp_path / "linear1.safetensors",
        {"lora_unet_single_blocks_0_linear1": (3 * width + mlp, width)},
        4,
        4.0,
    )
    with pytest.raises(LoraFormatError, match="use merge_kohya_lora"):
        load_kohya_lora_adapter(tiny_pipeline(seed=10).transformer, tmp_path / "linear1.safetensors")


def test_inspect_a_saved_diffusers_folder_against_its_own_configs(tmp_path, capsys):
    from argparse import Namespace

    from model.inspection import run_inspect

    tiny_pipeline(seed=11).save_pretrained(tmp_path / "saved")
    assert run_inspect(Namespace(checkpoint=str(tmp_path / "saved"), json=False)) == 0
    text = capsys.readouterr().out
    assert text.count("compatible: yes") == 3  # transformer, connector, vae
    config = tmp_path / "saved" / "connector" / "config.json"
    config.write_text(config.read_text().replace('"depth": 2', '"depth": 3'))
    assert run_inspect(Namespace(checkpoint=str(tmp_path / "saved"), json=False)) == 1
    assert "S.individual_token_refiner.blocks.2.norm1.weight" in capsys.readouterr().out  # listed as missing


def test_official_folder_converts_to_the_diffusers_layout_by_save_pretrained(
    official_keys, qwen_folder, tmp_path
):
    dit, vae = official_tensors(official_keys, v10=True)
    folder = write_official_folder(
        tmp_path / "official", dit, vae, qwen_folder, "step1x-edit-i1258.safetensors"
    )
    pipe = load_pipeline(folder, device="cpu")  # fp32 file into fp32 on the CPU: fused parts are views
    pipe.save_pretrained(tmp_path / "converted")
    converted = load_pipeline(tmp_path / "converted", device="cpu")
    assert converted.config.version == "v1.0" and converted.name == "step1x-edit-v1.0"
    rebuilt = official_from_diffusers(converted.transformer.state_dict(), converted.connector.state_dict())
    assert rebuilt.keys() == dit.keys() and all(torch.equal(rebuilt[k], dit[k]) for k in dit)


def test_community_fp8_checkpoint_is_inspected_and_upcast_on_load(official_keys, qwen_folder, tmp_path):
    from model.inspection import inspect_checkpoint

    full = official_keys["dit"]() | official_keys["connector"](v10=True)
    sparse = official_keys["sparse_file"](tmp_path / "fp8.safetensors", full, dtype="F8_E4M3")
    report = inspect_checkpoint(sparse)
    assert report.compatible and report.dtypes == {"F8_E4M3": 817}

    dit, vae = official_tensors(official_keys, v10=True)
    fp8 = {k: v.to(torch.float8_e4m3fn) for k, v in dit.items()}
    folder = write_official_folder(tmp_path / "m", fp8, vae, qwen_folder, "step1x-edit-i1258-FP8.safetensors")
    pipe = load_pipeline(folder, device="cpu")
    assert pipe.transformer.dtype == torch.float32 and pipe.config.version == "v1.0"
    rebuilt = official_from_diffusers(pipe.transformer.state_dict(), pipe.connector.state_dict())
    assert all(torch.equal(rebuilt[k], fp8[k].float()) for k in fp8)


def test_text_encoder_with_missing_or_foreign_weights_is_refused(tmp_path):
    from safetensors.torch import load_file

    tiny_pipeline(seed=12).save_pretrained(tmp_path / "saved")
    (weights,) = (tmp_path / "saved" / "text_encoder").glob("*.safetensors")
    tensors = load_file(str(weights))
    dropped = sorted(tensors)[3]
    tensors.pop(dropped)
    tensors["junk.weight"] = torch.zeros(2)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(CheckpointFormatError, match="Qwen2.5-VL weights do not fit") as caught:
        load_pipeline(tmp_path / "saved", device="cpu")
    assert "junk.weight" in str(caught.value) and "missing: " in str(caught.value)


@pytest.mark.parametrize(
    ("version", "dit_name", "truncate"),
    [("v1.0", "step1x-edit-i1258.safetensors", 1.0), ("v1.1", "step1x-edit-v1p1-official.safetensors", 0.93)],
)
def test_official_folders_declare_the_official_settings_and_their_versions_truncation(
    official_keys, qwen_folder, tmp_path, version, dit_name, truncate
):
    """Read from the files before loading, and from the loaded pipeline: the same official settings; the
    Edit tab lays out its controls from them."""
    import gradio as gr

    from model.edit_settings import read_edit_settings, settings_of
    from workbench.ui import AppSettings, edit
    from workbench.ui.context import UIContext

    dit, vae = official_tensors(official_keys, v10=version == "v1.0")
    folder = write_official_folder(tmp_path / "official", dit, vae, qwen_folder, dit_name)
    before_loading = read_edit_settings(folder)
    loaded = settings_of(load_pipeline(folder, device="cpu"))
    assert before_loading == loaded
    assert (loaded.version, loaded.steps, loaded.guidance, loaded.timesteps_truncate) == (
        version,
        28,
        6.0,
        truncate,
    )
    assert loaded.size_levels == (512, 768, 1024) and loaded.size_level == 512 and loaded.native_size is None

    settings = AppSettings(data_dir=tmp_path / "data", demo_study=False, edit_settings=before_loading)
    ctx = UIContext(settings=settings, editor=None, workbench=SimpleNamespace(list_studies=lambda **_: []))
    with gr.Blocks():
        widgets = edit.layout(ctx, edit.edit_settings(ctx))
    assert (widgets.steps.value, widgets.cfg.value, widgets.truncate.value) == (28, 6.0, truncate)
    assert [value for _, value in widgets.size_level.choices] == [512, 768, 1024]
    assert widgets.size_level.value == 512 and widgets.cfg.visible and widgets.truncate.visible
    assert "side of a square" in widgets.size_level.label


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_saved_diffusers_folders_declare_their_versions_settings(tmp_path, version):
    from model.edit_settings import read_edit_settings, settings_of

    pipe = tiny_pipeline(seed=5, version=version)
    pipe.save_pretrained(tmp_path / "saved")
    declared = read_edit_settings(tmp_path / "saved")
    assert declared == settings_of(pipe) == settings_of(load_pipeline(tmp_path / "saved", device="cpu"))
    assert declared.timesteps_truncate == {"v1.0": 1.0, "v1.1": 0.93}[version]
