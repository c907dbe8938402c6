"""VIEScore judging of GEdit-Bench outputs with a local Qwen2.5-VL judge, a content-addressed cache of judge
calls, and per-sample records that keep the raw replies, all sub-scores and the parse status.

Per sample: SC = min(edit success, over-editing) from [source, edited] + instruction; PQ = min(naturalness,
artifacts) from the edited image alone; O = sqrt(SC * PQ). A reply that stays unparseable after the bounded
re-ask is a recorded failure (SC/PQ = NaN), never a guessed score.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image
from tqdm.auto import tqdm

from model.image_input import ImageInputError, load_image
from workbench.gedit import safe_name
from workbench.gedit.dataset import BenchSample
from workbench.gedit.parse import parse_reply
from workbench.gedit.prompts import STRICT_SUFFIX, STUDIO_PROMPTS, PromptSet

JUDGE_AREA = 512 * 512  # both images are shown at about 512x512 area, as the newer official driver does
SCORES_FILE = "samples.jsonl"
MANIFEST_FILE = "judge_manifest.json"
# Greedy and fully pinned: nothing is inherited from the checkpoint's generation_config.json
# (Qwen2.5-VL ships repetition_penalty=1.05, which the official driver silently used).
GENERATION = {"max_new_tokens": 512, "do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}


class JudgeBackend(Protocol):
    """Anything that answers a prompt about images; ``judge_id`` must change whenever the answers could."""

    judge_id: str
    generation: dict  # decoding parameters; part of the cache key

    def generate(self, images: Sequence[Image.Image], text: str) -> str: ...


class JudgeLoadError(ValueError):
    """The judge given could not be loaded (missing folder, offline Hub); a user error, not a bug."""


class QwenVLJudge:
    """A Qwen2.5-VL (7B, 72B or any compatible folder) judge run through transformers, greedy decoding."""

    def __init__(self, model, processor, name: str, revision: str, dtype: str, max_new_tokens: int = 512):
        self.model = model
        self.processor = processor
        self.name = name
        self.revision = revision
        self.dtype = dtype
        self.judge_id = f"{name}@{revision}:{dtype}"
        self.generation = GENERATION | {"max_new_tokens": max_new_tokens}

    @classmethod
    def load(
        cls,
        path_or_id: str,
        revision: str | None = None,
        device: str | None = None,
        dtype: str = "bfloat16",
        max_new_tokens: int = 512,
    ) -> QwenVLJudge:
        """Load from a local folder or the Hub; offline or missing weights give a clear error."""
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        # "auto" spreads a 72B judge over the visible GPUs; one device name puts everything there.
        device_map = device or ("auto" if torch.cuda.is_available() else "cpu")
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path_or_id, revision=revision, dtype=getattr(torch, dtype), device_map=device_map
            )
            processor = _load_processor(path_or_id, revision)
        except OSError as exc:
            raise JudgeLoadError(
                f"cannot load judge {path_or_id!r} ({exc}). Pass a local Qwen2.5-VL folder with --judge, or go "
                "online so the Hub id can be downloaded."
            ) from exc
        model.eval()
        # Record an exact revision: the resolved Hub commit, else a digest of the local folder.
        revision = getattr(model.config, "_commit_hash", None) or revision or _folder_revision(path_or_id)
        return cls(model, processor, _judge_name(path_or_id), revision, dtype, max_new_tokens)

    def generate(self, images: Sequence[Image.Image], text: str) -> str:
        """One greedy answer; images come before the text, as in the official Qwen driver."""
        import torch
        from transformers import GenerationConfig, set_seed

        content = [{"type": "image", "image": img} for img in images] + [{"type": "text", "text": text}]
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.model.device)
        set_seed(42)
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=GenerationConfig(**self.generation))
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]


def _load_processor(path_or_id: str, revision: str | None):
    """AutoProcessor, or, where torchvision is missing (the stock processor needs it for video), the
    images-only Qwen2.5-VL processor from model.encoder built from the same folder's tokenizer and
    image-processor config."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        processor = AutoProcessor.from_pretrained(path_or_id, revision=revision)
        if hasattr(processor, "image_processor"):
            return processor
    except ImportError:
        pass
    from model.encoder import Qwen25VLImageProcessor

    tokenizer = AutoTokenizer.from_pretrained(path_or_id, revision=revision)
    return Qwen25VLImageProcessor(
        image_processor=Qwen2VLImageProcessorPil.from_pretrained(path_or_id, revision=revision),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def _judge_name(path_or_id: str) -> str:
    path = Path(path_or_id)
    if path.exists():
        parts = path.resolve().parts
        # Hub cache layout: models--Org--Name/snapshots/<sha>
        for part in parts:
            if part.startswith("models--"):
                return part[len("models--") :].replace("--", "/")
        return path.resolve().name
    return path_or_id


def _folder_revision(path_or_id: str) -> str:
    """A Hub snapshot's commit sha, else a digest of the folder's configs/templates and weight-file sizes."""
    path = Path(path_or_id)
    if not path.exists():
        return "main"
    if re.fullmatch(r"[0-9a-f]{40}", path.resolve().name):
        return path.resolve().name
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.is_file():
            digest.update(file.name.encode())
            small = file.suffix in (".json", ".jinja", ".txt")  # configs and templates: hash the contents
            digest.update(file.read_bytes() if small else str(file.stat().st_size).encode())
    return "local-" + digest.hexdigest()[:16]


def resize_for_judge(image: Image.Image, area: int = JUDGE_AREA) -> Image.Image:
    """Scale to about ``area`` pixels keeping the aspect ratio, truncating to int (newer official policy)."""
    ratio = image.width / image.height
    width = int(math.sqrt(area * ratio))
    height = int(width / ratio)
    return image.convert("RGB").resize((max(width, 1), max(height, 1)), Image.Resampling.BICUBIC)


def image_digest(image: Image.Image) -> str:
    """SHA-256 of the exact pixels shown to the judge."""
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


class JudgeCache:
    """Judge replies keyed by sha256(judge id + generation params + prompt + image pixels); never overwritten."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(judge: JudgeBackend, text: str, images: Sequence[Image.Image]) -> str:
        payload = json.dumps(
            {
                "judge": judge.judge_id,
                "generation": judge.generation,
                "prompt": text,
                "images": [image_digest(i) for i in images],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def ask(self, judge: JudgeBackend, images: Sequence[Image.Image], text: str) -> tuple[str, bool]:
        """The judge's reply (from the cache when present) and whether it was a cache hit."""
        key = self.key(judge, text, images)
        path = self._path(key)
        if path.is_file():
            self.hits += 1
            return json.loads(path.read_text(encoding="utf-8"))["reply"], True
        self.misses += 1
        started = time.perf_counter()
        reply = judge.generate(images, text)
        record = {"reply": reply, "judge": judge.judge_id, "seconds": round(time.perf_counter() - started, 3)}
        _write_new(path, json.dumps(record, ensure_ascii=False))
        return reply, False


def _write_new(path: Path, text: str) -> None:
    """Atomically create ``path`` unless it exists (a concurrent writer's identical entry wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


@dataclass
class Question:
    """One VIEScore question (SC or PQ) after the bounded re-ask loop."""

    status: str  # ok | repaired | retried | failed
    scores: list[float] | None
    reasoning: str
    replies: list[str]
    errors: list[str]

    @property
    def value(self) -> float:
        return min(self.scores) if self.scores else math.nan

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "scores": self.scores,
            "value": None if math.isnan(self.value) else self.value,
            "reasoning": self.reasoning,
            "raw": self.replies,
            "errors": self.errors,
            "attempts": len(self.replies),
        }


def ask_scored(
    judge: JudgeBackend, cache: JudgeCache, images: Sequence[Image.Image], text: str, max_attempts: int = 2
) -> Question:
    """Ask, parse strictly, and re-ask with a stricter suffix at most ``max_attempts - 1`` times."""
    replies, errors = [], []
    for attempt in range(max(1, max_attempts)):
        prompt = text if attempt == 0 else text + STRICT_SUFFIX
        reply, _ = cache.ask(judge, images, prompt)
        replies.append(reply)
        parsed = parse_reply(reply)
        if parsed.ok:
            status = parsed.status if attempt == 0 else "retried"
            return Question(status, parsed.scores, parsed.reasoning, replies, errors)
        errors.append(parsed.error)
    return Question("failed", None, "", replies, errors)


def judge_sample(
    judge: JudgeBackend,
    cache: JudgeCache,
    source: Image.Image,
    edited: Image.Image,
    instruction: str,
    max_attempts: int = 2,
    prompts: PromptSet = STUDIO_PROMPTS,
) -> dict:
    """SC, PQ, O and everything behind them for one (source, edited, instruction) triple."""
    src, out = resize_for_judge(source), resize_for_judge(edited)
    sc = ask_scored(judge, cache, [src, out], prompts.sc(instruction), max_attempts)
    pq = ask_scored(judge, cache, [out], prompts.pq(), max_attempts)
    ok = sc.scores is not None and pq.scores is not None
    return {
        "SC": None if sc.scores is None else sc.value,
        "PQ": None if pq.scores is None else pq.value,
        "O": math.sqrt(sc.value * pq.value) if ok else None,
        "status": "ok" if ok else "judge_failed",
        "sc": sc.to_dict(),
        "pq": pq.to_dict(),
        "source_sha256": image_digest(src),
        "edited_sha256": image_digest(out),
    }


def find_output(results_dir: Path, model_name: str, sample: BenchSample) -> Path | None:
    """The edited image ``{key}.png`` (or ``{key}.*``) in the official layout, if the editor produced one."""
    folder = results_dir / model_name / "fullset" / sample.task_type / sample.language
    exact = folder / f"{sample.key}.png"
    if exact.is_file():
        return exact
    matches = sorted(p for p in folder.glob(f"{sample.key}.*") if not p.name.endswith(".tmp"))
    return matches[0] if matches else None


def judge_run(
    judge: JudgeBackend,
    samples: Sequence[BenchSample],
    results_dir: Path,
    model_name: str,
    scores_dir: Path,
    cache: JudgeCache,
    judge_name: str | None = None,
    max_attempts: int = 2,
    progress: bool = True,
    bench_source: str = "",
    prompts: PromptSet = STUDIO_PROMPTS,
) -> dict:
    """Judge every sample's output; write ``{scores}/{model}/{judge}/samples.jsonl`` + a manifest.

    Records from earlier runs on other samples are kept (so filtered runs accumulate); the samples judged now
    are replaced. Missing outputs are recorded as ``missing_output`` (an editor failure, not a judge failure).
    """
    label = safe_name(judge_name or getattr(judge, "name", judge.judge_id))
    out_dir = scores_dir / model_name / label
    records = read_records(out_dir / SCORES_FILE)
    counts = {"ok": 0, "judge_failed": 0, "missing_output": 0}
    hits_before, misses_before = cache.hits, cache.misses
    for sample in tqdm(samples, desc=f"judge {model_name}", disable=not progress):
        record = {
            "task_type": sample.task_type,
            "key": sample.key,
            "language": sample.language,
            "instruction": sample.instruction,
            "intersection": sample.intersection,
            "judge": judge.judge_id,
            "prompt_version": prompts.version,
        }
        path = find_output(results_dir, model_name, sample)
        record["edited_image"] = None if path is None else str(path)
        try:
            edited = load_image(path) if path is not None else None
        except ImageInputError as exc:  # a corrupt output is the editor's failure, like a missing one
            edited, record["output_error"] = None, str(exc)
        if edited is None:
            record.update({"status": "missing_output", "SC": None, "PQ": None, "O": None})
        else:
            source = sample.source_image()
            record.update(
                judge_sample(judge, cache, source, edited, sample.instruction, max_attempts, prompts)
            )
        counts[record["status"]] += 1
        records[sample.uid] = record
    _write_records(out_dir / SCORES_FILE, records)
    manifest = {
        "model": model_name,
        "bench": bench_source,
        "judge": judge.judge_id,
        "judge_label": label,
        "prompt_version": prompts.version,
        "prompt_sha256": prompts.sha256,
        "generation": judge.generation,
        "judge_area": JUDGE_AREA,
        "resize": "both images to ~512x512 area, aspect kept, int truncation, bicubic",
        "source_image": "input_image_raw",
        "max_attempts": max_attempts,
        "versions": _library_versions(),
        "counts_this_run": counts,
        "cache": {"hits": cache.hits - hits_before, "misses": cache.misses - misses_before},
        "records_total": len(records),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def read_records(path: Path) -> dict[str, dict]:
    """Per-sample records keyed by ``task_type/language/key`` (empty when the file does not exist)."""
    if not path.is_file():
        return {}
    records = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not a JSON record ({exc})") from exc
            records[f"{rec['task_type']}/{rec['language']}/{rec['key']}"] = rec
    return records


def _write_records(path: Path, records: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for uid in sorted(records):
            fh.write(json.dumps(records[uid], ensure_ascii=False) + "\n")
    tmp.replace(path)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("transformers", "torch", "pillow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
