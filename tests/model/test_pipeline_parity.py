"""The whole pipeline against the independent official-loop re-statement (tests/model/official_math.py):
fp32, tiny config, injected noise and reference latents, <= 1e-5."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from model.image_input import resize_to_size_level
from model.tiny import tiny_pipeline

_spec = importlib.util.spec_from_file_location("official_math", Path(__file__).with_name("official_math.py"))
official = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(official)

SIZE_LEVEL = 64
STEPS = 6


def _inputs(pipe, photo, seed: int = 3):
    reference = resize_to_size_level(photo, SIZE_LEVEL)
    w, h = reference.size
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 16, h // 8, w // 8, generator=gen)
    ref_latents = torch.randn(1, 16, h // 8, w // 8, generator=gen)
    return reference, noise, ref_latents


@pytest.mark.parametrize(
    ("fixture", "guidance", "truncate"),
    [
        ("tiny_pipe", 6.0, 0.93),
        ("tiny_pipe", 6.0, 1.0),
        ("tiny_pipe", -1, 0.93),
        ("tiny_pipe_v10", 4.5, 0.93),
        ("tiny_pipe_v10", 6.0, 1.0),
    ],
)
def test_pipeline_matches_official_loop(
    request, photo, fixture: str, guidance: float, truncate: float
) -> None:
    pipe = request.getfixturevalue(fixture)
    reference, noise, ref_latents = _inputs(pipe, photo)
    prompts = ["make the car red", ""] if guidance != -1 else ["make the car red"]
    with torch.no_grad():
        embeds, mask = pipe.encode_prompt(reference, prompts)
    expected = official.official_denoise(
        pipe.connector,
        pipe.transformer,
        noise,
        ref_latents,
        embeds,
        mask,
        STEPS,
        guidance,
        truncate,
        pipe.config.version,
    )
    kwargs = dict(
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        size_level=SIZE_LEVEL,
        timesteps_truncate=truncate,
        latents=noise,
        ref_latents=ref_latents,
    )
    out = pipe(photo, "make the car red", **kwargs)
    assert out.latents.shape == expected.shape
    assert (out.latents - expected).abs().max().item() <= 1e-5
    # Decoding: the official VAE path on the reference latents, truncating to uint8.
    with torch.no_grad():
        decoded = pipe.vae.decode(expected / 0.3611 + 0.1159).sample
    pixels = decoded[0].clamp(-1, 1).mul(0.5).add(0.5).mul(255).byte().permute(1, 2, 0).numpy()
    working = pipe(photo, "make the car red", resize_back=False, **kwargs).images[0]
    assert np.abs(np.asarray(working, dtype=int) - pixels.astype(int)).max() <= 1


def test_negative_controls(tiny_pipe, tiny_pipe_v10, photo) -> None:
    """The parity test can fail: the rescale, the reference ids and the scale factor all change the result."""
    _, noise, ref_latents = _inputs(tiny_pipe, photo)
    kwargs = dict(num_inference_steps=STEPS, size_level=SIZE_LEVEL, latents=noise, ref_latents=ref_latents)
    base = tiny_pipe(photo, "make the car red", **kwargs).latents
    no_rescale = tiny_pipe(photo, "make the car red", timesteps_truncate=1.0, **kwargs).latents
    assert (base - no_rescale).abs().max() > 1e-3
    tiny_pipe.register_to_config(version="v1.0")
    try:
        v10_ids = tiny_pipe(photo, "make the car red", **kwargs).latents
    finally:
        tiny_pipe.register_to_config(version="v1.1")
    assert (base - v10_ids).abs().max() > 1e-3


def test_scheduler_shift_config_is_used(tiny_pipe) -> None:
    assert tiny_pipe._schedule_mu(1024) == pytest.approx(0.63)
    assert tiny_pipe._schedule_mu(4096) == pytest.approx(1.15)


@pytest.mark.parametrize(
    ("version", "truncate", "promoted"),
    [("v1.1", 0.93, True), ("v1.0", 1.0, False), ("v1.0", 0.93, True)],
)
def test_bf16_dtype_follows_the_official_loop(photo, version: str, truncate: float, promoted: bool) -> None:
    """In bf16 the official loop runs under autocast: the first norm-rescaled CFG step is fp32 (autocast computes
    norm and pow in fp32) and promotes the latents, so later steps use fp32 latents and unrounded timesteps.
    The v1.0 release (truncate 1.0) never rescales and stays bf16 throughout."""
    pipe = tiny_pipeline(seed=0, version=version)
    pipe.set_progress_bar_config(disable=True)
    pipe.connector.to(torch.bfloat16)
    pipe.transformer.to(torch.bfloat16)
    reference, noise, ref_latents = _inputs(pipe, photo)
    with torch.no_grad():
        embeds, mask = pipe.encode_prompt(reference, ["make the car red", ""])
    args = (pipe.connector, pipe.transformer, noise, ref_latents, embeds.to(torch.bfloat16), mask, STEPS, 6.0)
    expected = official.official_denoise(*args, truncate, version, autocast=torch.bfloat16)
    bf16_only = official.official_denoise(*args, truncate, version, autocast=torch.bfloat16, fp32_norm=False)

    timestep_dtypes: list[torch.dtype] = []
    hook = pipe.connector.register_forward_hook(
        lambda m, inputs, out: timestep_dtypes.append(inputs[1].dtype)
    )
    try:
        out = pipe(photo, "make the car red", num_inference_steps=STEPS, guidance_scale=6.0, size_level=SIZE_LEVEL,
                   timesteps_truncate=truncate, latents=noise, ref_latents=ref_latents)  # fmt: skip
    finally:
        hook.remove()
    final_dtype = torch.float32 if promoted else torch.bfloat16
    assert out.latents.dtype == expected.dtype == final_dtype
    assert timestep_dtypes == [torch.bfloat16] + [final_dtype] * (STEPS - 1)
    assert (out.latents.float() - expected.float()).abs().max().item() <= 1e-5
    # Negative control: keeping the rescale in bf16 (the latents stay bf16) is a different edit.
    gap = (bf16_only.float() - expected.float()).abs().max().item()
    assert gap > 1e-3 if promoted else gap == 0
