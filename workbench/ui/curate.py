"""Tab 3, Curate: accept / reject / flag candidate training triplets (source, instruction, target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.ui.auth import is_admin
from workbench.ui.context import (
    COMPACT,
    DB_EVENT,
    UIContext,
    escape,
    humanize,
    require,
    status_html,
    study_picker,
    user_errors,
)
from workbench.ui.rating import (
    PUBLIC_CANDIDATE_KEYS,
    AnsweredElsewhere,
    ConflictQuestion,
    ask_question,
    conflict_question,
    finished_html,
    image_aspect,
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
FINISHED = "All candidates in this study are reviewed. Thank you!"
SHORTCUTS_MD = (
    '<div class="shortcut-list">Shortcuts: <kbd>A</kbd> accept &middot; <kbd>R</kbd> reject (tick reasons first) '
    "&middot; <kbd>F</kbd> flag &middot; <kbd>U</kbd> undo (not while typing in a field)</div>"
)


def viewer_for(task: dict[str, Any] | None) -> str:
    if task is None:
        return ""
    p = task["paths"]
    panes = [Pane("Source", p["source_path"], "source"), Pane("Target", p["target_path"])]
    return compare_viewer_html(panes, aspect=image_aspect(p["source_path"]))


def filter_html(task: dict[str, Any] | None) -> str:
    """The automatic filter's score and reason, shown to help (not replace) the curator's judgement."""
    if task is None:
        return ""
    pub = task["public"]
    score = pub.get("filter_score")
    score_txt = "n/a" if score is None else f"{float(score):.3f}"
    return f"<b>Filter score:</b> {escape(score_txt)} &middot; {escape(pub.get('filter_reason') or '')}"


def screen(task: dict[str, Any] | None, message: str, ok: bool = True, held: int = 0) -> tuple:
    """Outputs for every Curate event; reasons and note are cleared, or after an undo hold the withdrawn ones;
    the "answered in another tab" question hidden. With no task, `held` unseen candidates held by other
    curators make the end screen say "not yet"."""
    previous = (task or {}).get("public", {}).get("previous") or {}
    return (
        task,
        public_json(task, held),
        viewer_for(task),
        instruction_html(task),
        filter_html(task),
        progress_html(task, finished_html(FINISHED, held, noun="candidate")),
        status_html(message, ok),
        previous.get("reasons") or [],
        previous.get("note") or "",
        *no_question(),
    )


def show(ctx: UIContext, study: str, handle: str, task: dict[str, Any] | None, message: str) -> tuple:
    """`screen()` for the curator's `task`; with none, the end screen learns whether other curators still hold
    candidates this one has not seen."""
    return screen(task, message, held=0 if task is not None else ctx.workbench.held_by_others(study, handle))


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


@dataclass
class CurateWidgets:
    """The Curate tab's components (built by `layout`, connected by `wire`)."""

    task: gr.State
    handle: gr.Textbox
    password: gr.Textbox
    study: gr.Dropdown
    start: gr.Button
    progress: gr.HTML
    status: gr.HTML
    instruction: gr.HTML
    filter_info: gr.HTML
    viewer: gr.HTML
    reasons: gr.CheckboxGroup
    note: gr.Textbox
    accept: gr.Button
    reject: gr.Button
    flag: gr.Button
    undo: gr.Button
    candidate: gr.JSON
    decision_box: gr.Textbox  # API-only entry point: scripts pass the decision as a string
    decide_api: gr.Button
    question: ConflictQuestion  # "answered in another tab: replace?"

    @property
    def screen(self) -> list[gr.components.Component]:
        """Outputs of `screen()`, in order."""
        return [self.task, self.candidate, self.viewer, self.instruction, self.filter_info, self.progress,
                self.status, self.reasons, self.note, *self.question.outputs]  # fmt: skip


def layout(ctx: UIContext) -> CurateWidgets:
    """Create the Curate tab's components: source, target and the decision controls on one laptop screen."""
    task = gr.State(None)
    with gr.Column(elem_id="curate-panel", elem_classes=["study-panel"]):
        with gr.Row(elem_classes=["sign-in-row"]):
            handle = gr.Textbox(label="Curator handle", placeholder="Curator handle", scale=2, elem_id="curate-handle",
                                **COMPACT)  # fmt: skip
            password = gr.Textbox(
                label="Curator password", placeholder="Curator password", type="password", scale=2,
                elem_id="curate-password", **COMPACT,
            )  # fmt: skip
            study = study_picker(
                ctx, "curation", label="Curation study", scale=2, elem_id="curate-study", **COMPACT
            )
            start = gr.Button("Start / resume", variant="primary", scale=1, elem_id="curate-start")
        with gr.Row(elem_classes=["task-head"]):
            progress = gr.HTML(elem_id="curate-progress", **COMPACT)
            instruction = gr.HTML(elem_id="curate-instruction", **COMPACT)
            filter_info = gr.HTML(elem_id="curate-filter", **COMPACT)
            status = gr.HTML(elem_id="curate-status", **COMPACT)
        viewer = gr.HTML(elem_id="curate-viewer", js_on_load=None)
        with gr.Column(elem_id="curate-actions", elem_classes=["answer-row"]):
            reasons = gr.CheckboxGroup(
                choices=[], label="Reasons (for reject or flag)", elem_id="curate-reasons"
            )
            with gr.Row():
                note = gr.Textbox(
                    label="Note (optional)", placeholder="Note (optional)", lines=1, max_length=MAX_NOTE_CHARS,
                    elem_id="curate-note", scale=3, **COMPACT,
                )  # fmt: skip
                accept = gr.Button("Accept (A)", variant="primary", elem_id="curate-accept", scale=1)
                reject = gr.Button("Reject (R)", variant="stop", elem_id="curate-reject", scale=1)
                flag = gr.Button("Flag (F)", elem_id="curate-flag", scale=1)
                undo = gr.Button("Undo (U)", elem_id="curate-undo", scale=1)
        question = conflict_question("curate")  # right under the answer controls
        gr.HTML(SHORTCUTS_MD)
        candidate = gr.JSON(visible=False, label="candidate")
        decision_box = gr.Textbox(visible=False)
        decide_api = gr.Button(visible=False)
    return CurateWidgets(task, handle, password, study, start, progress, status, instruction, filter_info, viewer,
                         reasons, note, accept, reject, flag, undo, candidate, decision_box, decide_api, question)  # fmt: skip


def wire(ctx: UIContext, w: CurateWidgets) -> None:
    """Connect the Curate tab's events (curators are admins: password, admin role with HF login, or admin org)."""
    # Progress and errors show on the status line only, never as an overlay over the answer controls.
    events = {**DB_EVENT, "show_progress_on": [w.status]}
    n_screen = len(w.screen) - 3  # the last three outputs are the question's

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
        choices = [(humanize(r), r) for r in ctx.workbench.study_info(study_name)["reasons"]]
        shown = show(ctx, study_name, handle, t, f"Signed in as {handle}.")
        return (*shown[:7], gr.CheckboxGroup(choices=choices, value=[]), "", *shown[9:])

    @user_errors
    def on_decide(t, typed, secret, decision, chosen, text, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        try:
            nxt, message = submit_decision(ctx, t, handle, decision, chosen, text)
        except AnsweredElsewhere as stale:
            return ask_question(n_screen, {"task": t, "answer": [decision, chosen, text]}, stale)
        return show(ctx, (t or {}).get("study"), handle, nxt, message)

    @user_errors
    def on_replace(asked, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(asked, "Nothing to replace.")
        nxt, message = submit_decision(ctx, asked["task"], handle, *asked["answer"], replace=True)
        return show(ctx, asked["task"]["study"], handle, nxt, message)

    @user_errors
    def on_keep(asked, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(asked, "Nothing to keep.")
        study_name = asked["task"]["study"]
        return show(
            ctx,
            study_name,
            handle,
            next_candidate(ctx, study_name, handle),
            "Kept your decision from the other tab.",
        )

    @user_errors
    def on_undo(study_name, typed, secret, profile: gr.OAuthProfile | None = None):
        handle = check(typed, secret, profile)
        require(study_name, "Pick a study first.")
        restored = ctx.workbench.undo_decision(study_name, handle)
        require(restored, "Nothing to undo in this study.")
        was = (restored.get("previous") or {}).get("decision", "")
        message = f"Last decision undone (it was: {was}); its reasons and note are filled in again."
        return screen(new_task(restored, PUBLIC_CANDIDATE_KEYS, study_name), message)

    sign_in_inputs = [w.study, w.handle, w.password]
    w.start.click(on_next, sign_in_inputs, w.screen, api_name="next_candidate", **events)
    decide_inputs = [w.task, w.handle, w.password, w.decision_box, w.reasons, w.note]
    w.decide_api.click(on_decide, decide_inputs, w.screen, api_name="submit_decision", **events)

    def button_handler(decision: str):
        @user_errors
        def handler(t, typed, secret, chosen, text, profile: gr.OAuthProfile | None = None):
            return on_decide(t, typed, secret, decision, chosen, text, profile)

        return handler

    for button, decision in ((w.accept, "accept"), (w.reject, "reject"), (w.flag, "flag")):
        button.click(
            button_handler(decision),
            [w.task, w.handle, w.password, w.reasons, w.note],
            w.screen,
            api_visibility="private",
            **events,
        ).then(None, js=show_question_js("curate-conflict"), api_visibility="private", queue=False)
    for button, handler in ((w.question.replace, on_replace), (w.question.keep, on_keep)):
        button.click(
            handler, [w.question.pending, w.handle, w.password], w.screen, api_visibility="private", **events
        )
    w.undo.click(on_undo, sign_in_inputs, w.screen, api_name="undo_decision", **events)


def build(ctx: UIContext) -> CurateWidgets:
    """Create and connect the Curate tab; the app refreshes `.study` on page load."""
    widgets = layout(ctx)
    wire(ctx, widgets)
    return widgets
