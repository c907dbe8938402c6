"""Tab 2, Rate: blind side-by-side comparison of two anonymised outputs of the same edit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from workbench.ui.browser_key import MINT_JS, browser_key_state, verify
from workbench.ui.context import (
    COMPACT,
    DB_EVENT,
    UIContext,
    require,
    status_html,
    study_names,
    study_picker,
    user_errors,
)
from workbench.ui.guidelines import safe_markdown
from workbench.ui.inputs import number_in_range
from workbench.ui.rating import (
    PUBLIC_IMPRESSION_KEYS,
    AnsweredElsewhere,
    ConflictQuestion,
    ask_question,
    conflict_question,
    image_aspect,
    instruction_html,
    new_task,
    no_question,
    progress_html,
    public_json,
    resolve_handle,
    saved_message,
    seconds_on_task,
    show_question_js,
    sign_in,
)
from workbench.ui.study_settings import RaterSettings, completion_html, quota_done, rater_settings
from workbench.ui.viewer import Pane, compare_viewer_html

CHOICES = [("A (left)", "A"), ("B (right)", "B"), ("Tie", "tie"), ("Both bad", "both_bad")]
MAX_COMMENT_CHARS = 2000
GUIDELINES = Path(__file__).resolve().parents[2] / "assets" / "guidelines.md"
FINISHED = "You are done with this study. Thank you!"
# Where a signed-in rater is remembered in the browser (handle and study only: nothing secret).
SIGN_IN_STORAGE_KEY = "studio-rater-sign-in"
SHORTCUTS_MD = (
    '<div class="shortcut-list">Shortcuts: <kbd>1</kbd> A &middot; <kbd>2</kbd> B &middot; <kbd>3</kbd> tie '
    "&middot; <kbd>4</kbd> both bad &middot; <kbd>Enter</kbd> submit &middot; <kbd>U</kbd> undo &middot; "
    "<kbd>S</kbd> skip &middot; <kbd>F</kbd> flicker &middot; <kbd>D</kbd> difference &middot; <kbd>0</kbd> "
    "reset zoom (not while typing in a field)</div>"
)


def viewer_for(task: dict[str, Any] | None) -> str:
    if task is None:
        return ""
    p = task["paths"]
    panes = [
        Pane("Source", p["source_path"], "source"),
        Pane("A", p["left_path"]),
        Pane("B", p["right_path"]),
    ]
    return compare_viewer_html(panes, aspect=image_aspect(p["source_path"]))


def screen(
    task: dict[str, Any] | None,
    message: str,
    settings: RaterSettings = RaterSettings(),
    ok: bool = True,
    held: int = 0,
) -> tuple:
    """Outputs for every Rate event: state, API json, viewer, instruction, progress, status, then the answer
    inputs, cleared or (after an undo) holding the withdrawn answer, and the "answered in another tab" question
    hidden. With no task, `held` unseen items held by other raters make the end screen say "not yet"."""
    previous = (task or {}).get("public", {}).get("previous") or {}
    return (
        task,
        public_json(task, held),
        viewer_for(task),
        instruction_html(task),
        progress_html(task, completion_html(settings, FINISHED, held), settings.quota),
        status_html(message, ok),
        previous.get("choice"),
        previous.get("semantic"),
        previous.get("quality"),
        previous.get("overall"),
        previous.get("comment") or "",
        *no_question(),
    )


def next_item(ctx: UIContext, study: str, handle: str) -> dict[str, Any] | None:
    """The rater's next screen, or None when the study or the rater's quota is done."""
    require(study, "Pick a study to rate.")
    if quota_done(ctx.workbench, study, handle):
        return None
    return new_task(ctx.workbench.next_item(study, handle), PUBLIC_IMPRESSION_KEYS, study)


def show(ctx: UIContext, study: str, handle: str, task: dict[str, Any] | None, message: str) -> tuple:
    """`screen()` for the rater's `task` of `study`; with none, the end screen learns whether other raters
    still hold items the rater has not seen (asked only then: it is one more query)."""
    held = 0
    if task is None and not quota_done(ctx.workbench, study, handle):
        held = ctx.workbench.held_by_others(study, handle)
    return screen(task, message, rater_settings(ctx.workbench, study), held=held)


def open_screen(ctx: UIContext, study: str, handle: str) -> tuple:
    """Sign `handle` in and show their current (or next) item of `study`."""
    sign_in(ctx, handle)
    return show(ctx, study, handle, next_item(ctx, study, handle), f"Signed in as {handle}.")


def score(value: float | None, name: str) -> int | None:
    if value is None:
        return None
    return int(round(number_in_range(value, f"The {name} score", 0, 10)))


def submit_vote(
    ctx: UIContext,
    task: dict[str, Any] | None,
    handle: str,
    choice: str | None,
    semantic: float | None,
    quality: float | None,
    overall: float | None,
    comment: str | None,
    shown: dict[str, Any] | None = None,
    replace: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """Store the vote for the impression on screen (once per impression key); returns (next task, message).

    Raises ``AnsweredElsewhere`` when this screen was answered differently in another tab (nothing stored);
    ``replace=True`` then supersedes that answer.

    ``shown`` is the impression the browser displayed when the rater answered. A second submit of one screen (a
    double click, a retry) can reach the server after the first one already moved the session to the next
    item; it must not become a vote on that unseen item, so it is answered from the session and writes nothing.
    """
    require(task, "There is no item on screen: sign in and press Start.")
    seen = shown.get("impression_id") if isinstance(shown, dict) else None
    if seen is not None and seen != task["public"]["impression_id"]:
        if seen == task.get("answered"):
            return task, "Already saved (duplicate submit ignored) ✓"
        return task, "That screen is no longer current: nothing was saved. Answer the one shown now."
    require(choice in {"A", "B", "tie", "both_bad"}, "Pick A, B, tie or both bad first (keys 1-4).")
    comment = (comment or "").strip()
    require(len(comment) <= MAX_COMMENT_CHARS, f"Keep the comment under {MAX_COMMENT_CHARS} characters.")
    scores = {
        "semantic": score(semantic, "semantic"),
        "quality": score(quality, "quality"),
        "overall": score(overall, "overall"),
    }
    rec = ctx.workbench.submit_vote(
        task["public"]["impression_id"],
        handle,
        choice=choice,
        idempotency_key=task["key"],
        scores={k: v for k, v in scores.items() if v is not None} or None,
        comment=comment,
        seconds_on_task=seconds_on_task(task),
        replace=replace,
    )
    message = saved_message(rec, choice, "Replaced ✓" if replace else "Saved ✓")
    nxt = next_item(ctx, task["study"], handle)
    if nxt is not None:  # remember the screen just answered, to recognise a late replay of it
        nxt["answered"] = task["public"]["impression_id"]
    return nxt, message


@dataclass
class RateWidgets:
    """The Rate tab's components (built by `layout`, connected by `wire`)."""

    task: gr.State
    saved: gr.BrowserState  # {"handle", "study"} of the last sign-in in this browser
    key: gr.BrowserState  # this browser's secret, which binds a handle to it (workbench.browser_keys)
    handle: gr.Textbox
    study: gr.Dropdown
    start: gr.Button
    study_guidelines: gr.Markdown
    progress: gr.HTML
    status: gr.HTML
    instruction: gr.HTML
    viewer: gr.HTML
    choice: gr.Radio
    submit: gr.Button
    undo: gr.Button
    skip: gr.Button
    semantic: gr.Number
    quality: gr.Number
    overall: gr.Number
    comment: gr.Textbox
    impression: gr.JSON
    question: ConflictQuestion  # "answered in another tab: replace?"

    @property
    def screen(self) -> list[gr.components.Component]:
        """Outputs of `screen()`, in order."""
        return [self.task, self.impression, self.viewer, self.instruction, self.progress, self.status,
                self.choice, self.semantic, self.quality, self.overall, self.comment, *self.question.outputs]  # fmt: skip


def _score(label: str, elem_id: str) -> gr.Number:
    return gr.Number(label=label, minimum=0, maximum=10, precision=0, elem_id=elem_id)


def layout(ctx: UIContext) -> RateWidgets:
    """Create the Rate tab's components (inside an open gr.Tab), compact enough that the source, both outputs
    and the answer controls fit one laptop screen (the viewer is sized to the rest by static/studio.js)."""
    task = gr.State(None)
    # A fixed key: the value (a handle anyone could type) is not confidential, and a per-process random key
    # would forget every sign-in when the server restarts.
    saved = gr.BrowserState({}, storage_key=SIGN_IN_STORAGE_KEY, secret=SIGN_IN_STORAGE_KEY)
    key = browser_key_state()
    with gr.Column(elem_id="rate-panel", elem_classes=["study-panel"]):
        with gr.Row(elem_classes=["sign-in-row"]):
            handle = gr.Textbox(
                label="Your rater handle", placeholder="Your rater handle, e.g. alice", scale=2, elem_id="rate-handle",
                **COMPACT,
            )  # fmt: skip
            study = study_picker(ctx, "preference", label="Study", scale=2, elem_id="rate-study", **COMPACT)
            start = gr.Button("Start / resume", variant="primary", scale=1, elem_id="rate-start")
            if ctx.settings.on_space:
                gr.LoginButton(scale=1)
        with gr.Accordion("Guidelines and shortcuts", open=False, elem_id="rate-guidelines"):
            study_guidelines = gr.Markdown(
                elem_id="rate-study-guidelines"
            )  # the study's own, set by its admin
            gr.Markdown(GUIDELINES.read_text(encoding="utf-8") if GUIDELINES.exists() else "")
            gr.HTML(SHORTCUTS_MD)
        with gr.Row(elem_classes=["task-head"]):
            progress = gr.HTML(elem_id="rate-progress", **COMPACT)
            instruction = gr.HTML(elem_id="rate-instruction", **COMPACT)
            status = gr.HTML(elem_id="rate-status", **COMPACT)
        viewer = gr.HTML(elem_id="rate-viewer", js_on_load=None)
        with gr.Row(elem_id="rate-actions", elem_classes=["answer-row"]):
            choice = gr.Radio(
                CHOICES, label="Which output follows the instruction better?", elem_id="rate-choice", scale=4
            )
            submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rate-submit", scale=1)
            undo = gr.Button("Undo last vote (U)", elem_id="rate-undo", scale=1)
            skip = gr.Button("Skip (S)", elem_id="rate-skip", scale=1)
        question = conflict_question("rate")  # right under the answer controls
        with gr.Accordion("Optional: scores (0-10) and comment", open=False):
            with gr.Row():
                semantic = _score("Semantic consistency", "rate-semantic")
                quality = _score("Perceptual quality", "rate-quality")
                overall = _score("Overall", "rate-overall")
            comment = gr.Textbox(
                label="Comment", lines=2, max_length=MAX_COMMENT_CHARS, elem_id="rate-comment"
            )
        impression = gr.JSON(visible=False, label="impression")
    return RateWidgets(task, saved, key, handle, study, start, study_guidelines, progress, status, instruction, viewer,
                       choice, submit, undo, skip, semantic, quality, overall, comment, impression, question)  # fmt: skip


def wire(ctx: UIContext, w: RateWidgets) -> None:
    """Connect the Rate tab's events (each has a stable api_name for gradio_client)."""
    # Progress and errors show on the status line only, never as an overlay over the answer controls.
    events = {**DB_EVENT, "show_progress_on": [w.status]}
    n_screen = len(w.screen) - 3  # the last three outputs are the question's

    def holder(typed, key, profile) -> str:
        """The handle, checked against this browser's key (workbench.browser_keys); an HF login needs no key."""
        handle = resolve_handle(typed, profile)
        if profile is None:
            verify(ctx, handle, key)
        return handle

    @user_errors
    def on_next(study_name, typed, key=None, profile: gr.OAuthProfile | None = None):
        sign_in(ctx, resolve_handle(typed, profile))  # first, so that this sign-in binds a new handle
        handle = holder(typed, key, profile)
        return *open_screen(ctx, study_name, handle), {"handle": handle, "study": study_name}, key

    @user_errors
    def on_submit(t, study_name, typed, ch, sem, qual, ovl, text, shown=None, key=None,
                  profile: gr.OAuthProfile | None = None):  # fmt: skip
        handle = holder(typed, key, profile)
        try:
            nxt, message = submit_vote(ctx, t, handle, ch, sem, qual, ovl, text, shown)
        except AnsweredElsewhere as stale:
            return ask_question(n_screen, {"task": t, "answer": [ch, sem, qual, ovl, text, shown]}, stale)
        return show(ctx, (t or {}).get("study"), handle, nxt, message)

    @user_errors
    def on_replace(asked, typed, key=None, profile: gr.OAuthProfile | None = None):
        require(asked, "Nothing to replace.")
        handle = holder(typed, key, profile)
        nxt, message = submit_vote(ctx, asked["task"], handle, *asked["answer"], replace=True)
        return show(ctx, asked["task"]["study"], handle, nxt, message)

    @user_errors
    def on_keep(asked, typed, key=None, profile: gr.OAuthProfile | None = None):
        require(asked, "Nothing to keep.")
        handle = holder(typed, key, profile)
        study_name = asked["task"]["study"]
        return show(
            ctx,
            study_name,
            handle,
            next_item(ctx, study_name, handle),
            "Kept your answer from the other tab.",
        )

    @user_errors
    def on_undo(study_name, typed, key=None, profile: gr.OAuthProfile | None = None):
        handle = holder(typed, key, profile)
        require(study_name, "Pick a study first.")
        restored = ctx.workbench.undo_vote(study_name, handle)
        require(restored, "Nothing to undo in this study.")
        task = new_task(restored, PUBLIC_IMPRESSION_KEYS, study_name)
        settings = rater_settings(ctx.workbench, study_name)
        return screen(task, "Last vote undone: your answer is selected again; change it or submit.", settings)

    @user_errors
    def on_skip(t, typed, key=None, profile: gr.OAuthProfile | None = None):
        handle = holder(typed, key, profile)
        require(t, "There is no item on screen.")
        ctx.workbench.skip(t["public"]["impression_id"], handle)
        return show(ctx, t["study"], handle, next_item(ctx, t["study"], handle), "Skipped.")

    def on_study(study_name):
        text = ctx.workbench.study_info(study_name)["guidelines"] if study_name in study_names(ctx) else ""
        return f"**This study:** {safe_markdown(text)}" if text else ""

    sign_in_io = {"inputs": [w.study, w.handle, w.key], "outputs": [*w.screen, w.saved, w.key], "js": MINT_JS}
    w.start.click(on_next, api_name="next_item", **sign_in_io, **events).then(
        on_study, [w.study], [w.study_guidelines], api_visibility="private", queue=False
    )
    w.handle.submit(on_next, api_visibility="private", **sign_in_io, **events)
    answers = [w.choice, w.semantic, w.quality, w.overall, w.comment]
    w.submit.click(
        on_submit, [w.task, w.study, w.handle, *answers, w.impression, w.key], w.screen, api_name="submit_vote",
        **events,
    ).then(None, js=show_question_js("rate-conflict"), api_visibility="private", queue=False)  # fmt: skip
    w.question.replace.click(
        on_replace, [w.question.pending, w.handle, w.key], w.screen, api_visibility="private", **events
    )
    w.question.keep.click(
        on_keep, [w.question.pending, w.handle, w.key], w.screen, api_visibility="private", **events
    )
    w.undo.click(on_undo, [w.study, w.handle, w.key], w.screen, api_name="undo_vote", **events)
    w.skip.click(on_skip, [w.task, w.handle, w.key], w.screen, api_name="skip", **events)


def build(ctx: UIContext) -> RateWidgets:
    """Create and connect the Rate tab; the app refreshes `.study` and signs raters in from links with it."""
    widgets = layout(ctx)
    wire(ctx, widgets)
    return widgets
