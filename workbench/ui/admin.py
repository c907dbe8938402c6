"""Tab 5, Admin: create studies (from an import), add raters, set k and gold rate, progress, export."""

from __future__ import annotations

from typing import Any

import gradio as gr

from workbench.browser_keys import reset
from workbench.ui.auth import is_admin
from workbench.ui.context import (
    DB_EVENT,
    UIContext,
    require,
    status_html,
    study_names,
    study_picker,
    user_errors,
)
from workbench.ui.inputs import number_in_range
from workbench.ui.rater_link import links_markdown, page_url
from workbench.ui.rating import HANDLE_RE
from workbench.ui.results import as_frame
from workbench.ui.results_tables import NO_VOTES, message_frame
from workbench.ui.study_io import export_zip, import_upload


def check_admin(ctx: UIContext, password: str | None, profile: gr.OAuthProfile | None) -> None:
    require(
        is_admin(ctx, password, profile),
        "Admin only: enter the admin password (STUDIO_ADMIN_PASSWORD), or log in with an admin account on the Space.",
    )


def create_study(
    ctx: UIContext, name: str, kind: str, k: float, gold_rate: float, guidelines: str, upload: str | None
) -> str:
    """Create a study (or reuse one with this name) and import the upload (manifest or zip) into it."""
    name = (name or "").strip()
    require(name, "Give the study a name.")
    require(len(name) <= 200, "Study names are at most 200 characters.")
    wb = ctx.workbench
    exists = name in study_names(ctx)
    require(exists or kind in ("preference", "curation"), "Pick the study kind.")
    if not exists:
        k, gold_rate = number_in_range(k, "k", 1, 50), number_in_range(gold_rate, "The gold rate", 0, 0.5)
        wb.create_study(name, kind=kind, k=int(k), gold_rate=gold_rate, guidelines=guidelines or "")
    if not upload:
        require(not exists, f"A study named '{name}' already exists: upload a manifest to import into it.")
        return status_html(f"Created {kind} study '{name}' (empty: import items into it next).")
    report = import_upload(wb, name, upload)
    verb = "Imported into existing" if exists else "Created"
    return status_html(f"{verb} {report['kind']} study '{name}': {report['imported']} rows imported.")


def add_raters(ctx: UIContext, handles: str, role: str) -> str:
    """Register one rater per line; handles already registered are reported as such and keep their role."""
    names = list(dict.fromkeys(h.strip() for h in (handles or "").splitlines() if h.strip()))
    require(names, "List at least one handle (one per line).")
    bad = [h for h in names if not HANDLE_RE.match(h)]
    require(
        not bad, f"Invalid handles: {', '.join(bad[:5])} (letters, digits, . _ - @; at most 64 characters)."
    )
    known = {r["handle"]: r["role"] for r in ctx.workbench.list_raters()}
    new = [h for h in names if h not in known]
    for handle in new:
        ctx.workbench.add_rater(handle, role=role)
    parts = [f"Added {len(new)} {role}(s)."]
    if len(new) < len(names):
        present = ", ".join(f"{h} ({known[h]})" for h in names if h in known)
        parts.append(f"Already present, unchanged: {present}.")
    return status_html(" ".join(parts))


def reset_bindings(ctx: UIContext, handles: str) -> str:
    """Unbind handles from the browser that first used them (a rater on a new computer)."""
    names = [h.strip() for h in (handles or "").splitlines() if h.strip()]
    require(names, "List the handles to reset (one per line).")
    n = reset(ctx.workbench, names)
    return status_html(
        f"Reset {n} browser binding(s); the next browser to sign in with each handle keeps it."
    )


def progress_table(ctx: UIContext, study: str) -> Any:
    """Per-rater progress for a study (from the study statistics)."""
    require(study, "Pick a study.")
    table = as_frame(ctx.workbench.stats(study).get("raters"))
    return message_frame(NO_VOTES) if table.empty else table


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Admin tab; every handler re-checks the password or login."""
    with gr.Row():
        password = gr.Textbox(label="Admin password", type="password", scale=3, elem_id="admin-password")
        if ctx.settings.on_space:
            gr.LoginButton(scale=1)
    with gr.Accordion("Create a study", open=True):
        with gr.Row():
            name = gr.Textbox(label="Name", elem_id="admin-study-name")
            kind = gr.Radio(["preference", "curation"], value="preference", label="Kind")
            k = gr.Number(value=3, minimum=1, maximum=50, precision=0, label="Raters per item (k)")
            gold = gr.Slider(0.0, 0.5, value=0.0, step=0.01, label="Gold (honeypot) rate")
        guidelines = gr.Textbox(label="Guidelines shown to raters (Markdown)", lines=3)
        upload = gr.File(
            label="Import (manifest .jsonl/.csv/.json or .zip with images)",
            file_types=[".zip", ".json", ".jsonl", ".csv"],
        )
        create = gr.Button("Create study", variant="primary", elem_id="admin-create")
        create_status = gr.HTML()
    with gr.Accordion("Raters", open=False):
        handles = gr.Textbox(label="Handles, one per line", lines=3, elem_id="admin-handles")
        role = gr.Radio(["rater", "admin"], value="rater", label="Role")
        with gr.Row():
            add = gr.Button("Add raters", elem_id="admin-add-raters")
            unbind = gr.Button("Reset browser binding", elem_id="admin-reset-binding")
        raters_status = gr.HTML()
    with gr.Accordion("Progress and export", open=False):
        study = study_picker(ctx, None, label="Study", elem_id="admin-study")
        with gr.Row():
            show = gr.Button("Show progress per rater")
            export = gr.Button("Export study")
            link = gr.Button("Rater links", elem_id="admin-links")
        links = gr.Markdown(elem_id="admin-rater-links")
        progress = gr.Dataframe(
            message_frame("Pick a study and press Show progress per rater."),
            label="Progress per rater",
            interactive=False,
            elem_id="admin-progress",
        )
        export_file = gr.File(label="Export")

    def guarded(fn):
        @user_errors
        def handler(secret, *args, profile: gr.OAuthProfile | None = None):
            check_admin(ctx, secret, profile)
            return fn(ctx, *args)

        return handler

    create.click(guarded(create_study), [password, name, kind, k, gold, guidelines, upload], [create_status],
                 api_visibility="private", **DB_EVENT)  # fmt: skip
    add.click(
        guarded(add_raters), [password, handles, role], [raters_status], api_visibility="private", **DB_EVENT
    )
    unbind.click(
        guarded(reset_bindings), [password, handles], [raters_status], api_visibility="private", **DB_EVENT
    )
    show.click(guarded(progress_table), [password, study], [progress], api_visibility="private", **DB_EVENT)

    @user_errors
    def on_links(secret, study_name, request: gr.Request, profile: gr.OAuthProfile | None = None):
        check_admin(ctx, secret, profile)
        require(study_name, "Pick a study.")
        return links_markdown(page_url(request), study_name)

    link.click(on_links, [password, study], [links], api_visibility="private", queue=False)
    export.click(
        guarded(lambda c, s: str(export_zip(c.workbench, s))),
        [password, study],
        [export_file],
        api_visibility="private",
        **DB_EVENT,
    )
    return study
