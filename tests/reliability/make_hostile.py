"""Generate hostile inputs for the reliability tests (never downloads anything).

Usage: ``python tests/reliability/make_hostile.py OUT_DIR``. Writes the files plus ``cases.json``, one entry per
case: ``{"name", "kind", "path" | "text", "expect", "check"}`` where ``kind`` is ``image``, ``instruction`` or
``import``, ``expect`` is ``error`` (must be refused with a clear message), ``ok`` (must give a correct result)
or ``either`` (a clear refusal or a correct result are both acceptable), and ``check`` holds what a correct
result looks like. Nothing generated here is committed: tests call :func:`generate` into ``tmp_path``.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

# Colours that survive JPEG compression within a small tolerance.
RED, BLUE = (220, 30, 30), (30, 30, 220)


@dataclass
class Case:
    """One hostile input and what a correct handling of it looks like."""

    name: str
    kind: str
    expect: str
    path: str | None = None
    text: str | None = None
    check: dict = field(default_factory=dict)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _two_tone(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Left half red, right half blue: orientation and colour are both checkable."""
    img = Image.new("RGB", size, RED)
    img.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return img


def tagged_png(system: str, colour: tuple[int, int, int], size: int = 32) -> bytes:
    """A model output whose PNG text chunk names the system that made it (as many pipelines write): storing it
    byte-for-byte would unblind a rater who opens the file."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"{system} pipeline")
    return _save(Image.new("RGB", (size, size), colour), "PNG", pnginfo=info)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but carries almost no pixel data (a header bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_real_bomb(side: int = 20000) -> bytes:
    """A real decompression bomb: ``side``² 1-bit pixels of zeros, about 50 kB on disk, 400 MP decoded."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_huge_header(width: int = 65000, height: int = 65000) -> bytes:
    """A small JPEG whose SOF0 header is patched to claim enormous dimensions."""
    data = bytearray(_save(_two_tone(), "JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _corrupt_png() -> bytes:
    """Flip bytes inside the IDAT payload so the CRC and the zlib stream are both wrong."""
    data = bytearray(_save(_two_tone(), "PNG"))
    idat = data.find(b"IDAT") + 8
    for i in range(idat, min(idat + 16, len(data) - 12)):
        data[i] ^= 0xFF
    return bytes(data)


def _exif_rotated() -> bytes:
    """Stored 64x48 red-left/blue-right; EXIF orientation 6 means "rotate 90° clockwise to display"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_two_tone(), "JPEG", exif=exif, quality=95)


def _sixteen_bit() -> bytes:
    """A 16-bit greyscale image at half intensity: a correct conversion gives mid-grey, not white."""
    return _save(Image.new("I;16", (32, 32), 32768), "PNG")


def _cmyk() -> bytes:
    img = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    return _save(img, "JPEG", quality=95)


def _palette(transparency: bool) -> bytes:
    img = _two_tone().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return _save(img, "PNG", transparency=0) if transparency else _save(img, "PNG")


def _rgba() -> bytes:
    img = _two_tone().convert("RGBA")
    img.putpixel((0, 0), (0, 0, 0, 0))  # one transparent pixel; the rest are opaque
    return _save(img, "PNG")


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in (RED, BLUE, (20, 200, 20))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)><script>alert(1)</script></body></html>"


def image_cases() -> list[tuple[Case, bytes]]:
    """Hostile and awkward image files with the handling each one needs."""
    return [(replace(case, path=f"images/{case.path}"), payload) for case, payload in _image_payloads()]


def _image_payloads() -> list[tuple[Case, bytes]]:
    png, jpg, webp = (_save(_two_tone(), f) for f in ("PNG", "JPEG", "WEBP"))
    ok_two_tone = {"size": [64, 48], "left": list(RED), "right": list(BLUE)}
    return [
        (Case("truncated_png", "image", "error", "truncated.png"), png[: len(png) // 2]),
        (Case("truncated_jpeg", "image", "error", "truncated.jpg"), jpg[: len(jpg) // 2]),
        (Case("truncated_webp", "image", "error", "truncated.webp"), webp[: len(webp) // 2]),
        (Case("corrupt_png", "image", "error", "corrupt.png"), _corrupt_png()),
        (Case("corrupt_jpeg_header", "image", "error", "corrupt.jpg"), b"\xff\xd8\xff\xe0" + b"\x13" * 400),
        (Case("random_bytes_webp", "image", "error", "random.webp"), bytes(range(256)) * 8),
        (Case("bomb_png_header", "image", "error", "bomb_header.png"), _png_header_only(100_000, 100_000)),
        (Case("bomb_png_real", "image", "error", "bomb_real.png"), _png_real_bomb()),
        # 144 MP sits in Pillow's warn-only zone (89-179 MP): only an explicit limit refuses it.
        (Case("bomb_png_warn_zone", "image", "error", "bomb_warn_zone.png"), _png_real_bomb(12000)),
        (Case("bomb_jpeg_header", "image", "error", "bomb_header.jpg"), _jpeg_huge_header()),
        (Case("empty_png", "image", "error", "empty.png"), b""),
        (Case("empty_jpeg", "image", "error", "empty.jpg"), b""),
        (Case("svg_as_png", "image", "error", "svg_disguised.png"), SVG),
        (Case("html_as_jpeg", "image", "error", "html_disguised.jpg"), HTML),
        (Case("tiny_1x1", "image", "either", "one_pixel.png", check={"size": [1, 1]}),
         _save(Image.new("RGB", (1, 1), RED), "PNG")),
        (Case("wide_20000x20", "image", "either", "wide.png", check={"size": [20000, 20]}),
         _save(Image.new("RGB", (20000, 20), RED), "PNG")),
        (Case("plain_png", "image", "ok", "plain.png", check=ok_two_tone), png),
        (Case("plain_webp", "image", "ok", "plain.webp", check=ok_two_tone), _save(_two_tone(), "WEBP", lossless=True)),
        (Case("cmyk_jpeg", "image", "ok", "cmyk.jpg", check={"size": [32, 32], "left": [255, 0, 0]}), _cmyk()),
        (Case("sixteen_bit_png", "image", "ok", "sixteen_bit.png", check={"size": [32, 32], "left": [128, 128, 128]}),
         _sixteen_bit()),
        (Case("palette_png", "image", "ok", "palette.png", check=ok_two_tone), _palette(False)),
        (Case("palette_transparent_png", "image", "ok", "palette_trns.png", check={"size": [64, 48]}), _palette(True)),
        (Case("rgba_png", "image", "ok", "rgba.png", check=ok_two_tone), _rgba()),
        (Case("greyscale_alpha_png", "image", "ok", "la.png", check={"size": [16, 16], "left": [90, 90, 90]}),
         _save(Image.new("LA", (16, 16), (90, 255)), "PNG")),
        (Case("bilevel_png", "image", "ok", "bilevel.png", check={"size": [16, 16], "left": [255, 255, 255]}),
         _save(Image.new("1", (16, 16), 1), "PNG")),
        # Displayed 48x64 after the EXIF rotation; red ends up on top, so the left column is red at the top.
        (Case("exif_rotated_jpeg", "image", "ok", "exif_rotated.jpg", check={"size": [48, 64], "top": list(RED), "bottom": list(BLUE)}),
         _exif_rotated()),
        (Case("animated_gif", "image", "either", "animated.gif", check={"size": [40, 30], "left": list(RED)}), _animated_gif()),
    ]  # fmt: skip


INSTRUCTIONS: list[Case] = [
    Case("instr_empty", "instruction", "error", text=""),
    Case("instr_whitespace", "instruction", "error", text=" \t\n  \u3000 "),
    Case("instr_10k", "instruction", "either", text="make the sky purple " * 500),
    Case("instr_emoji", "instruction", "ok", text="make the 🐱 wear a 🎩 👨‍👩‍👧"),
    Case("instr_rtl", "instruction", "ok", text="اجعل السماء زرقاء \u202eevil\u202c"),
    Case("instr_chinese", "instruction", "ok", text="把天空变成紫色"),
    Case("instr_control", "instruction", "either", text="make it red\x00\x07\x1b[31m"),
    Case("instr_sql", "instruction", "ok", text="red'); DROP TABLE votes;-- \" OR 1=1"),
    Case(
        "instr_html",
        "instruction",
        "ok",
        text="<img src=x onerror=window.__pwned=1><script>alert(1)</script>",
    ),
]


_PROBES = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75)}


def as_displayed(path: str | Path) -> Image.Image:
    """A stored file the way a browser renders it: EXIF orientation applied, 16-bit scaled, flattened to RGB."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I"):  # Pillow's own convert clips these to white
            img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).round().astype(np.uint8))
        return img.convert("RGB")


def mismatches(img: Image.Image, check: dict, tolerance: int = 14) -> list[str]:
    """What is wrong with ``img`` as a result for a case with ``check`` (empty list: it is correct)."""
    problems = [] if img.mode == "RGB" else [f"mode {img.mode}, expected RGB"]
    if "size" in check and list(img.size) != check["size"]:
        problems.append(f"size {list(img.size)}, expected {check['size']}")
        return problems
    for probe, (fx, fy) in _PROBES.items():
        if probe in check:
            xy = (int(img.width * fx), int(img.height * fy))
            got = img.convert("RGB").getpixel(xy)
            if max(abs(a - b) for a, b in zip(got, check[probe], strict=True)) > tolerance:
                problems.append(f"{probe} pixel {got}, expected about {tuple(check[probe])}")
    return problems


def _jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def _item(i: int, **over: object) -> dict:
    return {"source": "img/source.png", "instruction": f"make item {i} brighter 🌅", "key": f"item-{i}",
            "outputs": {"sys-a": "img/a.png", "sys-b": "img/b.png"}, **over}  # fmt: skip


def _battle(winner: str = "model_a", a: str = "sys-a", b: str = "sys-b", q: str = "q1") -> dict:
    return {"model_a": a, "model_b": b, "winner": winner, "question_id": q}


# (name, importer, file, content, expect, check): "rows" = rows a correct import adds to its table.
IMPORTS: list[tuple[str, str, str, str, str, dict]] = [
    ("manifest_ok", "manifest", "ok.jsonl", _jsonl(_item(1), _item(2)), "ok", {"table": "items", "rows": 2}),
    ("manifest_csv_ok", "manifest", "ok.csv",
     "source,instruction,key,output:sys-a,output:sys-b\nimg/source.png,\"red, then blue\",c1,img/a.png,img/b.png\n",
     "ok", {"table": "items", "rows": 1}),
    ("manifest_invalid_json", "manifest", "broken.jsonl", _jsonl(_item(1), '{"source": img/source.png}'), "error", {}),
    ("manifest_partial", "manifest", "partial.jsonl", _jsonl(_item(1))[:-1] + '\n{"source": "img/sou', "error", {}),
    ("manifest_not_object", "manifest", "array.jsonl", _jsonl(_item(1), "[1, 2]"), "error", {}),
    ("manifest_empty", "manifest", "empty.jsonl", "", "error", {}),
    ("manifest_blank_lines_only", "manifest", "blank.jsonl", "\n\n  \n", "error", {}),
    ("manifest_wrong_type", "manifest", "manifest.txt", _jsonl(_item(1)), "error", {}),
    ("manifest_csv_ragged", "manifest", "ragged.csv",
     "source,instruction,output:sys-a,output:sys-b\nimg/source.png,x,img/a.png,img/b.png,extra\n", "error", {}),
    ("manifest_missing_instruction", "manifest", "noinstr.jsonl", _jsonl(_item(1), _item(2, instruction="  ")), "error", {}),
    ("manifest_nul_instruction", "manifest", "nul.jsonl", _jsonl(_item(1), _item(2, instruction="red\x00")), "error", {}),
    ("manifest_one_output", "manifest", "oneout.jsonl", _jsonl(_item(1), _item(2, outputs={"sys-a": "img/a.png"})), "error", {}),
    ("manifest_unknown_column", "manifest", "unknowncol.jsonl", _jsonl(_item(1), _item(2, sytem="typo")), "error", {}),
    ("manifest_traversal", "manifest", "traversal.jsonl", _jsonl(_item(1), _item(2, source="../outside/secret.png")), "error", {}),
    ("manifest_absolute_outside", "manifest", "absolute.jsonl", _jsonl(_item(1), _item(2, source="/etc/hostname")), "error", {}),
    ("manifest_symlink_out", "manifest", "symlink.jsonl", _jsonl(_item(1), _item(2, source="img/escape.png")), "error", {}),
    ("manifest_missing_file", "manifest", "missing.jsonl", _jsonl(_item(1), _item(2, source="img/nope.png")), "error", {}),
    ("manifest_hostile_image", "manifest", "hostileimg.jsonl",
     _jsonl(_item(1), _item(2, outputs={"sys-a": "img/a.png", "sys-b": "img/truncated.png"})), "error", {}),
    ("manifest_duplicate_item_key", "manifest", "dupkey.jsonl", _jsonl(_item(1), _item(1)), "error", {}),
    # A JSON object with the same field twice: json.loads keeps the last; refusing it is also fine.
    ("manifest_duplicate_json_field", "manifest", "dupfield.jsonl",
     '{"instruction": "first", "instruction": "second", "source": "img/source.png", "outputs": {"sys-a": "img/a.png", "sys-b": "img/b.png"}}\n',
     "either", {"table": "items", "rows": 1}),
    ("manifest_unknown_system", "manifest", "unknownsys.jsonl",
     _jsonl(_item(1), _item(2, outputs={"sys-a": "img/a.png", "sys-zzz": "img/b.png"})), "error", {"systems": ["sys-a", "sys-b"]}),
    ("battles_ok", "battles", "battles.jsonl", _jsonl(_battle(), _battle("tie", q="q2")), "ok", {"table": "imported_battles", "rows": 2}),
    ("battles_unknown_system", "battles", "battles_unknown.jsonl", _jsonl(_battle(), _battle(b="sys-zzz", q="q3")), "error", {}),
    ("battles_duplicate", "battles", "battles_dup.jsonl", _jsonl(_battle(), _battle()), "error", {}),
    ("battles_bad_winner", "battles", "battles_winner.jsonl", _jsonl(_battle(), _battle("A", q="q4")), "error", {}),
    ("battles_self", "battles", "battles_self.jsonl", _jsonl(_battle(), _battle(b="sys-a", q="q5")), "error", {}),
    ("finetune_invalid_json", "finetune", "finetune.json", '{"img/a.png": {"ref_image_path": "img/source.png", ', "error", {}),
    ("finetune_traversal", "finetune", "finetune_trav.json",
     json.dumps({"img/a.png": {"ref_image_path": "../outside/secret.png", "caption": "x"}}), "error", {}),
]  # fmt: skip


def import_cases(out: Path) -> list[Case]:
    """Write the import folder (images, a symlink leading out of it, manifests) and return its cases."""
    imports, outside = out / "imports", out / "outside"
    (imports / "img").mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    two_tone = _save(_two_tone(), "PNG")
    for name, data in {"source.png": two_tone, "a.png": _save(Image.new("RGB", (64, 48), RED), "PNG"),
                       "b.png": _save(Image.new("RGB", (64, 48), BLUE), "PNG"), "truncated.png": two_tone[:60]}.items():  # fmt: skip
        (imports / "img" / name).write_bytes(data)
    (outside / "secret.png").write_bytes(two_tone)
    link = imports / "img" / "escape.png"
    if not link.is_symlink():
        link.symlink_to(outside / "secret.png")
    cases = []
    for name, importer, filename, content, expect, check in IMPORTS:
        (imports / filename).write_text(content, encoding="utf-8")
        cases.append(
            Case(name, "import", expect, path=f"imports/{filename}", check={"importer": importer, **check})
        )
    return cases


def generate(out_dir: Path | str) -> list[Case]:
    """Write every hostile case under ``out_dir`` and return them (also written to ``cases.json``)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for case, payload in image_cases():
        (out / case.path).write_bytes(payload)
        cases.append(case)
    cases.extend(INSTRUCTIONS)
    cases.extend(import_cases(out))
    (out / "cases.json").write_text(json.dumps([asdict(c) for c in cases], ensure_ascii=False, indent=1))
    return cases


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_hostile.py OUT_DIR")
    made = generate(sys.argv[1])
    print(f"wrote {len(made)} hostile cases to {sys.argv[1]}")
