"""Admin tab, Arena section: declare contestants, system health (failures, timeouts, latency), the prompt
moderation queue, the full arena report, clean_battle export and battle-log import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from workbench.arena.battle_log import export_clean_battles, import_battles
from workbench.arena.contestants import parse_contestants
from workbench.arena.leaderboard import arena_report
from workbench.arena.store import (
    contestants,
    create_arena,
    moderate,
    moderation_queue,
    set_contestants,
    system_health,
)
from workbench.ui.admin import check_admin
from workbench.ui.arena import ArenaUI
from workbench.ui.context import (
    DB_EVENT,
    UIContext,
    refresh_choices,
    require,
    status_html,
    study_names,
    user_errors,
)
from workbench.ui.downloads import private_path, safe_name

EXAMPLE = (Path(__file__).resolve().parents[1] / "arena" / "demo_contestants.toml").read_text(
    encoding="utf-8"
)
QUEUE_STATES = ["pending", "flagged", "approved"]


def declare(ui: ArenaUI, name: str, text: str, upload: str | None) -> str:
    """Create the arena (if new) with the declared contestants, or add/replace contestants of an existing one."""
    name = (name or "").strip()
    require(name and len(name) <= 200, "Give the arena a name (at most 200 characters).")
    if upload:
        path = Path(upload)
        text, fmt = path.read_text(encoding="utf-8"), "json" if path.suffix.lower() == ".json" else "toml"
    else:
        fmt = "json" if (text or "").lstrip().startswith(("[", "{")) and "[[" not in text else "toml"
    specs = parse_contestants(text or "", fmt)
    wb = ui.ctx.workbench
    if name in study_names(ui.ctx, "arena"):
        set_contestants(wb, name, specs)
        verb = "Updated"
    else:
        require(name not in study_names(ui.ctx), f"'{name}' is already a study of another kind.")
        create_arena(wb, name, specs)
        verb = "Created"
    ui.arena.forget(name)
    return status_html(f"{verb} arena '{name}': {', '.join(s.name for s in specs)}.")


def health_table(ui: ArenaUI, study: str) -> pd.DataFrame:
    """Contestants with their settings, state and failure counts."""
    require(study, "Pick an arena.")
    wb = ui.ctx.workbench
    health = {row["system"]: row for row in system_health(wb, study)}
    rows = []
    for _, spec, active in contestants(wb, study, active_only=False):
        h = health.get(spec.name, {})
        rows.append({"system": spec.name, "runs as": spec.describe(), "timeout s": spec.timeout_s, "active": active,
                     "battles": h.get("battles", 0), "failed": h.get("failed", 0), "timed out": h.get("timed_out", 0),
                     "median s": h.get("median_seconds")})  # fmt: skip
    return pd.DataFrame(rows)


def queue_view(ui: ArenaUI, study: str, state: str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Prompts in a moderation state: a numbered table and their source images."""
    require(study, "Pick an arena.")
    rows = moderation_queue(ui.ctx.workbench, study, state)
    table = pd.DataFrame(
        [
            {"#": i, "instruction": r["instruction"], "language": r["language"], "battles": r["battles"]}
            for i, r in enumerate(rows)
        ]  # fmt: skip
    )
    images = [(str(ui.ctx.workbench.images.path(r["source_hash"])), f"#{i}") for i, r in enumerate(rows)]
    return table, images


def decide(ui: ArenaUI, study: str, state: str, number: float | None, decision: str) -> str:
    rows = moderation_queue(ui.ctx.workbench, study, state)
    require(number is not None and 0 <= int(number) < len(rows), "Pick a prompt number from the table.")
    row = rows[int(number)]
    changed = moderate(ui.ctx.workbench, study, row["source_hash"], row["instruction"], decision)
    return status_html(f"Prompt #{int(number)} {decision} ({changed} battle(s)).")


def report_tables(ui: ArenaUI, study: str) -> tuple[pd.DataFrame, ...]:
    """Full leaderboard (both CIs, wins, losses, ties), win-rate matrix, battles, per-language and per-category."""
    require(study, "Pick an arena.")
    rep = arena_report(ui.ctx.workbench, study)

    def grouped(boards: dict[str, pd.DataFrame]) -> pd.DataFrame:
        parts = [b.assign(group=key) for key, b in boards.items()]
        return pd.concat(parts, ignore_index=True).round(3) if parts else pd.DataFrame()

    matrix = (
        rep["win_matrix"].reset_index(names="row vs column") if len(rep["win_matrix"]) else pd.DataFrame()
    )
    return rep["leaderboard"].round(1), matrix, grouped(rep["per_language"]), grouped(rep["per_category"])


def export_file(ui: ArenaUI, study: str, public: bool) -> str:
    require(study, "Pick an arena.")
    # A private temp file, never the data folder: the log names the systems (see workbench.ui.downloads).
    target = private_path(f"clean_battle_{safe_name(study)}{'_public' if public else ''}.json")
    return str(export_clean_battles(ui.ctx.workbench, study, target, public=public))


def import_file(ui: ArenaUI, study: str, upload: str | None) -> str:
    require(study, "Pick an arena.")
    require(upload, "Upload a clean_battle .json or a .jsonl battle log.")
    report = import_battles(ui.ctx.workbench, study, upload, allow_new_systems=True)
    ui.boards.invalidate(study)
    return status_html(f"Imported {report['imported']} battles ({report['without_ids']} without ids).")


def build(ctx: UIContext, ui: ArenaUI) -> None:
    """The Arena section of the Admin tab; every handler checks the admin password or login."""
    names = study_names(ctx, "arena")
    with gr.Accordion("Arena", open=False, elem_id="arena-admin"):
        password = gr.Textbox(label="Admin password", type="password", elem_id="arena-admin-password")
        study = gr.Dropdown(names, value=names[0] if names else None, allow_custom_value=True, label="Arena",
                            elem_id="arena-admin-study")  # fmt: skip
        with gr.Tab("Contestants"):
            text = gr.Code(
                EXAMPLE, language=None, label="Contestants (TOML or JSON)", elem_id="arena-admin-spec"
            )
            spec_file = gr.File(label="…or a .toml / .json file", file_types=[".toml", ".json"])
            declare_button = gr.Button("Create arena / update contestants", variant="primary",
                                       elem_id="arena-admin-declare")  # fmt: skip
            declared = gr.HTML()
            show_health = gr.Button("Show contestants and failures", elem_id="arena-admin-health")
            health = gr.Dataframe(interactive=False, elem_id="arena-admin-health-table")
        with gr.Tab("Moderation"):
            state = gr.Radio(QUEUE_STATES, value="pending", label="Prompts")
            show_queue = gr.Button("Show prompts", elem_id="arena-admin-queue")
            queue = gr.Dataframe(interactive=False, elem_id="arena-admin-queue-table")
            images = gr.Gallery(columns=8, height=150, object_fit="contain", show_label=False)
            with gr.Row():
                number = gr.Number(label="Prompt #", precision=0, elem_id="arena-admin-number")
                approve = gr.Button("Approve", elem_id="arena-admin-approve")
                flag = gr.Button("Flag (hide from public gallery and exports)", variant="stop",
                                 elem_id="arena-admin-flag")  # fmt: skip
            moderated = gr.HTML()
        with gr.Tab("Report"):
            compute = gr.Button("Compute full arena report", elem_id="arena-admin-report")
            tables = [gr.Dataframe(interactive=False, label=label)
                      for label in ("Leaderboard", "Win rate (row vs column)", "Per language", "Per category")]  # fmt: skip
        with gr.Tab("Export / import"):
            public = gr.Checkbox(value=True, label="Public export (without flagged prompts)")
            export = gr.Button("Export clean_battle JSON", elem_id="arena-admin-export")
            exported = gr.File(label="clean_battle JSON")
            upload = gr.File(label="Import battles (.json / .jsonl)", file_types=[".json", ".jsonl"])
            do_import = gr.Button("Import battles", elem_id="arena-admin-import")
            imported = gr.HTML()

    def guarded(fn):
        @user_errors
        def handler(secret: str | None, *args: Any, profile: gr.OAuthProfile | None = None) -> Any:
            check_admin(ctx, secret, profile)
            return fn(ui, *args)

        return handler

    def on(button: gr.Button, fn, inputs: list, outputs: list) -> None:
        button.click(guarded(fn), [password, *inputs], outputs, api_visibility="private", **DB_EVENT)

    study.focus(refresh_choices(ctx, "arena"), None, [study], api_visibility="private", queue=False)
    on(declare_button, declare, [study, text, spec_file], [declared])
    on(show_health, health_table, [study], [health])
    on(show_queue, queue_view, [study, state], [queue, images])
    on(approve, lambda u, s, st, n: decide(u, s, st, n, "approved"), [study, state, number], [moderated])
    on(flag, lambda u, s, st, n: decide(u, s, st, n, "flagged"), [study, state, number], [moderated])
    on(compute, report_tables, [study], tables)
    on(export, export_file, [study, public], [exported])
    on(do_import, import_file, [study, upload], [imported])
