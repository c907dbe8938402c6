"""Metadata export/import in the official fine-tuning format, with clear errors for bad files."""

import json

import pytest

from model.nano.data import METADATA, REJECTED, export_world, read_metadata


def test_export_round_trip(tmp_path):
    counts = export_world(tmp_path, 12, seed=1, split="eval", progress=False)
    assert counts["accepted"] + counts["rejected"] == 12
    raw = json.loads((tmp_path / METADATA).read_text(encoding="utf-8"))
    target, entry = next(iter(raw.items()))
    assert target.startswith("images/") and entry["ref_image_path"].startswith("images/")
    assert entry["caption"] and entry["filter_reason"] == "ok"
    records = read_metadata(tmp_path / METADATA)
    assert len(records) == counts["accepted"]
    source, target_image = records[0].load()
    assert source.size == target_image.size == (32, 32)
    assert records[0].extra["category"] and records[0].extra["language"] in ("en", "zh")
    assert isinstance(json.loads((tmp_path / REJECTED).read_text(encoding="utf-8")), dict)


def test_absolute_paths_are_accepted(tmp_path):
    export_world(tmp_path, 2, progress=False)
    raw = json.loads((tmp_path / METADATA).read_text(encoding="utf-8"))
    absolute = {
        str(tmp_path / k): {**v, "ref_image_path": str(tmp_path / v["ref_image_path"])}
        for k, v in raw.items()
    }
    path = tmp_path / "abs.json"
    path.write_text(json.dumps(absolute), encoding="utf-8")
    assert len(read_metadata(path)) == len(raw)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"a.png": {"caption": "x"}}', "ref_image_path"),
        ('{"a.png": {"ref_image_path": "b.png", "caption": " "}}', "caption"),
        ('{"a.png": {"ref_image_path": "b.png", "caption": "make it red"}}', "missing file"),
    ],
)
def test_bad_metadata_is_reported(tmp_path, content, message):
    path = tmp_path / "metadata.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_metadata(path)
