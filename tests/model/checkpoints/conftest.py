"""Fixtures for the checkpoint tests: an official-layout key list written from the official model description.

This generator is deliberately independent of ``model.key_mapping``: it spells out the official modules
(``modules/model_edit.py``, ``modules/layers.py``, ``modules/connector_edit.py``, ``modules/autoencoder.py``)
as names and shapes, so a mapping bug cannot cancel itself out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

Shapes = dict[str, tuple[int, ...]]


def _linear(shapes: Shapes, name: str, out_features: int, in_features: int) -> None:
    shapes[f"{name}.weight"] = (out_features, in_features)
    shapes[f"{name}.bias"] = (out_features,)


def official_dit_shapes(
    hidden: int = 3072,
    heads: int = 24,
    depth: int = 19,
    depth_single: int = 38,
    in_channels: int = 64,
    context_dim: int = 4096,
    vec_dim: int = 768,
) -> Shapes:
    """Official ``Step1XEdit`` DiT (no connector): FLUX-schnell-shaped, qkv bias, fused single blocks."""
    mlp, head_dim, shapes = 4 * hidden, hidden // heads, {}
    _linear(shapes, "img_in", hidden, in_channels)
    _linear(shapes, "time_in.in_layer", hidden, 256)
    _linear(shapes, "time_in.out_layer", hidden, hidden)
    _linear(shapes, "vector_in.in_layer", hidden, vec_dim)
    _linear(shapes, "vector_in.out_layer", hidden, hidden)
    _linear(shapes, "txt_in", hidden, context_dim)
    for i in range(depth):
        for stream in ("img", "txt"):
            p = f"double_blocks.{i}.{stream}_"
            _linear(shapes, p + "mod.lin", 6 * hidden, hidden)
            _linear(shapes, p + "attn.qkv", 3 * hidden, hidden)
            shapes[p + "attn.norm.query_norm.scale"] = (head_dim,)
            shapes[p + "attn.norm.key_norm.scale"] = (head_dim,)
            _linear(shapes, p + "attn.proj", hidden, hidden)
            _linear(shapes, p + "mlp.0", mlp, hidden)
            _linear(shapes, p + "mlp.2", hidden, mlp)
    for i in range(depth_single):
        p = f"single_blocks.{i}."
        _linear(shapes, p + "linear1", 3 * hidden + mlp, hidden)
        _linear(shapes, p + "linear2", hidden, hidden + mlp)
        shapes[p + "norm.query_norm.scale"] = (head_dim,)
        shapes[p + "norm.key_norm.scale"] = (head_dim,)
        _linear(shapes, p + "modulation.lin", 3 * hidden, hidden)
    _linear(shapes, "final_layer.linear", in_channels, hidden)
    _linear(shapes, "final_layer.adaLN_modulation.1", 2 * hidden, hidden)
    return shapes


def official_connector_shapes(
    in_channels: int = 3584, hidden: int = 4096, depth: int = 2, pooled: int = 768, v10: bool = False
) -> Shapes:
    """Official ``Qwen2Connector`` tensors, with the ``connector.`` prefix the DiT checkpoint stores them under."""
    shapes: Shapes = {}
    p = "connector."
    _linear(shapes, p + "global_proj_out", pooled, in_channels)
    _linear(shapes, p + "S.input_embedder", hidden, in_channels)
    _linear(shapes, p + "S.t_embedder.mlp.0", hidden, 256)
    _linear(shapes, p + "S.t_embedder.mlp.2", hidden, hidden)
    _linear(shapes, p + "S.c_embedder.linear_1", hidden, in_channels)
    _linear(shapes, p + "S.c_embedder.linear_2", hidden, hidden)
    for i in range(depth):
        b = f"{p}S.individual_token_refiner.blocks.{i}."
        for norm in ("norm1", "norm2"):
            shapes[f"{b}{norm}.weight"] = (hidden,)
            shapes[f"{b}{norm}.bias"] = (hidden,)
        _linear(shapes, b + "self_attn_qkv", 3 * hidden, hidden)
        _linear(shapes, b + "self_attn_proj", hidden, hidden)
        _linear(shapes, b + "mlp.fc1", 4 * hidden, hidden)
        _linear(shapes, b + "mlp.fc2", hidden, 4 * hidden)
        _linear(shapes, b + "adaLN_modulation.1", 2 * hidden, hidden)
    if v10:
        shapes[p + "scale_factor"] = (1,)
    return shapes


def official_vae_shapes(ch: int = 128, ch_mult=(1, 2, 4, 4), num_res_blocks: int = 2, z: int = 16) -> Shapes:
    """BFL ``AutoEncoder`` (FLUX.1 ae / Step1X ``vae.safetensors``): LDM names, 1x1-conv attention."""
    shapes: Shapes = {}

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out_c, in_c, k, k)
        shapes[f"{name}.bias"] = (out_c,)

    def norm(name: str, c: int) -> None:
        shapes[f"{name}.weight"] = (c,)
        shapes[f"{name}.bias"] = (c,)

    def resnet(name: str, in_c: int, out_c: int) -> None:
        norm(name + ".norm1", in_c)
        conv(name + ".conv1", out_c, in_c, 3)
        norm(name + ".norm2", out_c)
        conv(name + ".conv2", out_c, out_c, 3)
        if in_c != out_c:
            conv(name + ".nin_shortcut", out_c, in_c, 1)

    def mid(prefix: str, c: int) -> None:
        resnet(prefix + "mid.block_1", c, c)
        norm(prefix + "mid.attn_1.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{prefix}mid.attn_1.{part}", c, c, 1)
        resnet(prefix + "mid.block_2", c, c)

    conv("encoder.conv_in", ch, 3, 3)
    block_in = ch
    for i, mult in enumerate(ch_mult):
        block_out = ch * mult
        for j in range(num_res_blocks):
            resnet(f"encoder.down.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != len(ch_mult) - 1:
            conv(f"encoder.down.{i}.downsample.conv", block_in, block_in, 3)
    mid("encoder.", block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", 2 * z, block_in, 3)

    block_in = ch * ch_mult[-1]
    conv("decoder.conv_in", block_in, z, 3)
    mid("decoder.", block_in)
    for i in reversed(range(len(ch_mult))):
        block_out = ch * ch_mult[i]
        for j in range(num_res_blocks + 1):
            resnet(f"decoder.up.{i}.block.{j}", block_in, block_out)
            block_in = block_out
        if i != 0:
            conv(f"decoder.up.{i}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", 3, block_in, 3)
    return shapes


def random_tensors(
    shapes: Shapes, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=generator).to(dtype) for k, s in shapes.items()}


def write_header_only_safetensors(
    path: Path, shapes: Shapes, dtype: str = "BF16", dtypes: dict[str, str] | None = None
) -> Path:
    """A safetensors file whose header declares ``shapes`` (in ``dtype``, or per tensor in ``dtypes``); the data
    region is a sparse hole (no disk used)."""
    import json

    widths = {"BF16": 2, "F32": 4, "F8_E4M3": 1}
    header, offset = {}, 0
    for name, shape in shapes.items():
        stored = (dtypes or {}).get(name, dtype)
        size = widths[stored]
        for s in shape:
            size *= s
        header[name] = {"dtype": stored, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path


@pytest.fixture(scope="session")
def official_keys() -> dict[str, Callable]:
    """The official-layout generators, as a fixture (test modules are imported in isolation)."""
    return {
        "dit": official_dit_shapes,
        "connector": official_connector_shapes,
        "vae": official_vae_shapes,
        "random": random_tensors,
        "sparse_file": write_header_only_safetensors,
    }
