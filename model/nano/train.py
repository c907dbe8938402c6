"""Flow-matching training of the nano pipeline's trainable parts (Qwen2.5-VL, connector, DiT) on CPU.

Recipe (docs/nano.md has the measurements behind it):
- rectified flow x_t = (1 - t) x0 + t noise; the pipeline's "ref_residual" head predicts x0 = reference + r;
  loss = MSE(x0_pred, target) over the packed pixel tokens;
- t = 1 with probability `t_one_prob` (the one-step sampler starts there), else uniform in (0, 1);
- the instruction is replaced by "" with probability `cfg_dropout` (classifier-free guidance training);
- with `rephrase` (and an "edit" description in the metadata) every draw of a triplet gets a fresh
  instruction from the training grammar (model/nano/grammar.py: frames, synonyms, wrappers, typos);
- `init_from` warm-starts from a saved model: every tensor whose name and shape match is copied, token
  embeddings row by row where the token string exists in both vocabularies;
- AdamW, linear warm-up then cosine decay to 5 %, gradient clipping, weight EMA (exported);
- resumable: `<run>/checkpoint.pt` every `checkpoint_every` steps and at exit; `<run>/loss.csv` + `loss.png`.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from model.encoder import VISION_END_TOKEN, qwen_vl_utils_resize, tokenize_prompt
from model.latents import pil_to_tensor
from model.nano.build import NanoConfig, build_nano_pipeline
from model.nano.data import Record, read_metadata
from model.nano.grammar import training_instruction
from model.pipeline import Step1XEditPipeline

CHECKPOINT = "checkpoint.pt"
LOSS_CSV = "loss.csv"
LOSS_PNG = "loss.png"
SUMMARY = "train_summary.json"
CHANGED_THRESHOLD = 0.04  # |target - source| in [-1, 1] units (about 5 of 255 levels)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with the checkpoint and the model card)."""

    steps: int = 6000
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05
    ema_decay: float = 0.995
    cfg_dropout: float = 0.1
    t_one_prob: float = 0.9
    grad_clip: float = 1.0
    changed_weight: float = 0.0  # extra loss weight on pixels the edit changes
    category_weights: dict[str, float] = field(default_factory=dict)  # sampling weight, default 1
    threads: int = 1
    checkpoint_every: int = 250
    max_minutes: float | None = None
    seed: int = 0
    rephrase: bool = True  # a fresh grammar phrasing per draw (needs "edit" in the metadata)
    zh_fraction: float = 0.35  # share of Chinese phrasings when rephrasing
    typo_prob: float = 0.3  # chance of each further typo in an English phrasing
    unknown_prob: float = 0.3  # chance of each further unknown word in a phrasing (at most 3)
    init_from: str | None = None  # warm start from this saved model folder
    model: NanoConfig = field(default_factory=NanoConfig)


class TripletBatcher:
    """Holds a dataset in memory as tensors + token ids; draws random training batches."""

    def __init__(self, pipe: Step1XEditPipeline, records: list[Record], config: TrainConfig | None = None):
        if not records:
            raise ValueError("the training set is empty")
        self.pipe = pipe
        self.sources: list[Image.Image] = []
        targets, captions = [], []
        self.categories = [str(r.extra.get("category", "")) for r in records]
        self.edits = [r.extra.get("edit") for r in records]
        self.config = config or TrainConfig(rephrase=False)
        for record in records:
            source, target = record.load()
            if source.size != target.size:
                raise ValueError(
                    f"{record.target_path}: source {source.size} and target {target.size} differ"
                )
            self.sources.append(source)
            targets.append(target)
            captions.append(record.caption)
        sizes = {im.size for im in self.sources}
        if len(sizes) != 1:
            raise ValueError(f"all training images must share one size, found {sorted(sizes)}")
        self.src = torch.cat([pil_to_tensor(im) for im in self.sources])
        self.tgt = torch.cat([pil_to_tensor(im) for im in targets])
        # Prompt ids depend on the image only through its (fixed) token count: tokenise each caption once.
        self.captions = captions
        self.probe = self.sources[0]
        self._caption_ids: dict[str, list[int]] = {}  # filled on first use (rephrasing rarely needs them)
        self.empty_ids = prompt_ids(pipe, self.probe, "")
        self.prompt = None if pipe.config.split_quotes else PromptIds(pipe, self.probe)

    def __len__(self) -> int:
        return len(self.sources)

    def sampling_weights(self, category_weights: dict[str, float]) -> list[float] | None:
        """Per-triplet draw weights from per-category ones (None: uniform)."""
        if not category_weights:
            return None
        return [category_weights.get(c, 1.0) for c in self.categories]

    def batch(self, indices: list[int], drop: torch.Tensor | None = None):
        """(source pixels, target pixels, embeds, mask) for `indices`; `drop[i]` blanks the instruction."""
        ids = [
            self.empty_ids if drop is not None and drop[j] else self._ids(i) for j, i in enumerate(indices)
        ]
        embeds, mask = encode_batch(self.pipe, ids, [self.sources[i] for i in indices])
        return self.src[indices], self.tgt[indices], embeds, mask

    def _ids(self, i: int) -> list[int]:
        """The recorded caption's ids, or those of a fresh phrasing of the same edit."""
        if not self.config.rephrase or not self.edits[i] or self.prompt is None:
            caption = self.captions[i]
            if caption not in self._caption_ids:
                self._caption_ids[caption] = (
                    self.prompt(caption) if self.prompt else prompt_ids(self.pipe, self.probe, caption)
                )
            return self._caption_ids[caption]
        config = self.config
        text, _ = training_instruction(
            self.categories[i],
            self.edits[i],
            random,
            config.zh_fraction,
            config.typo_prob,
            config.unknown_prob,
        )
        return self.prompt(text)


class PromptIds:
    """`prompt_ids` without re-running the processor: the ids around the instruction are fixed for a fixed
    image size (the tokenizer sees the instruction as its own segment between special tokens)."""

    def __init__(self, pipe: Step1XEditPipeline, probe: Image.Image):
        if pipe.config.split_quotes:
            raise ValueError("fresh phrasings need split_quotes=False (quote splitting re-tokenises)")
        full = tokenize_prompt(pipe.processor, probe, "", pipe.config.prompt_prefix, False).input_ids[0]
        end = full.tolist().index(pipe.processor.tokenizer.convert_tokens_to_ids(VISION_END_TOKEN)) + 1
        self.head, self.tail = full[:end].tolist(), full[end:].tolist()
        self.tokenizer = pipe.processor.tokenizer
        self.keep = pipe.config.drop_tokens + pipe.config.max_length

    def __call__(self, instruction: str) -> list[int]:
        body = self.tokenizer(instruction, add_special_tokens=False)["input_ids"]
        return (self.head + body + self.tail)[: self.keep]


def prompt_ids(pipe: Step1XEditPipeline, image: Image.Image, instruction: str) -> list[int]:
    """The pipeline's own token sequence for (image, instruction), cut to what the connector will see."""
    tokens = tokenize_prompt(
        pipe.processor, image, instruction, pipe.config.prompt_prefix, pipe.config.split_quotes
    )
    return tokens.input_ids[0, : pipe.config.drop_tokens + pipe.config.max_length].tolist()


def encode_batch(
    pipe: Step1XEditPipeline, ids: list[list[int]], images: list[Image.Image]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched equivalent of `pipe.encode_prompt` (with gradients): right-padded ids, one Qwen forward.

    Right padding leaves every real token's state unchanged (causal attention), so this matches the
    per-prompt encoding the pipeline runs at inference (tests/nano check it).
    """
    drop, max_length = pipe.config.drop_tokens, pipe.config.max_length
    pad = pipe.processor.tokenizer.pad_token_id
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), pad, dtype=torch.long)
    real = torch.zeros(len(ids), length, dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        real[row, : len(x)] = 1
    pixels = pipe.processor.image_processor(
        images=[qwen_vl_utils_resize(im) for im in images], return_tensors="pt"
    )
    out = pipe.text_encoder(
        input_ids=input_ids,
        attention_mask=real * (input_ids > 0),
        mm_token_type_ids=(input_ids == pipe.processor.image_token_id).int(),
        pixel_values=pixels["pixel_values"],
        image_grid_thw=pixels["image_grid_thw"],
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1,
    )
    states = out.hidden_states[-1][:, drop : drop + max_length]
    mask = real[:, drop : drop + max_length]
    embeds = torch.zeros(len(ids), max_length, states.shape[-1])
    keep = states.shape[1]
    embeds[:, :keep] = states * mask[..., None]
    full_mask = torch.zeros(len(ids), max_length, dtype=torch.long)
    full_mask[:, :keep] = mask
    return embeds, full_mask


def trainable_modules(pipe: Step1XEditPipeline) -> dict[str, torch.nn.Module]:
    return {"text_encoder": pipe.text_encoder, "connector": pipe.connector, "transformer": pipe.transformer}


def flow_loss(
    pipe: Step1XEditPipeline,
    src: torch.Tensor,
    tgt: torch.Tensor,
    embeds,
    mask,
    t: torch.Tensor,
    changed_weight: float = 0.0,
) -> torch.Tensor:
    """MSE between the predicted clean tokens and the target tokens at noise level t [B].

    With `changed_weight` w > 0 the pixels that differ between source and target count 1 + w times:
    small edits (a word, a texture) are a few percent of the image, and a plain mean lets the model
    score well by copying the source there.
    """
    ref = pipe.pack(src)
    x0 = pipe.pack(tgt)
    noise = torch.randn_like(x0)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    rows, cols = src.shape[2] // pipe.side_multiple, src.shape[3] // pipe.side_multiple
    out = pipe.model_output(xt, ref, embeds, mask, t, pipe.position_ids(rows, cols))
    pred = ref + out if pipe.config.prediction == "ref_residual" else xt - t[:, None, None] * out
    if not changed_weight:
        return torch.nn.functional.mse_loss(pred, x0)
    weight = 1 + changed_weight * ((x0 - ref).abs() > CHANGED_THRESHOLD).float()
    return (weight * (pred - x0) ** 2).sum() / weight.sum()


class EMA:
    """Exponential moving average of all trainable weights (bias-corrected warm-up of the decay)."""

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        self.decay = decay
        self.shadow = {
            n: {k: v.detach().clone() for k, v in m.state_dict().items()} for n, m in modules.items()
        }

    @torch.no_grad()
    def update(self, modules: dict[str, torch.nn.Module], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, module in modules.items():
            for key, value in module.state_dict().items():
                shadow = self.shadow[name][key]
                if value.dtype.is_floating_point:
                    shadow.lerp_(value, 1 - decay)
                else:
                    shadow.copy_(value)

    def copy_to(self, modules: dict[str, torch.nn.Module]) -> None:
        for name, module in modules.items():
            module.load_state_dict(self.shadow[name])


def lr_factor(step: int, config: TrainConfig, elapsed: float = 0.0) -> float:
    """Warm-up, then cosine over the budget: steps, or wall time when `max_minutes` ends the run sooner."""
    warm = min(1.0, (step + 1) / max(1, config.warmup))
    progress = step / max(1, config.steps)
    if config.max_minutes:
        progress = max(progress, elapsed / (60 * config.max_minutes))
    progress = min(1.0, progress)
    return warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def write_loss_plot(run_dir: Path) -> None:
    """loss.png from loss.csv: raw loss and a moving average, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(run_dir / LOSS_CSV, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    window = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, alpha=0.3, label="loss")
    ax.plot(steps[window - 1 :], smooth, label=f"moving average ({window})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (x0, pixels in [-1, 1])")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / LOSS_PNG)
    plt.close(fig)


def _trim_loss_log(path: Path, step: int) -> None:
    """Start or continue loss.csv at `step`: rows logged after the last checkpoint are dropped on resume."""
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "elapsed_s"])
        writer.writeheader()
        writer.writerows(rows)


def _save_checkpoint(path: Path, pipe, ema: EMA, opt, step: int, config: TrainConfig, elapsed: float) -> None:
    state = {
        "step": step,
        "elapsed": elapsed,
        "config": asdict(config),
        "modules": {n: m.state_dict() for n, m in trainable_modules(pipe).items()},
        "ema": ema.shadow,
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(data: str | Path, run_dir: str | Path, config: TrainConfig, progress: bool = True):
    """Train (or resume) a nano pipeline on a metadata file; returns the pipeline with EMA weights."""
    torch.set_num_threads(config.threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    pipe = build_nano_pipeline(config.model, seed=config.seed)
    modules = trainable_modules(pipe)
    warm = {}
    if config.init_from:
        warm = warm_start(pipe, config.init_from)
    else:
        # Start the noisy-target half of the DiT input projection at zero: at t = 1 it carries pure noise.
        token_dim = pipe.transformer.config.out_channels
        with torch.no_grad():
            pipe.transformer.x_embedder.weight[:, :token_dim] = 0
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    ema = EMA(modules, config.ema_decay)
    step, elapsed = 0, 0.0
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        ema.shadow = state["ema"]
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        step, elapsed = state["step"], state["elapsed"]
    batcher = TripletBatcher(pipe, read_metadata(data), config)
    weights = batcher.sampling_weights(config.category_weights)
    for m in modules.values():
        m.train()
    _trim_loss_log(run_dir / LOSS_CSV, step)
    started = time.monotonic() - elapsed
    with (
        open(run_dir / LOSS_CSV, "a", newline="", encoding="utf-8") as log,
        tqdm(total=config.steps, initial=step, desc="train nano", disable=not progress) as bar,
    ):
        writer = csv.writer(log)
        while step < config.steps:
            for group in opt.param_groups:
                group["lr"] = config.lr * lr_factor(step, config, time.monotonic() - started)
            indices = random.choices(range(len(batcher)), weights=weights, k=config.batch_size)
            drop = torch.rand(config.batch_size) < config.cfg_dropout
            src, tgt, embeds, mask = batcher.batch(indices, drop)
            t = torch.where(
                torch.rand(config.batch_size) < config.t_one_prob,
                torch.ones(config.batch_size),
                torch.rand(config.batch_size),
            )
            loss = flow_loss(pipe, src, tgt, embeds, mask, t, config.changed_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            ema.update(modules, step)
            step += 1
            elapsed = time.monotonic() - started
            writer.writerow(
                [step, f"{loss.item():.6f}", f"{opt.param_groups[0]['lr']:.3e}", f"{elapsed:.1f}"]
            )
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % config.checkpoint_every == 0:
                log.flush()
                _save_checkpoint(ckpt_path, pipe, ema, opt, step, config, elapsed)
                write_loss_plot(run_dir)
            if config.max_minutes is not None and elapsed > 60 * config.max_minutes:
                break
    _save_checkpoint(ckpt_path, pipe, ema, opt, step, config, elapsed)
    write_loss_plot(run_dir)
    summary = {
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "samples_seen": step * config.batch_size,
        "train_triplets": len(batcher),
        "warm_start": warm,
        "config": asdict(config),
    }
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    ema.copy_to(modules)
    for m in modules.values():
        m.eval()
    return pipe


def warm_start(pipe: Step1XEditPipeline, source: str | Path) -> dict[str, int]:
    """Copy the weights of a saved model into `pipe` where names and shapes match; token embeddings row by
    row for the token strings both vocabularies share. Returns counts for the training summary."""
    old = Step1XEditPipeline.from_pretrained(str(source))
    old_vocab, new_vocab = old.processor.tokenizer.get_vocab(), pipe.processor.tokenizer.get_vocab()
    shared = [(new_vocab[t], i) for t, i in old_vocab.items() if t in new_vocab]
    counts = {"copied": 0, "skipped": 0, "token_rows": len(shared)}
    old_modules = trainable_modules(old)
    with torch.no_grad():
        for name, module in trainable_modules(pipe).items():
            theirs = old_modules[name].state_dict()
            for key, value in module.state_dict().items():
                if key.endswith(("embed_tokens.weight", "lm_head.weight")) and key in theirs:
                    rows_new, rows_old = zip(*shared, strict=True)
                    value[list(rows_new)] = theirs[key][list(rows_old)].to(value.dtype)
                    counts["copied"] += 1
                elif key in theirs and theirs[key].shape == value.shape:
                    value.copy_(theirs[key])
                    counts["copied"] += 1
                else:
                    counts["skipped"] += 1
    return counts


def pipeline_from_checkpoint(path: str | Path) -> Step1XEditPipeline:
    """The EMA weights of a training checkpoint as a ready pipeline (to evaluate a run while it trains)."""
    state = torch.load(Path(path), weights_only=False)
    pipe = build_nano_pipeline(NanoConfig(**state["config"]["model"]), seed=state["config"]["seed"])
    modules = trainable_modules(pipe)
    for name, module in modules.items():
        module.load_state_dict(state["ema"][name])
        module.eval()
    return pipe
