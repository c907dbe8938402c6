"""The official Step1X-Edit sampler: shifted flow-matching schedule, Euler steps, norm-rescaled CFG.

Pure tensor functions, one concern each, so the pipeline reads like the official `denoise` loop and the tests
can check each rule on its own; `flux_scheduler` is the matching diffusers scheduler config.
"""

from __future__ import annotations

import math

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

# Token counts and shifts of the FLUX/Step1X schedule (`sampling.get_schedule`); also the scheduler config.
BASE_SEQ_LEN, MAX_SEQ_LEN = 256, 4096
BASE_SHIFT, MAX_SHIFT = 0.5, 1.15
# Exponent of the CFG difference-norm rescale (`process_diff_norm(diff_norm, k=0.4)`).
CFG_NORM_EXPONENT = 0.4
# guidance_scale == -1 switches classifier-free guidance off, as in the official code.
CFG_DISABLED = -1.0


def time_shift(mu: float, sigma: float, t: torch.Tensor) -> torch.Tensor:
    """FLUX time shift e^mu / (e^mu + (1/t - 1)^sigma); t = 0 maps to 0."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


def schedule_mu(
    image_seq_len: int,
    base_seq_len: int = BASE_SEQ_LEN,
    max_seq_len: int = MAX_SEQ_LEN,
    base_shift: float = BASE_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> float:
    """Shift parameter, linear in the number of *target* latent tokens. Same line as diffusers'
    `calculate_shift` (tested equal); importing that would load the whole FLUX pipeline module."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + slope * (image_seq_len - base_seq_len)


def get_schedule(num_steps: int, image_seq_len: int, mu: float | None = None) -> list[float]:
    """num_steps + 1 timesteps from 1 to 0, time-shifted by `mu` (default: from the token count)."""
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_steps}")
    mu = schedule_mu(image_seq_len) if mu is None else mu
    return time_shift(mu, 1.0, torch.linspace(1, 0, num_steps + 1)).tolist()


def cfg_norm_divisor(diff: torch.Tensor, exponent: float = CFG_NORM_EXPONENT) -> torch.Tensor:
    """max(1, ||cond - uncond||^k) per token over the channel axis (`process_diff_norm`), in fp32.

    fp32 because the official loop runs under CUDA autocast, whose policy computes `norm` and `pow` in fp32;
    dividing a bf16 difference by this fp32 divisor then promotes the guided velocity, and with it the
    latents of every later step, to fp32 (only while the rescale applies: never with truncate 1.0).
    """
    norm = torch.norm(diff.float(), dim=2, keepdim=True)
    return torch.where(norm > 1.0, norm.pow(exponent), torch.ones_like(norm))


def combine_cfg(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance_scale: float,
    t_curr: float,
    timesteps_truncate: float,
) -> torch.Tensor:
    """uncond + g (cond - uncond) / D; D is the norm divisor while t_curr > timesteps_truncate, else 1.
    The rescaled result is fp32 (see `cfg_norm_divisor`); the plain one keeps the input dtype."""
    diff = cond - uncond
    if t_curr > timesteps_truncate:
        return uncond + guidance_scale * diff / cfg_norm_divisor(diff)
    return uncond + guidance_scale * diff


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t_curr: float, t_next: float) -> torch.Tensor:
    """One Euler step of the flow ODE in the latent dtype, as the official loop does it."""
    return x + (t_next - t_curr) * velocity


def latent_position_ids(
    rows: int, cols: int, offset: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[rows*cols, 3] RoPE ids (offset, row + offset, col + offset) in row-major token order.

    offset 0 gives the target ids (and v1.0 reference ids); offset 1 gives the v1.1 reference ids
    (1, r+1, c+1), which start from torch.ones in the official code.
    """
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    ids = torch.stack([torch.zeros_like(r), r, c], dim=-1) + offset
    return ids.to(dtype)


def reference_id_offset(version: str) -> int:
    """Reference-token position offset per model version (v1.0: same positions as the target)."""
    offsets = {"v1.0": 0, "v1.1": 1}
    if version not in offsets:
        raise ValueError(f"unknown Step1X-Edit version {version!r}; expected one of {sorted(offsets)}")
    return offsets[version]


def flux_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """FLUX.1's scheduler config (dynamic exponential shift 0.5..1.15 over 256..4096 tokens)."""
    return FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=BASE_SHIFT,
        max_shift=MAX_SHIFT,
        base_image_seq_len=BASE_SEQ_LEN,
        max_image_seq_len=MAX_SEQ_LEN,
        time_shift_type="exponential",
    )
