"""Rater identity and the rater-safe view of an impression (shared by the Rate and Curate tabs)."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from workbench.ui.context import escape, require
from workbench.ui.serving import image_url

HANDLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# The only impression fields a rater's browser or API client ever receives: no system name or id, and no item
# id (gold items are often imported last, so their ids would set them apart). "previous" is the rater's own
# withdrawn answer after an undo (shown pre-selected).
PUBLIC_IMPRESSION_KEYS = ("impression_id", "instruction", "language", "category", "progress", "previous")
PUBLIC_CANDIDATE_KEYS = (
    "candidate_id",
    "instruction",
    "language",
    "category",
    "filter_score",
    "filter_reason",
    "progress",
    "previous",
)


def resolve_handle(typed: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """The rater's handle: the Hugging Face username when logged in (on a Space), else the typed handle."""
    if profile is not None:
        return str(profile.username)
    handle = (typed or "").strip()
    require(handle, "Sign in first: type your rater handle (letters, digits, . _ - @).")
    require(HANDLE_RE.match(handle), "A handle may use letters, digits and . _ - @ (at most 64 characters).")
    return handle


def sign_in(ctx: Any, handle: str) -> None:
    """Register `handle` as a rater on first sign-in (when self sign-up is open; any existing role is kept)."""
    if not ctx.settings.open_signup:
        return
    with contextlib.suppress(ValueError):  # already registered with another role (e.g. admin): keep it
        ctx.workbench.add_rater(handle, role="rater")


def new_task(record: dict[str, Any] | None, keys: tuple[str, ...], study: str) -> dict[str, Any] | None:
    """Session state for one shown impression/candidate: public fields, a fresh idempotency key, a start time.

    The key is minted once per display, so a double click or a client retry of the same submit stores once.
    """
    if record is None:
        return None
    public = {k: record.get(k) for k in keys}
    paths = {
        k: str(record[k]) for k in ("source_path", "left_path", "right_path", "target_path") if record.get(k)
    }
    return {
        "study": study,
        "public": public,
        "paths": paths,
        "key": uuid.uuid4().hex,
        "shown_at": time.monotonic(),
    }


def public_json(task: dict[str, Any] | None, held: int = 0) -> dict[str, Any]:
    """What API clients receive: public fields plus image URLs (content-hash file names only); with no task,
    ``done`` and how many unseen items other raters hold right now (``held_by_others``)."""
    if task is None:
        return {"done": True, "held_by_others": held}
    urls = {k.replace("_path", "_url"): image_url(p) for k, p in task["paths"].items()}
    return {**task["public"], **urls, "done": False}


def progress_html(task: dict[str, Any] | None, finished_html: str, quota: int | None = None) -> str:
    """'Item n of N' (n counts the one on screen). N leaves out the rater's skipped items (they never come back)
    and is capped by the rater's quota; `finished_html` (trusted markup) shows once there is nothing left."""
    if task is None:
        return finished_html
    progress = task["public"].get("progress") or {}
    done, skipped = int(progress.get("done", 0)), int(progress.get("skipped", 0))
    total = max(int(progress.get("total", 0)) - skipped, 0)
    if quota:
        total = min(total, quota)
    return f"<b>Item {min(done + 1, max(total, 1))} of {total}</b> &middot; {done} done"


def finished_html(text: str, held: int = 0, noun: str = "item") -> str:
    """The 'nothing left' line for progress_html; while other raters hold `held` unseen items it says that the
    rater is not done for good instead (a claim that lapses brings its item back)."""
    if not held:
        return f"<b>{escape(text)}</b>"
    many = f"{held} {noun}s are" if held != 1 else f"1 {noun} is"
    return (
        f'<div class="held-by-others"><b>Nothing free for you right now.</b> {many} being answered by other '
        "people. If one of them stops, it comes back: press <b>Start / resume</b> again in a few minutes.</div>"
    )


def instruction_html(task: dict[str, Any] | None) -> str:
    """The edit instruction, escaped, with its language and category."""
    if task is None:
        return ""
    pub = task["public"]
    tags = " · ".join(escape(t) for t in (pub.get("language"), pub.get("category")) if t)
    return f'<div class="rate-instruction"><b>Instruction:</b> {escape(pub.get("instruction"))} <small>{tags}</small></div>'


def seconds_on_task(task: dict[str, Any]) -> float:
    return round(time.monotonic() - task["shown_at"], 3)


def image_aspect(path: str) -> float:
    """Width / height of a stored image (header read only), so the viewer frames fit portrait images too."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError:
        return 1.0
    return width / height if height else 1.0


# Short names of answers for the "answered in another tab" question.
ANSWER_LABELS = {"A": "A", "B": "B", "tie": "tie", "both_bad": "both bad", "accept": "accept", "reject": "reject",
                 "flag": "flag"}  # fmt: skip


class AnsweredElsewhere(Exception):  # an outcome the handlers turn into a question, not an error
    """The screen already holds a different answer, given in another tab: ask before replacing it."""

    def __init__(self, previous: str, new: str) -> None:
        super().__init__(f"answered {previous} elsewhere; now {new}")
        self.previous, self.new = previous, new

    def question(self) -> str:
        """The question the Rate and Curate tabs ask, with Replace / Keep buttons below it."""
        old, new = ANSWER_LABELS.get(self.previous, self.previous), ANSWER_LABELS.get(self.new, self.new)
        return f"You answered this in another tab ({old}). Replace with {new}?"


def saved_message(record: dict[str, Any], answer: str, stored: str) -> str:
    """The status line for a stored answer (``stored``), a retried submit, or the same answer from another tab;
    raises ``AnsweredElsewhere`` when the screen holds a different one than ``answer``."""
    outcome = record.get("outcome", "stored" if record["stored"] else "duplicate")
    if outcome == "conflict":
        raise AnsweredElsewhere(record["previous"], answer)
    if outcome == "same":
        return "Already saved in another tab ✓"
    return stored if record["stored"] else "Already saved (duplicate submit ignored) ✓"


@dataclass
class ConflictQuestion:
    """The "answered in another tab" question under the answer controls, with Replace / Keep."""

    pending: gr.State  # the answer held back while the question is open
    box: gr.Group
    text: gr.HTML
    replace: gr.Button
    keep: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        """The last three outputs of every Rate/Curate event (see no_question / ask_question)."""
        return [self.pending, self.box, self.text]


def conflict_question(prefix: str) -> ConflictQuestion:
    """Build the question (hidden) for the tab whose element ids start with `prefix` ("rate", "curate")."""
    pending = gr.State(None)
    with gr.Group(visible=False, elem_id=f"{prefix}-conflict") as box:
        text = gr.HTML(elem_id=f"{prefix}-conflict-question")
        with gr.Row():
            replace = gr.Button("Replace", variant="primary", elem_id=f"{prefix}-replace")
            keep = gr.Button("Keep", elem_id=f"{prefix}-keep")
    return ConflictQuestion(pending, box, text, replace, keep)


def no_question() -> tuple:
    """The last three outputs of a Rate/Curate event when nothing is asked: pending answer, box, text."""
    return None, gr.Group(visible=False), ""


def ask_question(n_screen: int, pending: dict[str, Any], stale: AnsweredElsewhere) -> tuple:
    """Leave the ``n_screen`` screen outputs as they are and ask whether to replace the other tab's answer."""
    question = f'<div class="answer-conflict" role="alert"><b>{escape(stale.question())}</b></div>'
    return (*[gr.skip()] * n_screen, pending, gr.Group(visible=True), question)


def show_question_js(elem_id: str) -> str:
    """Client-side: bring the "answered in another tab" question into view once it is shown (polled for up to
    2 s: the box appears after the next render; Gradio may render an element id twice, the visible one counts)."""
    return (
        "() => { let tries = 0; const look = () => { for (const box of document.querySelectorAll('#"
        + elem_id
        + "')) { if (box.offsetParent !== null) { box.scrollIntoView({block: 'center'}); return; } }"
        " if (++tries < 20) setTimeout(look, 100); }; setTimeout(look, 50); }"
    )
