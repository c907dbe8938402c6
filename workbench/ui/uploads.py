"""Turn an uploaded file into a PIL image, or a clear gr.Error that says what is wrong with it."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import gradio as gr
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # ~ 8K x 5K; the editor works at <= 1024 px anyway
LIMIT = f"the limit is {MAX_SIDE} px per side and {MAX_PIXELS // 1_000_000} megapixels"
UNREADABLE = (Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError, OSError,
              SyntaxError, ValueError)  # fmt: skip


def upload_error(exc: BaseException) -> gr.Error:
    """The message a user sees for an upload PIL cannot take."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return gr.Error(f"The image is too large to edit: {LIMIT}. Please downscale it first.")
    return gr.Error("That file is not a readable image. Please upload a PNG, JPEG or WebP picture.")


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
    except UNREADABLE as exc:
        raise upload_error(exc) from exc
    return image.convert("RGB")


def _check_size(width: int, height: int) -> None:
    if width < 16 or height < 16:
        raise gr.Error(f"The image is only {width}x{height} pixels; it needs at least 16x16.")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise gr.Error(
            f"The image is too large to edit ({width}x{height}): {LIMIT}. Please downscale it first."
        )


def clear_upload_errors(component: gr.Image) -> gr.Image:
    """Make `component` report unusable uploads (not an image, decompression bomb) as a clear gr.Error.

    Gradio opens the upload while preprocessing, before the handler runs, and reports failures as a bare
    "Error". The instance's preprocess is wrapped rather than subclassing gr.Image, because Gradio writes a
    .pyi stub next to the source of every Component subclass when it is defined.
    """
    inner = component.preprocess

    @functools.wraps(inner)
    def preprocess(payload):  # same signature as gr.Image.preprocess
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                return inner(payload)
            except gr.Error:
                raise
            except UNREADABLE as exc:
                raise upload_error(exc) from exc

    component.preprocess = preprocess
    return component
