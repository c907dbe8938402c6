"""GEdit-Bench samples: read the Hugging Face dataset (local parquet/arrow or the Hub) or generate a mini bench.

The dataset has one split (``train``) of 1,212 rows (606 EN + 606 CN) with the fields ``task_type``, ``key``,
``instruction``, ``instruction_language`` ("en"/"cn"), ``input_image``, ``input_image_raw`` (HF ``Image``
features: ``{"bytes", "path"}`` structs) and ``Intersection_exist``. EN and CN rows share a key, so a sample is
identified by ``(task_type, language, key)``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from workbench.gedit import LANGUAGES, TASK_TYPES

HUB_DATASET_ID = "stepfun-ai/GEdit-Bench"
REQUIRED_COLUMNS = (
    "task_type",
    "key",
    "instruction",
    "instruction_language",
    "input_image",
    "input_image_raw",
    "Intersection_exist",
)


class BenchLoadError(ValueError):
    """The bench source given could not be read (missing files, wrong schema, offline Hub)."""


@dataclass(frozen=True)
class BenchSample:
    """One GEdit-Bench row; images are kept as encoded bytes and decoded on demand."""

    task_type: str
    key: str
    instruction: str
    language: str
    intersection: bool
    input_image: bytes
    input_image_raw: bytes

    @property
    def uid(self) -> str:
        """Unique id across languages (``key`` alone is shared by the EN and CN rows)."""
        return f"{self.task_type}/{self.language}/{self.key}"

    def source_image(self, raw: bool = True) -> Image.Image:
        """Decode the editor/judge source: ``input_image_raw`` (default, as the newer scripts) or ``input_image``."""
        data = self.input_image_raw if raw else self.input_image
        return Image.open(io.BytesIO(data)).convert("RGB")


def load_bench(source: str | os.PathLike = HUB_DATASET_ID) -> list[BenchSample]:
    """Load the bench from a parquet/arrow file, a folder of them (an HF snapshot), or a Hub dataset id."""
    files = _resolve(source)
    samples: list[BenchSample] = []
    for file in files:
        samples.extend(_rows_to_samples(_read_table(file), file))
    _check_unique(samples)
    return samples


def bench_revision(source: str | os.PathLike = HUB_DATASET_ID) -> str:
    """Provenance of the bench files: the Hub snapshot's commit, else a digest of the data files' bytes."""
    files = _resolve(source)
    for part in files[0].resolve().parts:
        if re.fullmatch(r"[0-9a-f]{40}", part):
            return part
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def _resolve(source: str | os.PathLike) -> list[Path]:
    path = Path(source)
    if path.exists():
        files = _data_files(path)
    elif _looks_like_hub_id(str(source)):
        files = _data_files(_download(str(source)))
    else:
        raise BenchLoadError(f"bench source {str(source)!r} is neither an existing path nor a Hub dataset id")
    if not files:
        raise BenchLoadError(f"no .parquet or .arrow files found under {path}")
    return files


def filter_samples(
    samples: Iterable[BenchSample],
    languages: Sequence[str] | None = None,
    task_types: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    intersection_only: bool = False,
) -> list[BenchSample]:
    """Keep the samples matching every given filter (``None`` or empty = no filter on that field)."""
    out = []
    for s in samples:
        if languages and s.language not in languages:
            continue
        if task_types and s.task_type not in task_types:
            continue
        if keys and s.key not in keys:
            continue
        if intersection_only and not s.intersection:
            continue
        out.append(s)
    return out


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/"))


def _download(repo_id: str) -> Path:
    """Fetch the dataset's data files from the Hub; fail with a clear message offline."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id, repo_type="dataset", allow_patterns=["*.parquet", "*.arrow", "*.json"])
        )
    except Exception as exc:  # every hub failure gets the same actionable message
        raise BenchLoadError(
            f"could not download dataset {repo_id!r} from the Hugging Face Hub ({exc.__class__.__name__}: {exc}). "
            "Offline? Copy the dataset's parquet files to a folder and pass that folder with --bench."
        ) from exc


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".arrow") and p.is_file())


def _read_table(file: Path) -> pa.Table:
    try:
        if file.suffix == ".arrow":
            # `datasets` writes the Arrow IPC *stream* format; other tools write the IPC *file* format.
            with pa.memory_map(str(file)) as source:
                try:
                    return pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    return pa.ipc.open_file(source).read_all()
        return pq.read_table(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BenchLoadError(f"cannot read {file}: {exc}") from exc


def _rows_to_samples(table: pa.Table, file: Path) -> list[BenchSample]:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise BenchLoadError(f"{file} lacks GEdit-Bench columns {missing} (has {table.column_names})")
    samples = []
    for row in table.select(list(REQUIRED_COLUMNS)).to_pylist():
        if row["task_type"] not in TASK_TYPES:
            raise BenchLoadError(f"{file}: unknown task_type {row['task_type']!r} for key {row['key']}")
        if row["instruction_language"] not in LANGUAGES:
            raise BenchLoadError(
                f"{file}: instruction_language {row['instruction_language']!r} is not one of {LANGUAGES}"
            )
        samples.append(
            BenchSample(
                task_type=row["task_type"],
                key=str(row["key"]),
                instruction=row["instruction"],
                language=row["instruction_language"],
                intersection=bool(row["Intersection_exist"]),
                input_image=_image_bytes(row["input_image"], file),
                input_image_raw=_image_bytes(row["input_image_raw"], file),
            )
        )
    return samples


def _image_bytes(value: dict | bytes | None, file: Path) -> bytes:
    """HF ``Image`` cells are ``{"bytes", "path"}``; bytes may be absent when the path points to a file."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            candidate = Path(value["path"])
            candidate = candidate if candidate.is_absolute() else file.parent / candidate
            if candidate.is_file():
                return candidate.read_bytes()
    raise BenchLoadError(f"{file}: an image cell has neither bytes nor a readable path")


def _check_unique(samples: Sequence[BenchSample]) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.uid in seen:
            raise BenchLoadError(f"duplicate sample {s.uid}")
        seen.add(s.uid)


# ---------------------------------------------------------------------------------------------------------
# A small synthetic bench in the same schema (tests, demos). Images are drawn, nothing is downloaded.

_INSTRUCTIONS = {
    "background_change": ("Replace the background with a beach", "把背景换成海滩"),
    "color_alter": ("Make the square red", "把方块变成红色"),
    "material_alter": ("Make the ball look like glass", "让球看起来像玻璃"),
    "motion_change": ("Make the figure raise its arm", "让人物举起手臂"),
    "ps_human": ("Smooth the skin", "让皮肤更光滑"),
    "style_change": ("Turn it into a watercolour painting", "变成水彩画风格"),
    "subject-add": ("Add a cat on the left", "在左边加一只猫"),
    "subject-remove": ("Remove the circle", "去掉圆形"),
    "subject-replace": ("Replace the circle with a star", "把圆形换成星星"),
    "text_change": ("Change the text to HELLO", "把文字改成HELLO"),
    "tone_transfer": ("Make it look like sunset", "改成日落的色调"),
}

_HF_FEATURES = {
    "task_type": {"dtype": "string", "_type": "Value"},
    "key": {"dtype": "string", "_type": "Value"},
    "instruction": {"dtype": "string", "_type": "Value"},
    "instruction_language": {"dtype": "string", "_type": "Value"},
    "input_image": {"_type": "Image"},
    "input_image_raw": {"_type": "Image"},
    "Intersection_exist": {"dtype": "bool", "_type": "Value"},
}


def synthetic_rows(per_type: int = 2, seed: int = 0, size: tuple[int, int] = (96, 64)) -> list[dict]:
    """Rows in the HF schema: ``per_type`` items per task type, each in EN and CN under one shared key."""
    rng = random.Random(seed)
    rows = []
    for task_type in TASK_TYPES:
        en, cn = _INSTRUCTIONS[task_type]
        for i in range(per_type):
            key = hashlib.md5(f"{seed}:{task_type}:{i}".encode()).hexdigest()
            raw = _draw_scene(rng, size)
            processed = raw.resize((size[0] // 2 * 2 + 32, size[1] // 2 * 2 + 32))
            intersection = rng.random() < 0.7
            for language, text in (("en", en), ("cn", cn)):
                rows.append(
                    {
                        "task_type": task_type,
                        "key": key,
                        "instruction": text,
                        "instruction_language": language,
                        "input_image": {"bytes": _png(processed), "path": None},
                        "input_image_raw": {"bytes": _png(raw), "path": None},
                        "Intersection_exist": intersection,
                    }
                )
    return rows


def write_synthetic_bench(path: Path, per_type: int = 2, seed: int = 0) -> Path:
    """Write a mini bench parquet that ``load_bench`` (and ``datasets``) read like the real one."""
    return _write_rows(synthetic_rows(per_type, seed), path)


def write_bench(samples: Sequence[BenchSample], path: Path) -> Path:
    """Write samples (e.g. a filtered subset) back as a bench parquet in the HF schema."""
    rows = [
        {
            "task_type": s.task_type,
            "key": s.key,
            "instruction": s.instruction,
            "instruction_language": s.language,
            "input_image": {"bytes": s.input_image, "path": None},
            "input_image_raw": {"bytes": s.input_image_raw, "path": None},
            "Intersection_exist": s.intersection,
        }
        for s in samples
    ]
    return _write_rows(rows, path)


def _write_rows(rows: list[dict], path: Path) -> Path:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [
            ("task_type", pa.string()),
            ("key", pa.string()),
            ("instruction", pa.string()),
            ("instruction_language", pa.string()),
            ("input_image", image),
            ("input_image_raw", image),
            ("Intersection_exist", pa.bool_()),
        ],
        metadata={"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})},
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _draw_scene(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(3):
        x0, y0 = rng.randrange(w // 2), rng.randrange(h // 2)
        box = (x0, y0, x0 + rng.randrange(8, w // 2), y0 + rng.randrange(8, h // 2))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
