"""Tab 2, Rate: blind side-by-side comparison of two anonymised outputs of the same edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from workbench.ui.browser_key import MINT_JS, browser_key_state, verify
from workbench.ui.context import (
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
    ask_question,
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
from workbench.ui.viewer import Pane, compare_viewer_html

CHOICES = [("A (left)", "A"), ("B (right)", "B"), ("Tie", "tie"), ("Both bad", "both_bad")]
MAX_COMMENT_CHARS = 2000
GUIDELINES = Path(__file__).resolve().parents[2] / "assets" / "guidelines.md"
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
    return compare_viewer_html(
        [Pane("Source", p["source_path"], "source"), Pane("A", p["left_path"]), Pane("B", p["right_path"])]
    )


def _screen(task: dict[str, Any] | None, message: str, ok: bool = True) -> tuple:
    """Outputs for every Rate event: state, API json, viewer, instruction, progress, status, cleared inputs,
    and the "answered in another tab" question hidden."""
    return (
        task,
        public_json(task),
        viewer_for(task),
        instruction_html(task),
        progress_html(task, "All items in this study are done. Thank you!"),
        status_html(message, ok),
        None,
        None,
        None,
        None,
        "",
        *no_question(),
    )


def next_item(ctx: UIContext, study: str, handle: str) -> dict[str, Any] | None:
    require(study, "Pick a study to rate.")
    return new_task(ctx.workbench.next_item(study, handle), PUBLIC_IMPRESSION_KEYS, study)


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


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Rate tab (inside an open gr.Tab); returns the study dropdown so the app can refresh it."""
    task = gr.State(None)
    browser_key = browser_key_state()  # binds the typed handle to this browser (workbench.browser_keys)
    with gr.Column(elem_id="rate-panel"):
        with gr.Row():
            handle_box = gr.Textbox(
                label="Your rater handle", placeholder="e.g. alice", scale=2, elem_id="rate-handle"
            )
            study = study_picker(ctx, "preference", label="Study", scale=2, elem_id="rate-study")
            start = gr.Button("Start / resume", variant="primary", scale=1, elem_id="rate-start")
            if ctx.settings.on_space:
                gr.LoginButton(scale=1)
        with gr.Accordion("Guidelines", open=False):
            study_guidelines = gr.Markdown(
                elem_id="rate-study-guidelines"
            )  # the study's own, set by its admin
            gr.Markdown(GUIDELINES.read_text(encoding="utf-8") if GUIDELINES.exists() else "")
        gr.HTML(SHORTCUTS_MD)
        progress = gr.HTML(elem_id="rate-progress")
        instruction = gr.HTML(elem_id="rate-instruction")
        viewer = gr.HTML(elem_id="rate-viewer", js_on_load=None)
        with gr.Row():
            choice = gr.Radio(
                CHOICES, label="Which output follows the instruction better?", elem_id="rate-choice", scale=3
            )
            submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rate-submit", scale=1)
        # Shown right under the answer controls when this screen was answered in another tab.
        with gr.Group(visible=False, elem_id="rate-conflict") as conflict_box:
            conflict_text = gr.HTML(elem_id="rate-conflict-question")
            with gr.Row():
                replace_btn = gr.Button("Replace", variant="primary", elem_id="rate-replace")
                keep_btn = gr.Button("Keep", elem_id="rate-keep")
        with gr.Accordion("Optional: scores (0-10) and comment", open=False):
            with gr.Row():
                semantic = gr.Number(
                    label="Semantic consistency", minimum=0, maximum=10, precision=0, elem_id="rate-semantic"
                )
                quality = gr.Number(
                    label="Perceptual quality", minimum=0, maximum=10, precision=0, elem_id="rate-quality"
                )
                overall = gr.Number(
                    label="Overall", minimum=0, maximum=10, precision=0, elem_id="rate-overall"
                )
            comment = gr.Textbox(
                label="Comment", lines=2, max_length=MAX_COMMENT_CHARS, elem_id="rate-comment"
            )
        with gr.Row():
            undo = gr.Button("Undo last vote (U)", elem_id="rate-undo")
            skip = gr.Button("Skip (S)", elem_id="rate-skip")
        status = gr.HTML(elem_id="rate-status")
        impression = gr.JSON(visible=False, label="impression")
        pending = gr.State(None)

    screen = [
        task,
        impression,
        viewer,
        instruction,
        progress,
        status,
        choice,
        semantic,
        quality,
        overall,
        comment,
        pending,
        conflict_box,
        conflict_text,
    ]
    n_screen = len(screen) - 3
    # Progress and errors show on the status line only, never as an overlay over the answer controls.
    events = {**DB_EVENT, "show_progress_on": [status]}

    def holder(typed, key, profile) -> str:
        """The handle, checked against this browser's key (workbench.browser_keys); an HF login needs no key."""
        handle = resolve_handle(typed, profile)
        if profile is None:
            verify(ctx, handle, key)
        return handle

    @user_errors
    def on_next(study_name, typed, key=None, profile: gr.OAuthProfile | None = None):
        sign_in(ctx, resolve_handle(typed, profile))
        handle = holder(typed, key, profile)
        t = next_item(ctx, study_name, handle)
        return (*_screen(t, f"Signed in as {handle}."), key)

    @user_errors
    def on_submit(
        t,
        study_name,
        typed,
        ch,
        sem,
        qual,
        ovl,
        text,
        shown=None,
        key=None,
        profile: gr.OAuthProfile | None = None,
    ):
        handle = holder(typed, key, profile)
        try:
            nxt, message = submit_vote(ctx, t, handle, ch, sem, qual, ovl, text, shown)
        except AnsweredElsewhere as stale:
            return ask_question(n_screen, {"task": t, "answer": [ch, sem, qual, ovl, text, shown]}, stale)
        return _screen(nxt, message)

    @user_errors
    def on_replace(asked, typed, key=None, profile: gr.OAuthProfile | None = None):
        require(asked, "Nothing to replace.")
        handle = holder(typed, key, profile)
        nxt, message = submit_vote(ctx, asked["task"], handle, *asked["answer"], replace=True)
        return _screen(nxt, message)

    @user_errors
    def on_keep(asked, typed, key=None, profile: gr.OAuthProfile | None = None):
        require(asked, "Nothing to keep.")
        handle = holder(typed, key, profile)
        return _screen(next_item(ctx, asked["task"]["study"], handle), "Kept your answer from the other tab.")

    @user_errors
    def on_undo(study_name, typed, key=None, profile: gr.OAuthProfile | None = None):
        handle = holder(typed, key, profile)
        require(study_name, "Pick a study first.")
        restored = ctx.workbench.undo_vote(study_name, handle)
        require(restored, "Nothing to undo in this study.")
        return _screen(
            new_task(restored, PUBLIC_IMPRESSION_KEYS, study_name), "Last vote undone: answer it again."
        )

    @user_errors
    def on_skip(t, typed, key=None, profile: gr.OAuthProfile | None = None):
        handle = holder(typed, key, profile)
        require(t, "There is no item on screen.")
        ctx.workbench.skip(t["public"]["impression_id"], handle)
        return _screen(next_item(ctx, t["study"], handle), "Skipped.")

    def on_study(study_name):
        text = ctx.workbench.study_info(study_name)["guidelines"] if study_name in study_names(ctx) else ""
        return f"**This study:** {safe_markdown(text)}" if text else ""

    sign_in_io = {
        "inputs": [study, handle_box, browser_key],
        "outputs": [*screen, browser_key],
        "js": MINT_JS,
    }
    start.click(on_next, api_name="next_item", **sign_in_io, **events).then(
        on_study, [study], [study_guidelines], api_visibility="private", queue=False
    )
    handle_box.submit(on_next, api_visibility="private", **sign_in_io, **events)
    submit.click(
        on_submit,
        [task, study, handle_box, choice, semantic, quality, overall, comment, impression, browser_key],
        screen,
        api_name="submit_vote",
        **events,
    ).then(None, js=show_question_js("rate-conflict"), api_visibility="private", queue=False)
    replace_btn.click(
        on_replace, [pending, handle_box, browser_key], screen, api_visibility="private", **events
    )
    keep_btn.click(on_keep, [pending, handle_box, browser_key], screen, api_visibility="private", **events)
    undo.click(on_undo, [study, handle_box, browser_key], screen, api_name="undo_vote", **events)
    skip.click(on_skip, [task, handle_box, browser_key], screen, api_name="skip", **events)
    return study
