"""Content-addressed image store: every image is kept once, as lossless PNG, named by the sha256 of its bytes.

Every input is decoded and re-encoded as PNG, which is lossless with respect to the decoded pixels and drops
metadata chunks (they can name the system that made an output, which would unblind raters).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse decompression bombs well before PIL's own (warning-only) threshold bites.
MAX_PIXELS = 64_000_000
PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}

ImageLike = str | os.PathLike | bytes | Image.Image


class ImageStoreError(ValueError):
    """An input that is not a readable image."""


def _encode_png(img: Image.Image) -> bytes:
    """PNG bytes of the pixels as viewers show them: the EXIF rotation applied (PNG output drops the tag) and
    modes PNG cannot hold (CMYK, YCbCr, LAB...) converted to RGB(A)."""
    img = ImageOps.exif_transpose(img)
    if img.mode not in PNG_MODES:
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", icc_profile=img.info.get("icc_profile"))  # colour kept, metadata dropped
    return buf.getvalue()


def _png_bytes(image: ImageLike) -> bytes:
    """Validated PNG bytes for ``image`` (a path, raw bytes, or a PIL image)."""
    if isinstance(image, Image.Image):
        return _encode_png(image)
    if isinstance(image, bytes):
        raw, label = image, "<bytes>"
    else:
        label = str(image)
        try:
            raw = Path(image).read_bytes()
        except OSError as exc:
            raise ImageStoreError(f"cannot read image {label}: {exc.strerror or exc}") from exc
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageStoreError(f"image {label} is too large ({img.width}x{img.height})")
            img.load()  # decode fully: truncated files fail here, not later in a rater's browser
            # PNGs are re-encoded too: their text/EXIF chunks often name the model that made them ("Software:
            # <system>"), which would unblind a rater who opens the file. Pixels are kept losslessly.
            return _encode_png(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageStoreError(f"not a readable image: {label} ({exc})") from exc


class ImageStore:
    """Files live at ``<root>/<first two hex>/<sha256>.png``; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the image with this sha256 lives (whether or not it exists yet)."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, image: ImageLike) -> str:
        """Store ``image`` and return its sha256 (idempotent: the same pixels/bytes give the same hash)."""
        data = _png_bytes(image)
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()
