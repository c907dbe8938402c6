"""Moving between images, latent grids and DiT tokens.

Tokens are p x p patches of a [B, C, H, W] grid flattened channel-major, `b c (h p) (w p) -> b (h w) (c p p)`:
with p = 2 on VAE latents this is FLUX's packing (64-d tokens from 16 channels); the pixel-space small model
uses the same rule on RGB pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def pack_patches(grid: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)(W/p), C p p]."""
    b, c, h, w = grid.shape
    p = patch_size
    tokens = grid.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return tokens.reshape(b, (h // p) * (w // p), c * p * p)


def unpack_patches(tokens: torch.Tensor, rows: int, cols: int, patch_size: int) -> torch.Tensor:
    """[B, rows*cols, C p p] -> [B, C, rows p, cols p] (inverse of `pack_patches`)."""
    b, _, d = tokens.shape
    p = patch_size
    c = d // (p * p)
    grid = tokens.view(b, rows, cols, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(b, c, rows * p, cols * p)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float [1, 3, H, W] in [-1, 1]."""
    array = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    return array.permute(2, 0, 1).unsqueeze(0) * 2 - 1


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """[1, 3, H, W] in [-1, 1] -> PIL, truncating like torchvision's to_pil_image (`mul(255).byte()`)."""
    values = pixels[0].float().clamp(-1, 1).mul(0.5).add(0.5).mul(255).byte()
    return Image.fromarray(values.permute(1, 2, 0).cpu().numpy())
