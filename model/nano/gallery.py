"""Pictures for the model card: source | model output | ground truth, enlarged, with the instruction and
the check's verdict under each row."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from model.nano.checks import CheckResult, check_edit
from model.nano.world import FONT_PATH, Triplet

SCALE = 4  # 32 px pictures shown at 128 px (nearest neighbour: the pixels the check sees)
ROW_TEXT = 34  # pixels under each row for the instruction and the verdict
GAP = 6


def edit_all(
    pipe, triplets: Iterable[Triplet], seed: int = 0
) -> list[tuple[Triplet, Image.Image, CheckResult]]:
    """(triplet, output, check) for every triplet, one pipeline call each."""
    results = []
    for index, triplet in enumerate(triplets):
        output = pipe(triplet.source, triplet.instruction, seed=seed + index).images[0]
        results.append((triplet, output, check_edit(triplet, output)))
    return results


def contact_sheet(results: list[tuple[Triplet, Image.Image, CheckResult]], path: str | Path) -> Path:
    """Save a sheet with one row per edit: source, output, target, then the instruction and verdict."""
    if not results:
        raise ValueError("no edits to show")
    side = results[0][0].source.size[0] * SCALE
    width = 3 * side + 4 * GAP
    row_height = side + ROW_TEXT + GAP
    sheet = Image.new("RGB", (width, GAP + len(results) * row_height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(FONT_PATH), 11)
    for row, (triplet, output, result) in enumerate(results):
        y = GAP + row * row_height
        for col, image in enumerate((triplet.source, output, triplet.target)):
            big = image.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(big, (GAP + col * (side + GAP), y))
        verdict = "pass" if result.success else f"fail: {result.reason}"
        draw.text(
            (GAP, y + side + 3),
            _fit(draw, triplet.instruction, font, width - 2 * GAP),
            fill="black",
            font=font,
        )
        colour = (20, 120, 40) if result.success else (190, 30, 30)
        draw.text(
            (GAP, y + side + 17),
            _fit(draw, f"{triplet.category}: {verdict}", font, width - 2 * GAP),
            fill=colour,
            font=font,
        )
    path = Path(path)
    sheet.save(path)
    return path


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, shortened with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
