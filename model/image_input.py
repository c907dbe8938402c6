"""Image input: load and validate user images, and the official size-level rule.

`load_image` is the single entry point for untrusted images (file path, raw bytes or a PIL image). It checks
the header before decoding (so a decompression bomb is refused without allocating it), normalises every
colour mode to 8-bit RGB and applies the EXIF orientation.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# ~40 megapixels: above any camera photo people edit here, far below what would exhaust memory.
MAX_IMAGE_PIXELS = 40_000_000
# Smaller than this cannot carry an edit; the size-level rule would upscale noise.
MIN_IMAGE_SIDE = 16
# Qwen2.5-VL's processor refuses aspect ratios above 200, and its rounding to 28 px (after the size-level
# resize) stretches extreme ratios further; 20:1 covers real panoramas with a wide margin.
MAX_ASPECT_RATIO = 20.0
# Multiple of 16: one 2x2 latent patch of the 8x-downsampling VAE.
SIDE_MULTIPLE = 16
# Transparent pixels: "white" composites them onto white (a cut-out reads as an object on a page);
# "drop" discards alpha like the official code's convert("RGB"), showing each pixel's hidden colour.
TRANSPARENCY_MODES = ("white", "drop")


class ImageInputError(ValueError):
    """The input is not a usable image (corrupt, truncated, too small, too large, unreadable)."""


ImageSource = str | Path | bytes | bytearray | Image.Image


def load_image(source: ImageSource, transparency: str = "white") -> Image.Image:
    """Open, validate and normalise an image to an 8-bit RGB PIL image with EXIF orientation applied.

    `transparency` is one of TRANSPARENCY_MODES. Raises ImageInputError (a ValueError) with a message meant
    for the end user on any bad input.
    """
    if transparency not in TRANSPARENCY_MODES:
        raise ValueError(f"transparency must be one of {TRANSPARENCY_MODES}, got {transparency!r}")
    image = _open(source)
    _check_dimensions(*image.size)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"the image file is truncated or corrupt ({exc})") from exc
    # A broken EXIF block must not lose the picture itself: keep the stored orientation then.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    _check_dimensions(*image.size)
    return _to_rgb(image, transparency)


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageInputError("the image is empty (0 bytes)")
        stream: io.BytesIO | Path = io.BytesIO(bytes(source))
    else:
        stream = Path(source)
        if not stream.is_file():
            raise ImageInputError(f"image file not found: {stream}")
    try:
        # Image.open only parses the header; our own pixel limit is checked before any decoding.
        return Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"the image is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError("the file is not a readable image (unknown or corrupt format)") from exc


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            f"the image is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP"
        )
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageInputError(
            f"the image is {width}x{height}; both sides must be at least {MIN_IMAGE_SIDE} pixels"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageInputError(
            f"the image is {width}x{height}; the aspect ratio must not exceed {MAX_ASPECT_RATIO:.0f}:1"
        )


def _to_rgb(image: Image.Image, transparency: str = "white") -> Image.Image:
    """Normalise any PIL mode to RGB: transparency onto white (or dropped), 16-bit/float scaled to 8-bit."""
    if image.mode == "P" and transparency == "drop":
        return image.convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _high_depth_to_l(image)
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA") and transparency == "white":
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8-bit; PIL's own convert would clip everything above 255 to white."""
    values = np.asarray(image, dtype=np.float64)
    if values.max(initial=0.0) > 255.0:
        values = values / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def edit_size(width: int, height: int, size_level: int, multiple: int = SIDE_MULTIPLE) -> tuple[int, int]:
    """Working resolution (w, h) for an input of width x height, exactly as the official
    `ImageGenerator.input_process_image`: area ~ size_level^2 at the same aspect ratio, sides ceiled then
    floored to multiples of `multiple` (16 for the official model: 8x VAE times 2x2 patches)."""
    ratio = width / height
    if width > height:
        new_w = math.ceil(math.sqrt(size_level * size_level * ratio))
        new_h = math.ceil(new_w / ratio)
    else:
        new_h = math.ceil(math.sqrt(size_level * size_level / ratio))
        new_w = math.ceil(new_h * ratio)
    new_w, new_h = new_w // multiple * multiple, new_h // multiple * multiple
    if new_w < multiple or new_h < multiple:
        raise ImageInputError(
            f"a {width}x{height} image at size level {size_level} leaves a side under {multiple} pixels"
        )
    return new_w, new_h


def resize_to_size_level(image: Image.Image, size_level: int, multiple: int = SIDE_MULTIPLE) -> Image.Image:
    """Resize to the working resolution with LANCZOS, as the current official code does."""
    return image.resize(edit_size(*image.size, size_level, multiple), Image.LANCZOS)
