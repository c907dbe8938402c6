"""Arena tab: a visitor's image and instruction, two anonymous systems side by side, a vote, the names revealed,
and the public leaderboard. API names: ``battle``, ``vote_battle``, ``arena_leaderboard``."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import gradio as gr

from workbench.arena.battles import Arena, BattleFailed
from workbench.arena.leaderboard import PUBLIC_HEADERS, BoardCache
from workbench.arena.store import public_prompts
from workbench.instructions import MAX_INSTRUCTION_CHARS
from workbench.ui.context import DB_EVENT, UIContext, escape, require, status_html, study_names, user_errors
from workbench.ui.uploads import clear_upload_errors, read_upload
from workbench.ui.viewer import Pane, compare_viewer_html

VOTES = [("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both are bad", "both_bad")]
REVEAL_WORDS = {"A": "You preferred A", "B": "You preferred B", "tie": "You called it a tie",
                "both_bad": "You found both bad"}  # fmt: skip
# Both systems of a battle run at once; a few battles may run side by side (local models serialise per model).
ARENA_EVENT = {"concurrency_id": "arena", "concurrency_limit": 4}
INTRO = (
    "Upload a picture and say how to edit it (English or 中文). Two anonymous editors each make their version; "
    "pick the better one, and their names are revealed. Your votes feed the leaderboard below."
)


READY = "Upload an image, type an instruction and press Start battle."


class ArenaUI:
    """The per-app arena engine and leaderboard cache shared by the tab and the Admin section."""

    def __init__(self, ctx: UIContext) -> None:
        self.ctx = ctx
        self.arena = Arena(ctx.workbench)
        self.boards = BoardCache(ctx.workbench)

    def study(self, chosen: str | None) -> str:
        """The chosen arena, else the first one."""
        names = study_names(self.ctx, "arena")
        if chosen:
            require(chosen in names, f"There is no arena named '{chosen}'.")
            return chosen
        require(names, "No arena is set up yet: an admin creates one in the Admin tab.")
        return names[0]


def visitor_id(request: gr.Request | None) -> str:
    """A pseudonym per network address and browser session: ``<address hash>.<session hash>`` (nothing raw)."""
    host = getattr(getattr(request, "client", None), "host", None) or "unknown"
    session = getattr(request, "session_hash", None) or "none"
    digest = hashlib.sha256
    return f"{digest(host.encode()).hexdigest()[:12]}.{digest(session.encode()).hexdigest()[:12]}"


def start_battle(ui: ArenaUI, study: str | None, image_path: str | None, instruction: str | None,
                 visitor: str, avoid: frozenset[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Validate the upload (as the Edit tab does) and run a battle; the state kept for the vote."""
    source = read_upload(image_path)
    name = ui.study(study)
    battle = ui.arena.start(name, visitor, source, instruction or "", avoid=avoid)
    return {**battle, "study": name, "image_path": image_path, "shown_at": time.time(), "voted": None}


def viewer(state: dict[str, Any] | None) -> str:
    if not state:
        return ""
    return compare_viewer_html([Pane("Your image", state["source_path"], "source"), Pane("A", state["left_path"]),
                                Pane("B", state["right_path"])])  # fmt: skip


def reveal_html(result: dict[str, Any]) -> str:
    words = REVEAL_WORDS[result["choice"]]
    return (
        f'<div class="arena-reveal"><strong>{escape(words)}.</strong> '
        f"A was <code>{escape(result['model_a'])}</code>, B was <code>{escape(result['model_b'])}</code>.</div>"
    )


def gallery(ui: ArenaUI, study: str | None) -> list[tuple[str, str]]:
    """Recent prompts that were not flagged by a moderator."""
    names = study_names(ui.ctx, "arena")
    name = study if study in names else (names[0] if names else None)
    return (
        [(p["source_path"], p["instruction"]) for p in public_prompts(ui.ctx.workbench, name)] if name else []
    )


def build(ctx: UIContext) -> tuple[gr.Dropdown, ArenaUI]:
    """Create the Arena tab; returns its study picker (refreshed by the app) and the shared engine."""
    ui = ArenaUI(ctx)
    names = study_names(ctx, "arena")

    def on_board(study_name):
        names_now = study_names(ctx, "arena")
        name = study_name if study_name in names_now else (names_now[0] if names_now else None)
        return (ui.boards.rows(name) if name else []), gallery(ui, name)

    state = gr.State(None)
    with gr.Column(elem_id="arena-panel"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                study = gr.Dropdown(
                    names, value=names[0] if names else None, label="Arena", elem_id="arena-study"
                )
                image = clear_upload_errors(gr.Image(type="filepath", format="png", label="Your image", sources=["upload", "clipboard"],
                                                     height=260, elem_id="arena-input"))  # fmt: skip
                instruction = gr.Textbox(label="Instruction", placeholder="e.g. make the background blue / 把背景变成蓝色",
                                         max_length=MAX_INSTRUCTION_CHARS, lines=2, elem_id="arena-instruction")  # fmt: skip
                start = gr.Button("Start battle", variant="primary", elem_id="arena-start")
            with gr.Column(scale=3):
                shown = gr.HTML(elem_id="arena-viewer")
                status = gr.HTML(status_html(READY), elem_id="arena-status")
                with gr.Row():
                    buttons = [
                        gr.Button(label, interactive=False, elem_id=f"arena-vote-{value}")
                        for label, value in VOTES
                    ]
                reveal = gr.HTML(elem_id="arena-reveal")
                with gr.Row():
                    new_round = gr.Button("New round", elem_id="arena-new")
                    again = gr.Button("Same prompt, new pair", elem_id="arena-again")
        gr.Markdown(
            "### Leaderboard\nBradley–Terry ratings; ranks share a number while their 95 % intervals overlap."
        )
        # Callable values are evaluated on every page load, so a new visitor sees the current board.
        board = gr.Dataframe(lambda: on_board(None)[0], headers=PUBLIC_HEADERS, interactive=False,
                             elem_id="arena-leaderboard")  # fmt: skip
        with gr.Accordion("Recent prompts", open=False):
            recent = gr.Gallery(lambda: on_board(None)[1], columns=6, height=180, elem_id="arena-gallery",
                                show_label=False)  # fmt: skip

    def buttons_state(enabled: bool) -> list[gr.Button]:
        # Built inside handlers: a component constructed at build time would be added to the page.
        return [gr.Button(interactive=enabled) for _ in VOTES]

    def run(study_name, image_path, text, request: gr.Request, avoid=None):
        try:
            battle = start_battle(ui, study_name, image_path, text, visitor_id(request), avoid)
        except BattleFailed as exc:
            return (None, "", status_html(str(exc), ok=False), "", *buttons_state(False))
        return (
            battle,
            viewer(battle),
            status_html("Which edit follows the instruction better?"),
            "",
            *buttons_state(True),
        )

    @user_errors
    def on_start(study_name, image_path, text, request: gr.Request):
        return run(study_name, image_path, text, request)

    @user_errors
    def on_again(current, study_name, image_path, text, request: gr.Request):
        require(current or (image_path and text), "Start a battle first.")
        if current:  # the same prompt as the last battle, with a different pair where there is one
            return run(
                current["study"], current["image_path"], current["instruction"], request, current["pair"]
            )
        return run(study_name, image_path, text, request)

    def on_vote(choice: str):
        @user_errors
        def handler(current):
            require(current, "Start a battle first.")
            require(not current.get("voted"), "You already voted on this battle: start a new round.")
            result = ui.arena.vote(current["battle_id"], choice, time.time() - current["shown_at"])
            ui.boards.invalidate(current["study"])
            return (
                {**current, "voted": choice},
                reveal_html(result),
                status_html("Vote saved ✓"),
                *buttons_state(False),
            )

        return handler

    def on_new():
        return (
            None,
            "",
            "",
            status_html(READY),
            None,
            "",
            *buttons_state(False),
        )

    screen = [state, shown, status, reveal, *buttons]
    events = {**ARENA_EVENT, "show_progress_on": [shown]}
    start.click(on_start, [study, image, instruction], screen, api_visibility="private", **events)
    again.click(on_again, [state, study, image, instruction], screen, api_visibility="private", **events)
    for button, (_, value) in zip(buttons, VOTES, strict=True):
        # The names are revealed at once; the leaderboard (a bootstrap fit) follows in its own step.
        button.click(on_vote(value), [state], [state, reveal, status, *buttons], api_visibility="private",
                     **DB_EVENT).success(on_board, [study], [board, recent], api_visibility="private", **DB_EVENT)  # fmt: skip
    new_round.click(on_new, None, [state, shown, reveal, status, image, instruction, *buttons],
                    api_visibility="private", queue=False)  # fmt: skip
    study.change(on_board, [study], [board, recent], api_visibility="private", **DB_EVENT)
    _api(ui)
    return study, ui


def _api(ui: ArenaUI) -> None:
    """Endpoints for gradio_client (hidden components, so files travel as they do for the Edit tab)."""
    # PNG both ways: Gradio would otherwise re-encode images as lossy WebP (slower, and not what was made).
    hidden = {"visible": False}
    png = {"type": "filepath", "format": "png", "visible": False}
    with gr.Group(visible=False):
        image, text, arena = gr.Image(**png), gr.Textbox(**hidden), gr.Textbox(**hidden)
        battle_id, left = gr.Textbox(**hidden), gr.Image(**png)
        right, choice = gr.Image(**png), gr.Textbox(**hidden)
        answer, rows = gr.JSON(**hidden), gr.JSON(**hidden)
        battle_button, vote_button, board_button = (gr.Button(**hidden) for _ in range(3))

    @user_errors
    def battle(image_path: str | None, instruction: str, arena_name: str, request: gr.Request):
        """Run a battle: (battle id, output A, output B); the systems stay anonymous until the vote."""
        try:
            state = start_battle(ui, arena_name or None, image_path, instruction, visitor_id(request))
        except BattleFailed as exc:
            raise gr.Error(str(exc)) from exc
        return state["battle_id"], state["left_path"], state["right_path"]

    @user_errors
    def vote_battle(token: str, answer_choice: str) -> dict[str, Any]:
        """Vote A, B, tie or both_bad on a battle; returns the revealed names of A and B."""
        result = ui.arena.vote(token, answer_choice)
        ui.boards.invalidate()
        return result

    @user_errors
    def arena_leaderboard(arena_name: str) -> list[dict[str, Any]]:
        """The public leaderboard of an arena (the first arena when empty)."""
        name = ui.study(arena_name or None)
        return [dict(zip(PUBLIC_HEADERS, row, strict=True)) for row in ui.boards.rows(name)]

    battle_button.click(
        battle, [image, text, arena], [battle_id, left, right], api_name="battle", **ARENA_EVENT
    )
    vote_button.click(vote_battle, [battle_id, choice], [answer], api_name="vote_battle", **DB_EVENT)
    board_button.click(arena_leaderboard, [arena], [rows], api_name="arena_leaderboard", **DB_EVENT)
