"""Tab 1, Edit: run the injected editor on an uploaded image, multi-turn, with an opt-in "send to a study".

The controls' defaults, ranges and choices are the loaded model's own (`model.edit_settings`): the official
checkpoints get 28 steps, CFG 6 and size levels 512 / 768 / 1024; the embedded toy model its single working
size and step count, without CFG. `layout` builds the widgets, `wire` connects their events.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from model.edit_settings import CFG_OFF, EditSettings, settings_from_config, settings_of
from workbench.gedit import TASK_TYPES
from workbench.image_store import ImageStore
from workbench.instructions import MAX_INSTRUCTION_CHARS, instruction_language, instruction_problem
from workbench.ui.auth import is_admin
from workbench.ui.context import (
    DB_EVENT,
    GPU_EVENT,
    UIContext,
    require,
    status_html,
    study_picker,
    user_errors,
)
from workbench.ui.edit_images import download_copy, fit_to_model, for_display
from workbench.ui.gpu import gpu
from workbench.ui.inputs import number_in_range
from workbench.ui.throttle import EDIT_TIME_BUDGET_S, client_key
from workbench.ui.uploads import clear_upload_errors, read_upload

MAX_SEED = 2**31 - 1
SIZE_LABEL = "Size level (px): the side of a square with the working image's area, not its longest side"
REAL_MODEL_HINT = (
    "For photos, start the app with `--model stepfun-ai/Step1X-Edit` (or a local v1.0 / v1.1 model folder)."
)


def edit_settings(ctx: UIContext) -> EditSettings:
    """The loaded model's settings: as app.py read them from the model folder, else from the editor itself."""
    if ctx.settings.edit_settings is not None:
        return ctx.settings.edit_settings
    if getattr(ctx.editor, "config", None) is not None:
        return settings_of(ctx.editor)
    return settings_from_config({"model_name": ctx.editor_name})


def model_line(settings: EditSettings) -> str:
    """One line saying what the loaded model edits and with which defaults."""
    if settings.native_size is not None:
        n = settings.native_size
        return (
            f"**The embedded model edits {n}×{n} toy scenes**: coloured shapes and letters on a 2×2 grid "
            "(add, remove, replace, recolour, move, restyle, retexture, change a letter, the background or "
            f"the tone), in English or Chinese. Try an example below. {REAL_MODEL_HINT}"
        )
    cfg = f"CFG {settings.guidance:g}" if settings.cfg_applies else "no CFG"
    return (
        f"Model `{settings.model_name}` ({settings.version}): {settings.steps} steps, {cfg}, size level "
        f"{settings.size_level}, CFG rescale cut-off {settings.timesteps_truncate:.2f}."
    )


# ---------------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------------


def edit_store(ctx: UIContext) -> ImageStore:
    """Edit results and their inputs, as lossless PNG named by content hash (served for download)."""
    return ImageStore(ctx.settings.data_dir / "edits")


def save_png(store: ImageStore, image) -> str:
    return str(store.path(store.put(image)))


def _check_numbers(settings: EditSettings, steps, cfg, seed, random_seed, size_level, truncate) -> None:
    """Every given setting finite and within the range the controls offer (an API client can send cfg=NaN,
    which the model turns into a black image reported as a success). None means the model's default."""
    ranges = {
        "Denoising steps": (steps, 1, settings.max_steps),
        "Size level": (size_level, settings.size_levels[0], settings.size_levels[-1]),
        "CFG rescale cut-off": (truncate, 0.0, 1.0),
    }
    if settings.cfg_applies:
        ranges["CFG"] = (cfg, *settings.guidance_range)
    if not random_seed:
        ranges["Seed"] = (seed, 0, MAX_SEED)
    for label, (value, low, high) in ranges.items():
        if value is not None:
            number_in_range(value, label, low, high)


def _sampling(settings: EditSettings, steps, cfg, size_level, truncate) -> dict[str, Any]:
    """Pipeline keywords for the requested settings (None: the model's default); gr.Error when the model
    does not allow them."""
    kwargs = settings.pipeline_kwargs(steps, cfg, size_level, truncate)
    try:
        settings.check(kwargs["num_inference_steps"], kwargs["size_level"])
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc
    return kwargs


def run_edit(
    ctx: UIContext,
    image_path: str | None,
    instruction: str,
    steps: float | None,
    cfg: float | None,
    seed: float | None,
    random_seed: bool,
    size_level: float | None,
    history: list[dict[str, Any]] | None,
    timesteps_truncate: float | None = None,
    progress: Any = None,
) -> tuple[tuple[str, str], int, str, list[dict[str, Any]], str]:
    """Edit `image_path` per `instruction`.

    Returns ((before, after) PNG paths as shown, seed used, download path, new history, notice).
    """
    problem = instruction_problem(instruction)
    require(problem is None, problem or "")
    instruction = instruction.strip()
    settings = edit_settings(ctx)
    _check_numbers(settings, steps, cfg, seed, random_seed, size_level, timesteps_truncate)
    sampling = _sampling(settings, steps, cfg, size_level, timesteps_truncate)
    source, notice = fit_to_model(read_upload(image_path), settings)
    used_seed = random.randint(0, MAX_SEED) if random_seed or seed is None else int(seed) % (MAX_SEED + 1)

    wait = ctx.limits.edits.take(client_key())
    require(wait == 0, f"You have run many edits in a short time: try again in {math.ceil(wait)} s.")
    deadline = time.monotonic() + EDIT_TIME_BUDGET_S

    def on_step(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        """diffusers' step-end callback: report the step, leave the tensors as they are. The model slot is
        shared, so one edit may not hold it past its time budget."""
        require(
            time.monotonic() < deadline,
            f"The edit ran over its {EDIT_TIME_BUDGET_S:.0f} s budget (others are waiting): "
            "use fewer steps or a smaller size.",
        )
        if progress is not None:
            progress((step + 1, sampling["num_inference_steps"]), desc="denoising", unit="steps")
        return tensors

    try:
        out = ctx.editor(
            image=source, prompt=instruction, seed=used_seed, callback_on_step_end=on_step, **sampling
        )
    except ValueError as exc:  # the pipeline's input errors (ImageInputError subclasses ValueError)
        raise gr.Error(f"The editor rejected this input: {exc}") from exc
    store = edit_store(ctx)
    before = save_png(store, for_display(source, settings))
    after = save_png(store, for_display(out.images[0], settings))
    turn_number = len(history or []) + 1
    turn = {
        "input": before,
        "output": after,
        "download": download_copy(store, after, int(out.seed), turn_number),
        "instruction": instruction,
        "language": instruction_language(instruction),
        "seed": int(out.seed),
        "notice": notice,
        "settings": {
            "steps": sampling["num_inference_steps"],
            "cfg": sampling["guidance_scale"],
            "size_level": sampling["size_level"],
            "timesteps_truncate": sampling["timesteps_truncate"],
        },
    }
    return (before, after), turn["seed"], turn["download"], [*(history or []), turn], notice


def undo_turn(history: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], str | None, Any]:
    """Drop the last turn; returns (history, image to edit next, slider value)."""
    history = list(history or [])
    require(history, "Nothing to undo yet.")
    dropped = history.pop()
    if history:
        last = history[-1]
        return history, dropped["input"], (last["input"], last["output"])
    return history, dropped["input"], None


GALLERY_TURNS = 12  # every edit re-sends the gallery: a long session would grow each response without bound


def history_gallery(history: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """Gallery items: the last GALLERY_TURNS turns' outputs, each captioned with its number and instruction."""
    turns = list(enumerate(history or [], start=1))[-GALLERY_TURNS:]
    return [(t["output"], f"{n}. {t['instruction']}") for n, t in turns]


def send_to_study(
    ctx: UIContext,
    study: str | None,
    category: str | None,
    history: list[dict[str, Any]] | None,
    password: str | None = None,
    profile: gr.OAuthProfile | None = None,
) -> str:
    """Record the latest turn as a (source, instruction, result) candidate in a curation study, with the
    instruction's language and the category the user picked (optional).

    Preference items need outputs from two or more systems, so single edits go to curation studies. A candidate
    becomes a curator's next item, so sending needs curator rights and is rate-limited per client; the workbench
    refuses a triplet the study already holds.
    """
    require(
        is_admin(ctx, password, profile),
        "Sending to a study needs curator rights: enter the curator/admin password (or log in as an admin).",
    )
    wait = ctx.limits.sends.take(client_key())
    require(wait == 0, f"Too many edits sent to studies: try again in {math.ceil(wait)} s.")
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
        category=(category or "").strip() or None,
        language=turn.get("language") or instruction_language(turn["instruction"]),
        metadata=metadata,
    )
    return status_html(f"Recorded in study '{study}'.")


# ---------------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------------


@dataclass
class EditWidgets:
    """The Edit tab's components, as `layout` creates them and `wire` connects them."""

    history: gr.State
    image: gr.Image
    instruction: gr.Textbox
    steps: gr.Slider
    cfg: gr.Slider | gr.Number
    truncate: gr.Radio
    seed: gr.Number
    random_seed: gr.Checkbox
    size_level: gr.Dropdown
    run: gr.Button
    result: gr.ImageSlider
    notice: gr.Markdown
    used_seed: gr.Textbox
    download: gr.DownloadButton
    continue_btn: gr.Button
    undo_btn: gr.Button
    gallery: gr.Gallery
    study: gr.Dropdown
    category: gr.Dropdown
    send_password: gr.Textbox
    send: gr.Button
    send_status: gr.HTML


def _sampling_controls(settings: EditSettings) -> dict[str, Any]:
    """Steps, guidance, CFG cut-off, seed and size level, with the model's defaults, ranges and choices."""
    controls: dict[str, Any] = {
        "steps": gr.Slider(
            1, settings.max_steps, value=settings.steps, step=1, label="Denoising steps", elem_id="edit-steps"
        )
    }
    if settings.cfg_applies:
        low, high = settings.guidance_range
        controls["cfg"] = gr.Slider(
            low, high, value=settings.guidance, step=0.5, label="Guidance scale (CFG)", elem_id="edit-cfg"
        )
    else:
        gr.Markdown("This model runs without classifier-free guidance (CFG does not apply).")
        controls["cfg"] = gr.Number(value=CFG_OFF, visible=False, elem_id="edit-cfg")
    controls["truncate"] = gr.Radio(
        list(settings.truncate_choices),
        value=settings.timesteps_truncate,
        label="CFG rescale cut-off (v1.0 release: 1.0 = never rescale; v1.1: 0.93)",
        visible=settings.cfg_applies,
        elem_id="edit-truncate",
    )
    with gr.Row():
        controls["seed"] = gr.Number(
            value=None,
            precision=0,
            minimum=0,
            maximum=MAX_SEED,
            label="Seed (used when Random seed is off)",
            elem_id="edit-seed",
        )
        controls["random_seed"] = gr.Checkbox(value=True, label="Random seed", elem_id="edit-random-seed")
    controls["size_level"] = gr.Dropdown(
        list(settings.size_levels),
        value=settings.size_level,
        label=SIZE_LABEL,
        interactive=len(settings.size_levels) > 1,
        elem_id="edit-size-level",
    )
    return controls


def layout(ctx: UIContext, settings: EditSettings) -> EditWidgets:
    """Create the Edit tab's components (inside an open gr.Tab)."""
    history = gr.State([])
    gr.Markdown(model_line(settings), elem_id="edit-model-line")
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
                placeholder="make the red circle blue / 把红色的圆形变成蓝色",
                elem_id="edit-instruction",
            )
            with gr.Accordion("Advanced settings", open=False):
                controls = _sampling_controls(settings)
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
            if ctx.settings.examples:
                gr.Examples(
                    ctx.settings.examples,
                    inputs=[image, instruction],
                    label="Examples",
                    elem_id="edit-examples",
                )
        with gr.Column(scale=1):
            result = gr.ImageSlider(
                label="Before / after", type="filepath", format="png", elem_id="edit-result", max_height=480
            )
            notice = gr.Markdown(elem_id="edit-notice")
            with gr.Row():
                # Text, not a number box: a number box shows "0" before any edit has used a seed.
                used_seed = gr.Textbox(
                    value="",
                    label="Seed used",
                    interactive=False,
                    placeholder="after an edit",
                    elem_id="edit-used-seed",
                )
                download = gr.DownloadButton("Download PNG", elem_id="edit-download")
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
                    "Records the latest edit (source, instruction, its language, result, seed and settings) "
                    "in a curation study."
                )
                with gr.Row():
                    study = study_picker(ctx, "curation", label="Curation study", elem_id="edit-study")
                    category = gr.Dropdown(
                        list(TASK_TYPES), value=None, allow_custom_value=True, label="Category (optional)",
                        elem_id="edit-category",
                    )  # fmt: skip
                    send_password = gr.Textbox(
                        label="Curator password", type="password", elem_id="edit-send-password"
                    )
                send = gr.Button("Send", elem_id="edit-send")
                send_status = gr.HTML()
    return EditWidgets(
        history=history, image=image, instruction=instruction, run=run, result=result, notice=notice,
        used_seed=used_seed, download=download, continue_btn=continue_btn, undo_btn=undo_btn, gallery=gallery,
        study=study, category=category, send_password=send_password, send=send, send_status=send_status,
        **controls,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------


def _set_busy(busy: bool):
    """While an edit runs, Edit / Continue / Undo are disabled, so no turn is undone under a running edit."""

    def update():
        return [gr.Button(interactive=not busy)] * 3

    return update


def wire(ctx: UIContext, w: EditWidgets) -> None:
    """Connect the Edit tab's events (the `/edit` and `/send_to_study` endpoints among them)."""
    model_call = gpu(lambda *args, progress=gr.Progress(): run_edit(ctx, *args, progress=progress))

    # Defaults of None make the seed (empty until an edit) optional for API clients, like the other settings.
    def on_edit(img, text, n_steps, guidance, seed_in=None, rand=True, size=None, truncate=None, hist=None,
                progress=gr.Progress()):  # fmt: skip
        pair, seed_out, png, new_hist, notice = model_call(
            img, text, n_steps, guidance, seed_in, rand, size, hist, truncate, progress=progress
        )
        return pair, notice, str(seed_out), png, new_hist, history_gallery(new_hist)

    buttons = [w.run, w.continue_btn, w.undo_btn]
    editing = w.run.click(_set_busy(True), None, buttons, api_visibility="private", queue=False).then(
        on_edit,
        [w.image, w.instruction, w.steps, w.cfg, w.seed, w.random_seed, w.size_level, w.truncate, w.history],
        [w.result, w.notice, w.used_seed, w.download, w.history, w.gallery],
        api_name="edit",
        show_progress_on=[w.result],
        **GPU_EVENT,
    )
    # Gradio's page runs `.then` listeners only after a success, so a failed edit unlocks through `.failure`.
    for after in (editing.then, editing.failure):
        after(_set_busy(False), None, buttons, api_visibility="private", queue=False)

    def on_continue(hist):
        require(hist, "Run an edit first.")
        return hist[-1]["output"]

    w.continue_btn.click(on_continue, [w.history], [w.image], api_visibility="private", queue=False)

    def on_undo(hist):
        new_hist, img, pair = undo_turn(hist)
        download = new_hist[-1]["download"] if new_hist else None
        return new_hist, img, pair, history_gallery(new_hist), download, ""

    w.undo_btn.click(
        on_undo,
        [w.history],
        [w.history, w.image, w.result, w.gallery, w.download, w.notice],
        api_visibility="private",
        queue=False,
    )

    @user_errors
    def on_send(study_name, category, hist, secret, profile: gr.OAuthProfile | None = None):
        return send_to_study(ctx, study_name, category, hist, secret, profile)

    w.send.click(
        on_send,
        [w.study, w.category, w.history, w.send_password],
        [w.send_status],
        api_name="send_to_study",
        **DB_EVENT,
    )


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Edit tab (inside an open gr.Tab); returns its study dropdown."""
    widgets = layout(ctx, edit_settings(ctx))
    wire(ctx, widgets)
    return widgets.study
