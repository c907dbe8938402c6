"""Images shown to raters carry no ancillary PNG chunk: no text, EXIF, time or colour profile that could tell
two systems apart. A profile is applied to the pixels (converted to sRGB) before it is dropped."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from workbench.image_store import CRITICAL_CHUNKS, ImageStore, critical_chunks_only, png_chunk_types

MARKER = b"system-quenvik-9c1"


def marked_srgb_profile() -> bytes:
    """An sRGB profile with a marker string appended (the header's size field updated, so it still parses)."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + MARKER
    return struct.pack(">I", len(icc)) + icc[4:]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_every_ancillary_chunk(img: Image.Image) -> bytes:
    """A PNG carrying iCCP, tEXt, zTXt, iTXt, eXIf, tIME, pHYs, gAMA, all naming the system."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", MARKER.decode())
    info.add_text("Comment", MARKER.decode(), zip=True)
    info.add_itxt("Description", MARKER.decode(), lang="en", tkey="d")
    exif = Image.Exif()
    exif[0x0131] = MARKER.decode()  # Software
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, icc_profile=marked_srgb_profile(), exif=exif.tobytes(), dpi=(72, 72))
    data = buf.getvalue()
    extra = _chunk(b"tIME", struct.pack(">HBBBBB", 2026, 1, 2, 3, 4, 5)) + _chunk(
        b"gAMA", struct.pack(">I", 45455)
    )
    return data[:33] + extra + data[33:]  # right after IHDR


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_stored_images_have_critical_chunks_only(tmp_path, mode: str) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).convert(mode)
    hostile = png_with_every_ancillary_chunk(img)
    assert {b"iCCP", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"gAMA"} <= set(png_chunk_types(hostile))
    store = ImageStore(tmp_path)
    stored = store.path(store.put(hostile)).read_bytes()
    assert set(png_chunk_types(stored)) <= set(CRITICAL_CHUNKS), png_chunk_types(stored)
    assert MARKER not in stored and MARKER not in zlib.decompress(b"".join(_idat(stored)))


def _idat(data: bytes) -> list[bytes]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            out.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return out


def test_profile_or_no_profile_cannot_be_told_apart(tmp_path) -> None:
    """The same pixels with and without an (sRGB) profile are stored alike; the profile is applied, not kept."""
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    plain, tagged = io.BytesIO(), io.BytesIO()
    img.save(plain, "PNG")
    img.save(tagged, "PNG", icc_profile=marked_srgb_profile())
    store = ImageStore(tmp_path)
    a, b = (store.path(store.put(x.getvalue())).read_bytes() for x in (plain, tagged))
    assert png_chunk_types(a) == png_chunk_types(b)
    assert np.abs(_pixels(a) - _pixels(b)).max() <= 1  # sRGB -> sRGB through LittleCMS: at most rounding


def test_a_profile_is_applied_to_the_pixels(tmp_path) -> None:
    """A JPEG in another colour space (CMYK with an embedded profile would be typical; here LAB -> sRGB via a
    non-trivial profile pair) is converted using its profile rather than having the profile stripped."""
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    rgb = Image.new("RGB", (16, 16), (200, 60, 30))
    as_lab = ImageCms.profileToProfile(rgb, srgb, lab, outputMode="LAB")
    expected = ImageCms.profileToProfile(as_lab, lab, srgb, outputMode="RGB")
    as_lab.info["icc_profile"] = lab.tobytes()
    store = ImageStore(tmp_path)
    stored = store.path(store.put(as_lab)).read_bytes()
    assert set(png_chunk_types(stored)) <= set(CRITICAL_CHUNKS)
    assert np.abs(_pixels(stored) - np.asarray(expected, dtype=np.int16)).max() <= 2


def test_serving_filter_drops_ancillary_chunks_of_older_files() -> None:
    hostile = png_with_every_ancillary_chunk(Image.new("RGB", (8, 8), (1, 2, 3)))
    served = critical_chunks_only(hostile)
    assert set(png_chunk_types(served)) <= set(CRITICAL_CHUNKS) and MARKER not in served
    assert (_pixels(served) == _pixels(hostile)).all()
