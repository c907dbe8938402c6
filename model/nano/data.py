"""Triplet datasets on disk in the official Step1X-Edit fine-tuning metadata format.

    metadata.json = {target_path: {"ref_image_path": source_path, "caption": instruction, ...}}

Paths are relative to the metadata file's folder (absolute paths are accepted on import). Extra keys
("category", "language", "filter_score", "filter_reason", "key") ride along; readers that only know the
official two keys ignore them. Rejected triplets go to `rejected.json` in the same format, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from model.nano.filter import score_triplet
from model.nano.world import CATEGORIES, make_triplet

METADATA = "metadata.json"
REJECTED = "rejected.json"


@dataclass(frozen=True)
class Record:
    """One (source, instruction, target) entry of a metadata file, with absolute paths."""

    target_path: Path
    ref_image_path: Path
    caption: str
    extra: dict

    def load(self) -> tuple[Image.Image, Image.Image]:
        """(source, target) as RGB images."""
        return Image.open(self.ref_image_path).convert("RGB"), Image.open(self.target_path).convert("RGB")


def export_world(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    split: str = "train",
    categories: tuple[str, ...] = CATEGORIES,
    zh_fraction: float = 0.3,
    size: int = 32,
    progress: bool = True,
) -> dict[str, int]:
    """Generate `count` triplets, filter them, write images + metadata.json (+ rejected.json).

    Returns {"accepted": n, "rejected": m}.
    """
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    accepted: dict[str, dict] = {}
    rejected: dict[str, dict] = {}
    for index in tqdm(range(count), desc=f"nano-data {split}", disable=not progress):
        triplet = make_triplet(
            seed, index, categories=categories, zh_fraction=zh_fraction, size=size, split=split
        )
        verdict = score_triplet(triplet)
        stem = f"{split}_{seed}_{index:07d}"
        source_rel, target_rel = f"images/{stem}_src.png", f"images/{stem}_tgt.png"
        triplet.source.save(out / source_rel)
        triplet.target.save(out / target_rel)
        entry = {
            "ref_image_path": source_rel,
            "caption": triplet.instruction,
            "category": triplet.category,
            "language": triplet.language,
            "filter_score": round(verdict.score, 4),
            "filter_reason": verdict.reason,
            "key": triplet.key,
            "edit": triplet.edit,
        }
        (accepted if verdict.passed else rejected)[target_rel] = entry
    write_metadata(out / METADATA, accepted)
    write_metadata(out / REJECTED, rejected)
    return {"accepted": len(accepted), "rejected": len(rejected)}


def write_metadata(path: str | Path, entries: dict[str, dict]) -> None:
    """Write a metadata file atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def read_metadata(path: str | Path) -> list[Record]:
    """Parse a metadata file; every problem is reported with the entry it concerns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no metadata file at {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(entries, dict):
        raise ValueError(
            f"{path} must hold a JSON object {{target_path: {{...}}}}, got {type(entries).__name__}"
        )
    records = []
    for target, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("ref_image_path"), str):
            raise ValueError(f"{path}: entry {target!r} has no 'ref_image_path' string")
        caption = entry.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"{path}: entry {target!r} has an empty or missing 'caption'")
        target_path = _resolve(path.parent, target)
        ref_path = _resolve(path.parent, entry["ref_image_path"])
        for p in (target_path, ref_path):
            if not p.is_file():
                raise FileNotFoundError(f"{path}: entry {target!r} points to a missing file {p}")
        extra = {k: v for k, v in entry.items() if k not in ("ref_image_path", "caption")}
        records.append(Record(target_path, ref_path, caption, extra))
    return records


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p
