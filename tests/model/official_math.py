"""Independent re-statement of the official Step1X-Edit sampling math (inference.py, sampling.py), written
for the parity tests without using any helper of the `model` package.

It runs the official loop literally: duplicate the state for [cond, uncond], call connector + DiT on
[target ; reference] tokens, slice the targets, combine with the per-token norm rescale, Euler-step, and
re-insert the untouched reference tokens.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def pack(grid: torch.Tensor) -> torch.Tensor:
    """b c (h 2) (w 2) -> b (h w) (c 2 2), via pixel_unshuffle."""
    return F.pixel_unshuffle(grid, 2).flatten(2).transpose(1, 2)


def unpack(tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return F.pixel_shuffle(tokens.transpose(1, 2).reshape(tokens.shape[0], -1, rows, cols), 2)


def ids(rows: int, cols: int, base: float) -> torch.Tensor:
    """Official: torch.zeros / torch.ones(h, w, 3), then [..., 1] += row and [..., 2] += col."""
    grid = torch.full((rows, cols, 3), base)
    grid[..., 1] += torch.arange(rows)[:, None]
    grid[..., 2] += torch.arange(cols)[None, :]
    return grid.reshape(rows * cols, 3)


def schedule(steps: int, seq_len: int) -> list[float]:
    """Official `get_schedule`: fp32 linspace, shifted in fp32 (t = 0 -> 1/0 = inf -> 0)."""
    mu = 0.5 + (seq_len - 256) * (1.15 - 0.5) / (4096 - 256)
    t = torch.linspace(1, 0, steps + 1)
    return (math.exp(mu) / (math.exp(mu) + (1 / t - 1))).tolist()


def cfg(
    cond: torch.Tensor, uncond: torch.Tensor, scale: float, t: float, truncate: float, fp32_norm: bool = True
) -> torch.Tensor:
    """`fp32_norm`: CUDA autocast's policy runs `torch.norm` and `pow` in fp32, so the divisor is fp32 and the
    division promotes a bf16 difference (False: the divisor stays in the input dtype, a negative control)."""
    if t > truncate:
        diff = cond - uncond
        norm = torch.linalg.vector_norm(diff.float() if fp32_norm else diff, dim=-1, keepdim=True)
        divisor = torch.where(norm > 1, norm**0.4, torch.ones_like(norm))
        return uncond + scale * (cond - uncond) / divisor
    return uncond + scale * (cond - uncond)


@torch.no_grad()
def official_denoise(
    connector,
    transformer,
    noise: torch.Tensor,
    ref_latents: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    guidance: float,
    truncate: float,
    version: str,
    autocast: torch.dtype | None = None,
    fp32_norm: bool = True,
) -> torch.Tensor:
    """Final latent grid [1, C, h, w] of the official loop, from noise and reference latents.

    `autocast=torch.bfloat16` runs it as `generate` does in bf16: noise and reference in bf16, the loop under
    autocast, `t_vec` in the latents' current dtype (`torch.full(..., dtype=img.dtype)`).
    """
    if autocast is not None:
        noise, ref_latents = noise.to(autocast), ref_latents.to(autocast)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        return _loop(
            connector,
            transformer,
            noise,
            ref_latents,
            embeds,
            mask,
            steps,
            guidance,
            truncate,
            version,
            fp32_norm,
        )


def _loop(
    connector, transformer, noise, ref_latents, embeds, mask, steps, guidance, truncate, version, fp32_norm
):
    rows, cols = noise.shape[2] // 2, noise.shape[3] // 2
    n = rows * cols
    ref = pack(ref_latents)
    img = torch.cat([pack(noise), ref], dim=1)
    img_ids = torch.cat([ids(rows, cols, 0.0), ids(rows, cols, 0.0 if version == "v1.0" else 1.0)])
    txt_ids = torch.zeros(embeds.shape[1], 3)
    for t_curr, t_prev in itertools.pairwise(schedule(steps, n)):
        if guidance != -1:
            img = torch.cat([img, img])
        t_vec = torch.full((img.shape[0],), t_curr, dtype=img.dtype)
        txt, y = connector(embeds[: img.shape[0]], t_vec, mask[: img.shape[0]])
        pred = transformer(
            hidden_states=img,
            encoder_hidden_states=txt,
            pooled_projections=y,
            timestep=t_vec,
            img_ids=img_ids,
            txt_ids=txt_ids,
        ).sample[:, :n]
        if guidance != -1:
            pred = cfg(pred[:1], pred[1:], guidance, t_curr, truncate, fp32_norm)
        img = torch.cat([img[:1, :n] + (t_prev - t_curr) * pred, ref], dim=1)
    return unpack(img[:, :n], rows, cols)
