"""Tab 3, Curate: accept / reject / flag candidate training triplets (source, instruction, target)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from workbench.ui.auth import is_admin
from workbench.ui.context import DB_EVENT, UIContext, escape, require, status_html, study_picker, user_errors
from workbench.ui.rating import (
    PUBLIC_CANDIDATE_KEYS,
    AnsweredElsewhere,
    ask_question,
    instruction_html,
    new_task,
    no_question,
    progress_html,
    public_json,
    resolve_handle,
    saved_message,
    show_question_js,
    sign_in,
)
from workbench.ui.viewer import Pane, compare_viewer_html

MAX_NOTE_CHARS = 2000
SHORTCUTS_MD = (
    '<div class="shortcut-list">Shortcuts: <kbd>A</kbd> accept &middot; <kbd>R</kbd> reject (tick reasons first) '
    "&middot; <kbd>F</kbd> flag &middot; <kbd>U</kbd> undo (not while typing in a field)</div>"
)


def viewer_for(task: dict[str, Any] | None) -> str:
    if task is None:
        return ""
    p = task["paths"]
    return compare_viewer_html([Pane("Source", p["source_path"], "source"), Pane("Target", p["target_path"])])


def filter_html(task: dict[str, Any] | None) -> str:
    """The automatic filter's score and reason, shown to help (not replace) the curator's judgement."""
    if task is None:
        return ""
    pub = task["public"]
    score = pub.get("filter_score")
    score_txt = "n/a" if score is None else f"{float(score):.3f}"
    return f"<b>Filter score:</b> {escape(score_txt)} &middot; {escape(pub.get('filter_reason') or '')}"


def _screen(task: dict[str, Any] | None, message: str, ok: bool = True) -> tuple:
    return (
        task,
        public_json(task),
        viewer_for(task),
        instruction_html(task),
        filter_html(task),
        progress_html(task, "All candidates in this study are reviewed. Thank you!"),
        status_html(message, ok),
        [],
        "",
        *no_question(),
    )


def next_candidate(ctx: UIContext, study: str, handle: str) -> dict[str, Any] | None:
    require(study, "Pick a curation study.")
    return new_task(ctx.workbench.next_candidate(study, handle), PUBLIC_CANDIDATE_KEYS, study)


def submit_decision(
    ctx: UIContext,
    task: dict[str, Any] | None,
    handle: str,
    decision: str,
    reasons: list[str] | None,
    note: str | None,
    replace: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """Store the decision for the candidate on screen (once per display key); returns (next task, message).

    Raises ``AnsweredElsewhere`` when this candidate was decided differently in another tab (nothing stored);
    ``replace=True`` then supersedes that decision.
    """
    require(task, "There is no candidate on screen: sign in and press Start.")
    require(decision in {"accept", "reject", "flag"}, "Decision must be accept, reject or flag.")
    reasons = list(reasons or [])
    require(decision != "reject" or reasons, "Tick at least one reason before rejecting.")
    note = (note or "").strip()
    require(len(note) <= MAX_NOTE_CHARS, f"Keep the note under {MAX_NOTE_CHARS} characters.")
    rec = ctx.workbench.submit_decision(
        task["public"]["candidate_id"],
        handle,
        decision=decision,
        reasons=reasons,
        note=note,
        idempotency_key=task["key"],
        replace=replace,
    )
    done = {"accept": "Accepted", "reject": "Rejected", "flag": "Flagged"}[decision]
    message = saved_message(rec, decision, f"{done} (replaced) ✓" if replace else f"{done} ✓")
    return next_candidate(ctx, task["study"], handle), message


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Curate tab (curators are admins: password, admin role with HF login, or admin org)."""
    task = gr.State(None)
    with gr.Column(elem_id="curate-panel"):
        with gr.Row():
            handle_box = gr.Textbox(label="Curator handle", scale=2, elem_id="curate-handle")
            password = gr.Textbox(
                label="Curator password", type="password", scale=2, elem_id="curate-password"
            )
            study = study_picker(ctx, "curation", label="Curation study", scale=2, elem_id="curate-study")
            start = gr.Button("Start / resume", variant="primary", scale=1, elem_id="curate-start")
        gr.HTML(SHORTCUTS_MD)
        progress = gr.HTML(elem_id="curate-progress")
        instruction = gr.HTML(elem_id="curate-instruction")
        filter_info = gr.HTML(elem_id="curate-filter")
        viewer = gr.HTML(elem_id="curate-viewer", js_on_load=None)
        reasons = gr.CheckboxGroup(choices=[], label="Reasons (for reject or flag)", elem_id="curate-reasons")
        note = gr.Textbox(label="Note (optional)", lines=1, max_length=MAX_NOTE_CHARS, elem_id="curate-note")
        with gr.Row():
            accept = gr.Button("Accept (A)", variant="primary", elem_id="curate-accept")
            reject = gr.Button("Reject (R)", variant="stop", elem_id="curate-reject")
            flag = gr.Button("Flag (F)", elem_id="curate-flag")
            undo = gr.Button("Undo (U)", elem_id="curate-undo")
        # Shown right under the decision buttons when this candidate was decided in another tab.
        with gr.Group(visible=False, elem_id="curate-conflict") as conflict_box:
            conflict_text = gr.HTML(elem_id="curate-conflict-question")
            with gr.Row():
                replace_btn = gr.Button("Replace", variant="primary", elem_id="curate-replace")
                keep_btn = gr.Button("Keep", elem_id="curate-keep")
        status = gr.HTML(elem_id="curate-status")
        pending = gr.State(None)
        candidate = gr.JSON(visible=False, label="candidate")
        # API-only entry point: scripts pass the decision as a string; the buttons above use it too.
        decision_box = gr.Textbox(visible=False)
        decide_api = gr.Button(visible=False)

    screen = [task, candidate, viewer, instruction, filter_info, progress, status, reasons, note, pending,
              conflict_box, conflict_text]  # fmt: skip
    n_screen = len(screen) - 3
    # Progress and errors show on the status line only, never as an overlay over the answer controls.
    events = {**DB_EVENT, "show_progress_on": [status]}

    def check(typed, secret, profile):
        handle = resolve_handle(typed, profile)
        require(
            is_admin(ctx, secret, profile, handle),
            "Curation needs curator rights: enter the curator/admin password (or log in as an admin on the Space).",
        )
        return handle

    @user_errors
    def on_next(study_name, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        sign_in(ctx, handle)
        t = next_candidate(ctx, study_name, handle)
        choices = ctx.workbench.study_info(study_name)["reasons"]
        shown = _screen(t, f"Signed in as {handle}.")
        return (*shown[:7], gr.CheckboxGroup(choices=choices, value=[]), "", *shown[9:])

    @user_errors
    def on_decide(t, typed, secret, decision, chosen, text, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        try:
            nxt, message = submit_decision(ctx, t, handle, decision, chosen, text)
        except AnsweredElsewhere as stale:
            return ask_question(n_screen, {"task": t, "answer": [decision, chosen, text]}, stale)
        return _screen(nxt, message)

    @user_errors
    def on_replace(asked, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(asked, "Nothing to replace.")
        return _screen(*submit_decision(ctx, asked["task"], handle, *asked["answer"], replace=True))

    @user_errors
    def on_keep(asked, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(asked, "Nothing to keep.")
        nxt = next_candidate(ctx, asked["task"]["study"], handle)
        return _screen(nxt, "Kept your decision from the other tab.")

    @user_errors
    def on_undo(study_name, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(study_name, "Pick a study first.")
        restored = ctx.workbench.undo_decision(study_name, handle)
        require(restored, "Nothing to undo in this study.")
        return _screen(new_task(restored, PUBLIC_CANDIDATE_KEYS, study_name), "Last decision undone.")

    start.click(on_next, [study, handle_box, password], screen, api_name="next_candidate", **events)
    decide_api.click(
        on_decide,
        [task, handle_box, password, decision_box, reasons, note],
        screen,
        api_name="submit_decision",
        **events,
    )

    def button_handler(decision: str):
        @user_errors
        def handler(t, typed, secret, chosen, text, profile: gr.OAuthProfile | None = None):
            return on_decide(t, typed, secret, decision, chosen, text, profile)

        return handler

    for button, decision in ((accept, "accept"), (reject, "reject"), (flag, "flag")):
        button.click(
            button_handler(decision),
            [task, handle_box, password, reasons, note],
            screen,
            api_visibility="private",
            **events,
        ).then(None, js=show_question_js("curate-conflict"), api_visibility="private", queue=False)
    for button, handler in ((replace_btn, on_replace), (keep_btn, on_keep)):
        button.click(handler, [pending, handle_box, password], screen, api_visibility="private", **events)
    undo.click(on_undo, [study, handle_box, password], screen, api_name="undo_decision", **events)
    return study
