"""Every hostile image gets a clear ImageInputError or a correct RGB result from model.image_input.load_image."""

from __future__ import annotations

from pathlib import Path

import pytest

images = pytest.importorskip(
    "model.image_input", reason="model/image_input.py (load_image) has not landed yet"
)

from make_hostile import Case, mismatches  # noqa: E402  (registered by conftest.load_by_path)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_load_image_hostile(image_case: Case, hostile_dir: Path, as_bytes: bool) -> None:
    path = hostile_dir / image_case.path
    source = path.read_bytes() if as_bytes else path
    try:
        img = images.load_image(source)
    except images.ImageInputError as exc:
        assert image_case.expect != "ok", f"{image_case.name}: refused a valid image: {exc}"
        assert len(str(exc)) >= 10, f"{image_case.name}: error message is not explanatory: {exc!r}"
        return
    assert image_case.expect != "error", f"{image_case.name}: accepted a hostile file ({img.mode} {img.size})"
    assert mismatches(img, image_case.check) == [], image_case.name


def test_image_input_error_is_value_error() -> None:
    assert issubclass(images.ImageInputError, ValueError)
