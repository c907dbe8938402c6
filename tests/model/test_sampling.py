"""Sampler rules against independent formulas and diffusers' FlowMatchEulerDiscreteScheduler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift

from model.latents import pack_patches, unpack_patches
from model.sampling import (
    cfg_norm_divisor,
    combine_cfg,
    get_schedule,
    latent_position_ids,
    reference_id_offset,
    schedule_mu,
)
from model.tiny import flux_scheduler


@pytest.mark.parametrize("steps", [1, 4, 28, 50])
@pytest.mark.parametrize("seq_len", [1024, 2304, 3000, 4096])
def test_schedule_matches_flow_match_scheduler(steps: int, seq_len: int) -> None:
    scheduler = flux_scheduler()
    sigmas = np.linspace(1.0, 1 / steps, steps)  # what FluxPipeline passes
    scheduler.set_timesteps(sigmas=sigmas, mu=schedule_mu(seq_len))
    ours = torch.tensor(get_schedule(steps, seq_len), dtype=torch.float64)
    assert len(ours) == steps + 1
    assert torch.allclose(ours, scheduler.sigmas.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seq_len", [16, 256, 1024, 4096, 8192])
def test_mu_equals_diffusers_calculate_shift(seq_len: int) -> None:
    assert schedule_mu(seq_len) == pytest.approx(calculate_shift(seq_len), abs=1e-12)


def test_schedule_independent_formula() -> None:
    """mu = 0.5 + (seq - 256) * 0.65 / 3840 and e^mu / (e^mu + 1/t - 1), written out by hand."""
    for seq_len, expected_mu in [(1024, 0.63), (2304, 0.5 + 2048 * 0.65 / 3840), (4096, 1.15)]:
        assert schedule_mu(seq_len) == pytest.approx(expected_mu, abs=1e-12)
        ts = get_schedule(28, seq_len)
        for i, value in enumerate(ts):
            t = 1 - i / 28
            shifted = 0.0 if t == 0 else math.exp(expected_mu) / (math.exp(expected_mu) + 1 / t - 1)
            assert value == pytest.approx(shifted, abs=1e-6)
    # Steps above the 0.93 CFG-truncate threshold: 4 / 5 / 6 at 512 / 768 / 1024 (architecture notes).
    assert [sum(t > 0.93 for t in get_schedule(28, n)[:-1]) for n in (1024, 2304, 4096)] == [4, 5, 6]


def test_schedule_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        get_schedule(0, 1024)


def _reference_cfg(cond, uncond, g, t, truncate):
    out = uncond.clone()
    for b in range(cond.shape[0]):
        for n in range(cond.shape[1]):
            diff = cond[b, n] - uncond[b, n]
            norm = math.sqrt(float((diff**2).sum()))
            divisor = norm**0.4 if (t > truncate and norm > 1.0) else 1.0
            out[b, n] = uncond[b, n] + g * diff / divisor
    return out


@pytest.mark.parametrize("t_curr", [0.99, 0.93, 0.5])
def test_cfg_rescale_matches_reference(t_curr: float) -> None:
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(1, 12, 64, generator=gen)
    uncond = cond + torch.randn(1, 12, 64, generator=gen) * torch.linspace(0.01, 1.0, 12)[None, :, None]
    ours = combine_cfg(cond, uncond, 6.0, t_curr, 0.93)
    assert torch.allclose(ours, _reference_cfg(cond, uncond, 6.0, t_curr, 0.93), atol=1e-5)


def test_cfg_divisor_by_hand() -> None:
    diff = torch.tensor([[[3.0, 4.0], [0.3, 0.4]]])  # norms 5 and 0.5
    divisor = cfg_norm_divisor(diff)
    assert divisor[0, 0, 0].item() == pytest.approx(5**0.4)
    assert divisor[0, 1, 0].item() == 1.0  # norms below 1 are not amplified
    # truncate 1.0 (v1.0 release): plain CFG at every step, even t = 1.
    plain = combine_cfg(diff, torch.zeros_like(diff), 2.0, 1.0, 1.0)
    assert torch.equal(plain, 2.0 * diff)


def test_pack_matches_flux_and_pixel_unshuffle() -> None:
    grid = torch.randn(1, 16, 6, 10)
    ours = pack_patches(grid, 2)
    assert torch.equal(ours, FluxPipeline._pack_latents(grid, 1, 16, 6, 10))
    independent = F.pixel_unshuffle(grid, 2).flatten(2).transpose(1, 2)  # channel order c*4 + i*2 + j
    assert torch.equal(ours, independent)
    assert torch.equal(unpack_patches(ours, 3, 5, 2), grid)
    assert torch.equal(FluxPipeline._unpack_latents(ours, 48, 80, 8), grid)
    pixels = torch.randn(1, 3, 8, 12)
    assert torch.equal(unpack_patches(pack_patches(pixels, 4), 2, 3, 4), pixels)


def test_position_ids_per_version() -> None:
    rows, cols = 2, 3
    target = latent_position_ids(rows, cols, 0)
    expected = [[0, r, c] for r in range(rows) for c in range(cols)]
    assert target.tolist() == expected
    v10 = latent_position_ids(rows, cols, reference_id_offset("v1.0"))
    v11 = latent_position_ids(rows, cols, reference_id_offset("v1.1"))
    assert v10.tolist() == expected
    assert v11.tolist() == [[1, r + 1, c + 1] for r in range(rows) for c in range(cols)]
    with pytest.raises(ValueError, match="unknown Step1X-Edit version"):
        reference_id_offset("v2")
