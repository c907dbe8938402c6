"""Tab 1, Edit: run the injected editor on an uploaded image, multi-turn, with an opt-in "send to a study"."""

from __future__ import annotations

import random
from typing import Any

import gradio as gr

from workbench.images import ImageStore
from workbench.ui.context import (
    DB_EVENT,
    GPU_EVENT,
    UIContext,
    require,
    status_html,
    study_picker,
    user_errors,
)
from workbench.ui.gpu import gpu
from workbench.ui.uploads import clear_upload_errors, read_upload

SIZE_LEVELS = [256, 384, 512, 768, 1024]
MAX_INSTRUCTION_CHARS = 1000
MAX_SEED = 2**31 - 1


def edit_store(ctx: UIContext) -> ImageStore:
    """Edit results and their inputs, as lossless PNG named by content hash (served for download)."""
    return ImageStore(ctx.settings.data_dir / "edits")


def save_png(store: ImageStore, image) -> str:
    return str(store.path(store.put(image)))


def run_edit(
    ctx: UIContext,
    image_path: str | None,
    instruction: str,
    steps: float,
    cfg: float,
    seed: float | None,
    random_seed: bool,
    size_level: float,
    history: list[dict[str, Any]] | None,
    progress: Any = None,
) -> tuple[tuple[str, str], int, str, list[dict[str, Any]]]:
    """Edit `image_path` per `instruction`; returns ((before, after) PNG paths, seed used, PNG, new history)."""
    instruction = (instruction or "").strip()
    require(instruction, "Please type an instruction, e.g. 'make the sky orange' or '把天空变成橙色'.")
    require(
        len(instruction) <= MAX_INSTRUCTION_CHARS,
        f"Keep the instruction under {MAX_INSTRUCTION_CHARS} characters.",
    )
    source = read_upload(image_path)
    used_seed = random.randint(0, MAX_SEED) if random_seed or seed is None else int(seed) % (MAX_SEED + 1)

    def on_step(step: int, total: int) -> None:
        if progress is not None:
            progress((step, total), desc="denoising", unit="steps")

    try:
        out = ctx.editor(
            image=source,
            prompt=instruction,
            num_inference_steps=int(steps),
            guidance_scale=float(cfg),
            size_level=int(size_level),
            seed=used_seed,
            callback_on_step_end=on_step,
        )
    except ValueError as exc:  # the pipeline's input errors (ImageInputError subclasses ValueError)
        raise gr.Error(f"The editor rejected this input: {exc}") from exc
    store = edit_store(ctx)
    before, after = save_png(store, source), save_png(store, out.images[0])
    turn = {
        "input": str(before),
        "output": str(after),
        "instruction": instruction,
        "seed": int(out.seed),
        "settings": {"steps": int(steps), "cfg": float(cfg), "size_level": int(size_level)},
    }
    return (str(before), str(after)), int(out.seed), str(after), [*(history or []), turn]


def undo_turn(history: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], str | None, Any]:
    """Drop the last turn; returns (history, image to edit next, slider value)."""
    history = list(history or [])
    require(history, "Nothing to undo yet.")
    dropped = history.pop()
    if history:
        last = history[-1]
        return history, dropped["input"], (last["input"], last["output"])
    return history, dropped["input"], None


def history_gallery(history: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """Gallery items: each turn's output with its instruction as caption."""
    return [(t["output"], f"{i + 1}. {t['instruction']}") for i, t in enumerate(history or [])]


def send_to_study(ctx: UIContext, study: str | None, history: list[dict[str, Any]] | None) -> str:
    """Record the latest turn as a (source, instruction, result) candidate in a curation study.

    Preference items need outputs from two or more systems, so single edits go to curation studies.
    """
    require(history, "Run an edit first; then it can be sent to a study.")
    require(study, "Pick a curation study to send the edit to.")
    turn = history[-1]
    metadata = {"source": "edit-tab", "model": ctx.editor_name, "seed": turn["seed"], **turn["settings"]}
    ctx.workbench.add_candidate(
        study,
        turn["input"],
        turn["instruction"],
        turn["output"],
        None,
        "sent from the Edit tab",
        metadata=metadata,
    )
    return status_html(f"Recorded in study '{study}'.")


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Edit tab's components and events (inside an open gr.Tab); returns its study dropdown."""
    history = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            image = clear_upload_errors(
                gr.Image(
                    label="Image to edit",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    elem_id="edit-input",
                    height=360,
                )
            )
            instruction = gr.Textbox(
                label="Instruction (English or 中文)",
                lines=2,
                max_length=MAX_INSTRUCTION_CHARS,
                placeholder="make the car red / 把汽车变成红色",
                elem_id="edit-instruction",
            )
            with gr.Accordion("Advanced settings", open=False):
                steps = gr.Slider(1, 50, value=28, step=1, label="Denoising steps", elem_id="edit-steps")
                cfg = gr.Slider(1.0, 12.0, value=6.0, step=0.5, label="Guidance scale (CFG)")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                    random_seed = gr.Checkbox(value=True, label="Random seed", elem_id="edit-random-seed")
                size_level = gr.Dropdown(SIZE_LEVELS, value=512, label="Size level (longest side, px)")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
            examples_slot = gr.Column()
        with gr.Column(scale=1):
            result = gr.ImageSlider(
                label="Before / after",
                type="filepath",
                format="png",
                elem_id="edit-result",
                max_height=480,
            )
            with gr.Row():
                used_seed = gr.Number(
                    label="Seed used", interactive=False, precision=0, elem_id="edit-used-seed"
                )
                download = gr.DownloadButton("Download PNG (full resolution)", elem_id="edit-download")
            with gr.Row():
                continue_btn = gr.Button("Continue from result", elem_id="edit-continue")
                undo_btn = gr.Button("Undo last edit", elem_id="edit-undo")
            gallery = gr.Gallery(
                label="History (this session)",
                columns=6,
                height=140,
                object_fit="contain",
                elem_id="edit-history",
            )
            with gr.Accordion("Send to a study (opt-in)", open=False):
                gr.Markdown(
                    "Records the latest edit (source, instruction, result, seed and settings) in a study."
                )
                with gr.Row():
                    study = study_picker(ctx, "curation", label="Curation study", elem_id="edit-study")
                    send = gr.Button("Send", elem_id="edit-send")
                send_status = gr.HTML()

    with examples_slot:
        example_rows = ctx.settings.examples
        if example_rows:
            gr.Examples(example_rows, inputs=[image, instruction], label="Examples")

    model_call = gpu(lambda *args, progress=gr.Progress(): run_edit(ctx, *args, progress=progress))

    def on_edit(img, text, n_steps, guidance, seed_in, rand, size, hist, progress=gr.Progress()):
        pair, seed_out, png, new_hist = model_call(
            img, text, n_steps, guidance, seed_in, rand, size, hist, progress=progress
        )
        return pair, seed_out, png, new_hist, history_gallery(new_hist)

    run.click(
        on_edit,
        [image, instruction, steps, cfg, seed, random_seed, size_level, history],
        [result, used_seed, download, history, gallery],
        api_name="edit",
        **GPU_EVENT,
    )

    def on_continue(hist):
        require(hist, "Run an edit first.")
        return hist[-1]["output"]

    continue_btn.click(on_continue, [history], [image], api_visibility="private", queue=False)

    def on_undo(hist):
        new_hist, img, pair = undo_turn(hist)
        return new_hist, img, pair, history_gallery(new_hist), (pair[1] if pair else None)

    undo_btn.click(
        on_undo, [history], [history, image, result, gallery, download], api_visibility="private", queue=False
    )
    send.click(
        user_errors(lambda s, h: send_to_study(ctx, s, h)),
        [study, history],
        [send_status],
        api_name="send_to_study",
        **DB_EVENT,
    )
    return study
