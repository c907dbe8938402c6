"""Turn an uploaded file into a PIL image, or a clear gr.Error that says what is wrong with it."""

from __future__ import annotations

import warnings
from pathlib import Path

import gradio as gr
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # ~ 8K x 5K; the editor works at <= 1024 px anyway
LIMIT = f"the limit is {MAX_SIDE} px per side and {MAX_PIXELS // 1_000_000} megapixels"


def read_upload(path: str | Path | None) -> Image.Image:
    """Open an uploaded image as RGB (EXIF orientation applied); gr.Error for anything unusable."""
    if not path:
        raise gr.Error("Please upload an image first (PNG, JPEG or WebP).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                width, height = probe.size
                _check_size(width, height)
                image = ImageOps.exif_transpose(probe)
                image.load()
    except gr.Error:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise gr.Error(f"The image is too large to edit: {LIMIT}. Please downscale it first.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise gr.Error(
            "That file is not a readable image. Please upload a PNG, JPEG or WebP picture."
        ) from exc
    return image.convert("RGB")


def _check_size(width: int, height: int) -> None:
    if width < 16 or height < 16:
        raise gr.Error(f"The image is only {width}x{height} pixels; it needs at least 16x16.")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise gr.Error(
            f"The image is too large to edit ({width}x{height}): {LIMIT}. Please downscale it first."
        )
