"""Content-addressed image store: every image is kept once, as lossless PNG, named by the sha256 of its bytes.

Every input is decoded and re-encoded as PNG, which is lossless with respect to the decoded pixels, and written
with critical chunks only (IHDR, PLTE, IDAT, IEND). Any ancillary chunk can unblind a rater: text chunks name the
model that made an output, an ICC profile can carry a marker, and even "profile or no profile" tells two
systems apart. So a colour profile is applied (pixels converted to sRGB) and then dropped, transparency is
kept as an alpha channel (not a tRNS chunk), and everything else is discarded.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Refuse decompression bombs well before PIL's own (warning-only) threshold bites.
MAX_PIXELS = 64_000_000
PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CRITICAL_CHUNKS = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

ImageLike = str | os.PathLike | bytes | Image.Image


class ImageStoreError(ValueError):
    """An input that is not a readable image."""


def _to_srgb(img: Image.Image) -> Image.Image:
    """Pixels converted from the embedded ICC profile to sRGB; unchanged when there is no usable profile."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    target = "RGBA" if "A" in img.getbands() else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, _SRGB, outputMode=target) or img
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img  # a broken or unsupported profile (e.g. 16-bit grey): keep the decoded pixels as they are


def _without_transparency_chunk(img: Image.Image) -> Image.Image:
    """Palette or single-colour transparency (a tRNS chunk) as an alpha channel instead."""
    if "transparency" not in img.info:
        return img
    return img.convert("LA" if img.mode in ("1", "L") else "RGBA")


def _encode_png(img: Image.Image) -> bytes:
    """PNG bytes of the pixels as viewers show them, with critical chunks only: the EXIF rotation applied (PNG
    output drops the tag), the colour profile applied, modes PNG cannot hold (CMYK, YCbCr, LAB...) converted to
    RGB(A)."""
    img = _without_transparency_chunk(_to_srgb(ImageOps.exif_transpose(img)))
    if img.mode not in PNG_MODES:
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    clean = img.copy()
    clean.info = {}  # PIL writes iCCP and tRNS from .info by default
    buf = io.BytesIO()
    clean.save(buf, format="PNG")
    return buf.getvalue()


def _chunk_spans(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk of a PNG file; ValueError if it is not a well-formed PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    spans, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        spans.append((kind, pos, end))
        pos = end
    return spans


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order (b"IHDR", b"IDAT", ...)."""
    return [kind for kind, _, _ in _chunk_spans(data)]


def critical_chunks_only(data: bytes) -> bytes:
    """The PNG with every ancillary chunk removed (the pixels are untouched).

    Defence in depth when serving: images stored by older versions may still carry chunks the store now drops.
    """
    kept = [data[start:end] for kind, start, end in _chunk_spans(data) if kind in CRITICAL_CHUNKS]
    return PNG_SIGNATURE + b"".join(kept)


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
