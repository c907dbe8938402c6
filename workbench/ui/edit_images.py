"""Pictures around an edit: what the model is given, how results are shown, and how downloads are named.

A native-size model (the embedded toy model) edits only at its own small size. Its input is reduced to that
size here (BOX filter, so a toy scene shown enlarged comes back pixel for pixel) and its results are shown
enlarged with square pixels, never stretched to the size of an uploaded photo.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from model.edit_settings import EditSettings
from model.image_input import edit_size
from workbench.image_store import ImageStore

DISPLAY_SIDE = 256  # longest side, in screen pixels, of a native-size model's pictures


def fit_to_model(image: Image.Image, settings: EditSettings) -> tuple[Image.Image, str]:
    """The picture the model edits, and a notice when a photo had to be reduced for it ("" otherwise)."""
    if settings.native_size is None:
        return image, ""
    size = edit_size(*image.size, settings.native_size, settings.side_multiple)
    working = image.resize(size, Image.Resampling.BOX) if image.size != size else image
    if _is_enlarged(working, image):
        return working, ""
    n = settings.native_size
    return working, (
        f"The embedded model edits {n}×{n} toy scenes; your photo ({image.width}×{image.height}) was reduced "
        f"to {size[0]}×{size[1]} pixels for this edit. Load the full model for photos."
    )


def _is_enlarged(small: Image.Image, shown: Image.Image) -> bool:
    """True when `shown` is `small` enlarged by whole pixels (a toy scene at display size): nothing is lost."""
    if shown.size == small.size:
        return True
    if shown.width % small.width or shown.height % small.height:
        return False
    return small.resize(shown.size, Image.Resampling.NEAREST).tobytes() == shown.tobytes()


def for_display(image: Image.Image, settings: EditSettings) -> Image.Image:
    """A native-size model's picture enlarged by a whole factor (square pixels); other models' unchanged."""
    if settings.native_size is None:
        return image
    factor = max(1, DISPLAY_SIDE // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def download_copy(store: ImageStore, png: str | Path, seed: int, turn: int) -> str:
    """The result under a readable name, `edit-<seed>-<turn>.png`, in a folder named by its content (so two
    results with the same seed and turn never overwrite each other)."""
    png = Path(png)
    target = store.root / "downloads" / png.stem / f"edit-{seed}-{turn}.png"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(png, target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(png, target)
    return str(target)
