"""load_image on hostile and unusual inputs; the official size-level rule."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from model.encoder import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, qwen_vl_utils_resize
from model.image_input import MAX_IMAGE_PIXELS, ImageInputError, edit_size, load_image, resize_to_size_level


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_non_image_bytes() -> None:
    with pytest.raises(ImageInputError, match="not a readable image"):
        load_image(b"%PDF-1.4 definitely not an image")
    with pytest.raises(ImageInputError, match="empty"):
        load_image(b"")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ImageInputError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_truncated_file() -> None:
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_too_small() -> None:
    with pytest.raises(ImageInputError, match="at least"):
        load_image(_png_bytes(Image.new("RGB", (1, 1))))


def test_decompression_bomb_refused_from_header() -> None:
    bomb = _png_header_only(30000, 30000)
    assert len(bomb) < 200
    with pytest.raises(ImageInputError, match="too large"):
        load_image(bomb)
    # Below PIL's own bomb threshold but above ours: refused from the header, before decoding.
    with pytest.raises(ImageInputError, match=r"10000x5000 \(50 MP\)"):
        load_image(_png_header_only(10000, 5000))
    assert MAX_IMAGE_PIXELS < 10000 * 5000


def test_extreme_aspect_ratio() -> None:
    with pytest.raises(ImageInputError, match="aspect ratio"):
        load_image(Image.new("RGB", (20 * 250, 20)))
    # The widest accepted panorama still fits the official Qwen image processor after all resizes.
    panorama = load_image(Image.new("RGB", (4000, 200)))
    for level in (512, 1024):
        qwen_image = qwen_vl_utils_resize(resize_to_size_level(panorama, level))
        processor = Qwen2VLImageProcessorPil(min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS)
        assert processor(images=[qwen_image], return_tensors="pt")["image_grid_thw"].shape == (1, 3)


def test_error_is_a_value_error() -> None:
    assert issubclass(ImageInputError, ValueError)


def test_rgba_composited_on_white() -> None:
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    out = load_image(_png_bytes(image))
    assert out.mode == "RGB"
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_transparency_dropped_as_official_shows_the_hidden_colour() -> None:
    """transparency="drop" is the official convert("RGB"): alpha is discarded, not composited."""
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(_png_bytes(image), transparency="drop")
    assert out.getpixel((5, 5)) == (255, 0, 0) and out.getpixel((0, 0)) == (0, 0, 255)
    grey = Image.new("LA", (32, 32), (10, 0))  # transparent near-black greyscale
    assert load_image(_png_bytes(grey), transparency="drop").getpixel((1, 1)) == (10, 10, 10)
    assert load_image(_png_bytes(grey)).getpixel((1, 1)) == (255, 255, 255)
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([255, 0, 0] + [0] * 765)
    palette.info["transparency"] = 0
    assert load_image(_png_bytes(palette), transparency="drop").getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ValueError, match="transparency must be one of"):
        load_image(_png_bytes(image), transparency="black")


def test_cmyk_jpeg() -> None:
    buffer = io.BytesIO()
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(buffer, format="JPEG", quality=95)  # red ink
    out = load_image(buffer.getvalue())
    r, g, b = out.getpixel((16, 16))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_greyscale_scaled_not_clipped() -> None:
    values = np.full((32, 32), 32768, dtype=np.uint16)  # mid grey in 16 bits
    out = load_image(_png_bytes(Image.fromarray(values)))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (128, 128, 128)  # PIL's plain convert would clip this to white


def test_palette_with_transparency() -> None:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((3, 3), 1)
    image.info["transparency"] = 0  # index 0 (red) is transparent
    out = load_image(_png_bytes(image))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((3, 3)) == (0, 255, 0)


def test_exif_rotation_applied() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(buffer.getvalue())
    assert out.size == (20, 40)
    assert sum(out.getpixel((10, 3))) > 600  # the stripe is now on top


def test_accepts_path_bytes_and_pil(tmp_path) -> None:
    image = Image.new("L", (32, 24), 77)
    path = tmp_path / "grey.png"
    image.save(path)
    for source in (path, str(path), path.read_bytes(), image):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (32, 24) and out.getpixel((0, 0)) == (77, 77, 77)


@pytest.mark.parametrize(
    ("size", "level", "expected"),
    [
        ((1024, 768), 512, (592, 432)),
        ((1024, 768), 1024, (1168, 880)),
        ((1920, 1080), 1024, (1360, 768)),
        ((768, 1024), 512, (432, 592)),
        ((512, 512), 512, (512, 512)),
        ((1000, 1000), 768, (768, 768)),
        ((1024, 1536), 1024, (832, 1248)),
    ],
)
def test_size_level_rule(size, level, expected) -> None:
    assert edit_size(*size, level) == expected


def test_size_level_rule_for_other_token_sizes() -> None:
    w, h = edit_size(1024, 768, 32, multiple=4)
    assert (w, h) == (36, 28) and w % 4 == 0 and h % 4 == 0


def test_real_photos(examples_dir) -> None:
    """The shared example photos load, follow the size rule, and the official outputs keep the input size."""
    prompts = json.loads((examples_dir / "prompt_en.json").read_text())
    for name in prompts:
        photo = load_image(examples_dir / name)
        assert photo.mode == "RGB"
        for level in (512, 1024):
            w, h = resize_to_size_level(photo, level).size
            assert w % 16 == 0 and h % 16 == 0
            assert abs(w * h - level * level) / (level * level) < 0.1
        official = Image.open(examples_dir / "outputs_en_1024" / name)
        assert official.size == photo.size  # outputs are resized back to the input size
