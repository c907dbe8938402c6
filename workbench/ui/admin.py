"""Tab 5, Admin: create a study with its import (all-or-nothing), manage a study (progress, release a rater's
claims, import more, edit settings, archive, export, delete) and its audit log, add raters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import gradio as gr
import pandas as pd

from workbench.browser_keys import reset
from workbench.studies import StudySpec
from workbench.ui.auth import is_admin
from workbench.ui.context import (
    DB_EVENT,
    UIContext,
    escape,
    require,
    status_html,
    study_names,
    study_picker,
    user_errors,
)
from workbench.ui.inputs import number_in_range
from workbench.ui.rater_link import links_markdown, page_url
from workbench.ui.rating import HANDLE_RE
from workbench.ui.results_tables import message_frame
from workbench.ui.study_io import export_zip, import_upload

DEFAULT_LEASE_MINUTES = 30
# Claims per rater: engine keys -> column headers.
CLAIM_COLUMNS = {"rater": "rater", "done": "done", "in_progress": "in progress", "expired": "expired",
                 "extra": "extra (beyond k)", "skipped": "skipped"}  # fmt: skip
AUDIT_COLUMNS = ["at", "study", "actor", "action", "details"]
NO_CLAIMS = "No rater has opened an item of this study yet: share its rater link (Rater links) or add raters."


def check_admin(ctx: UIContext, password: str | None, profile: gr.OAuthProfile | None) -> None:
    require(
        is_admin(ctx, password, profile),
        "Admin only: enter the admin password (STUDIO_ADMIN_PASSWORD), or log in with an admin account on the Space.",
    )


def actor_of(profile: gr.OAuthProfile | None) -> str:
    """Who is making a change, for the audit log: the Hugging Face login, else the password holder."""
    return f"hf:{profile.username}" if profile is not None else "admin (password)"


def _whole(value: float | None, what: str) -> int | None:
    """A whole number from a gr.Number (None when left empty)."""
    if value is None:
        return None
    require(float(value).is_integer(), f"{what} must be a whole number.")
    return int(value)


def _lease_seconds(minutes: float | None) -> int:
    require(minutes is not None and minutes > 0, "The lease must be a positive number of minutes.")
    return max(1, round(float(minutes) * 60))


def _settings(lease_minutes, quota, code, url) -> dict[str, Any]:  # form values
    # A quota of 0 (or an empty box) means none.
    return {"lease_seconds": _lease_seconds(lease_minutes), "quota": _whole(quota, "The quota") or None,
            "completion_code": (code or "").strip() or None, "redirect_url": (url or "").strip() or None}  # fmt: skip


def create_study(
    ctx: UIContext, actor: str, name: str, kind: str, k: float, gold_rate: float, guidelines: str,
    upload: str | None, lease_minutes: float | None = DEFAULT_LEASE_MINUTES, quota: float | None = None,
    code: str | None = None, url: str | None = None,
) -> str:  # fmt: skip
    """Create a study and import the upload (manifest or zip) into it in one step: nothing is left on failure."""
    name = (name or "").strip()
    require(name, "Give the study a name.")
    require(len(name) <= 200, "Study names are at most 200 characters.")
    require(kind in ("preference", "curation"), "Pick the study kind.")
    require(
        name not in study_names(ctx, include_archived=True),
        f"A study named '{name}' already exists: use 'Import more items' under Manage a study.",
    )
    k, gold_rate = number_in_range(k, "k", 1, 50), number_in_range(gold_rate, "The gold rate", 0, 0.5)
    spec = StudySpec(name, kind=kind, k=int(k), gold_rate=float(gold_rate), guidelines=guidelines or "",
                     **_settings(lease_minutes, quota, code, url))  # fmt: skip
    if not upload:
        ctx.workbench.create_study(actor=actor, **asdict(spec))
        return status_html(
            f"Created {kind} study '{name}' (empty: import items into it under Manage a study)."
        )
    report = import_upload(ctx.workbench, name, upload, create=spec, actor=actor)
    return status_html(f"Created {report['kind']} study '{name}': {report['imported']} rows imported.")


def import_more(ctx: UIContext, actor: str, study: str, upload: str | None) -> str:
    """Import more items (candidates) into an existing study, all-or-nothing."""
    require(study, "Pick a study.")
    require(upload, "Upload a manifest, metadata.json or zip first.")
    report = import_upload(ctx.workbench, study, upload, actor=actor)
    return status_html(f"Imported {report['imported']} more rows into '{study}'.")


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


def progress_summary(progress: dict[str, Any]) -> str:
    """One line: done / in progress / pending / expired (and extra answers beyond k)."""
    p = progress
    return (
        f'<div class="admin-progress"><b>{escape(p["study"])}</b>: {p["items"]} items × k={p["k"]} = '
        f"{p['slots']} answers wanted &middot; <b>{p['done']}</b> done &middot; <b>{p['in_progress']}</b> in "
        f"progress &middot; <b>{p['pending']}</b> pending &middot; <b>{p['expired']}</b> expired claims "
        f"&middot; {p['extra']} extra (beyond k) &middot; lease {p['lease_seconds'] / 60:g} min</div>"
    )


def progress_table(ctx: UIContext, study: str) -> tuple[str, pd.DataFrame]:
    """The study's progress summary and its claims per rater."""
    require(study, "Pick a study.")
    progress = ctx.workbench.study_progress(study)
    claims = pd.DataFrame(progress["raters"], columns=list(CLAIM_COLUMNS)).rename(columns=CLAIM_COLUMNS)
    return progress_summary(progress), message_frame(NO_CLAIMS) if claims.empty else claims


def release(ctx: UIContext, actor: str, study: str, handle: str) -> str:
    """Return a rater's open claims in the study to the pool."""
    require(study, "Pick a study.")
    handle = (handle or "").strip()
    require(handle, "Type the handle of the rater whose claims to release.")
    released = ctx.workbench.release_claims(study, handle, actor=actor)
    if not released:
        return status_html(f"{handle} holds no open claim in '{study}'.")
    return status_html(f"Released {released} claim(s) of {handle}: back in the pool.")


def load_settings(ctx: UIContext, study: str) -> tuple:
    """The editable settings of a study, for the edit form (and the archive button's label)."""
    require(study, "Pick a study.")
    info = ctx.workbench.study_info(study)
    archive = "Unarchive (show to raters again)" if info["archived"] else "Archive (hide from raters)"
    return (info["name"], info["guidelines"], ", ".join(info["reasons"]), info["k"],
            info["lease_seconds"] / 60, info["quota"] or 0, info["completion_code"] or "", info["redirect_url"] or "",
            gr.Button(value=archive))  # fmt: skip


def save_settings(
    ctx: UIContext, actor: str, study: str, name: str, guidelines: str, reasons: str, k: float,
    lease_minutes: float, quota: float | None, code: str, url: str,
) -> tuple[str, Any]:  # fmt: skip
    """Apply the edit form (k only rises); returns the status and the picker (renamed studies stay selected)."""
    require(study, "Pick a study.")
    reason_list = [r.strip() for r in (reasons or "").split(",") if r.strip()]
    changes = {"name": (name or "").strip(), "guidelines": guidelines or "", "k": _whole(k, "k"),
               **_settings(lease_minutes, quota, code, url)}  # fmt: skip
    if ctx.workbench.study_info(study)["kind"] == "curation":
        changes["reasons"] = reason_list
    diff = ctx.workbench.update_study(study, actor=actor, **changes)
    new = changes["name"]
    picker = gr.Dropdown(choices=study_names(ctx, include_archived=True), value=new)
    if not diff:
        return status_html("Nothing changed."), picker
    return status_html(f"Saved: {', '.join(sorted(diff))} changed."), picker


def toggle_archive(ctx: UIContext, actor: str, study: str) -> tuple[str, Any]:
    """Archive the study (hidden from raters, kept in results) or bring it back."""
    require(study, "Pick a study.")
    archived = not ctx.workbench.study_info(study)["archived"]
    ctx.workbench.archive_study(study, actor=actor, archived=archived)
    label = "Unarchive (show to raters again)" if archived else "Archive (hide from raters)"
    message = "archived: raters no longer see it; Results keep it" if archived else "back for raters"
    return status_html(f"'{study}' {message}."), gr.Button(value=label)


def delete(ctx: UIContext, actor: str, study: str, confirm: str) -> tuple[str, str, Any]:
    """Export the study (offered as a download), then delete it; the name must be typed to confirm."""
    require(study, "Pick a study.")
    require((confirm or "").strip() == study, f"Type the study's name ({study}) in the box to confirm.")
    download = export_zip(ctx.workbench, study)
    report = ctx.workbench.delete_study(
        study, confirm.strip(), ctx.settings.data_dir / "deleted-studies", actor=actor
    )
    names = study_names(ctx, include_archived=True)
    message = (
        f"Deleted '{study}' ({report['deleted_rows']} rows); its export is below and kept on the server."
    )
    return status_html(message), str(download), gr.Dropdown(choices=names, value=names[0] if names else None)


def audit_table(ctx: UIContext, study: str | None) -> pd.DataFrame:
    """The audit log of the study (every study's when none is picked), newest first."""
    rows = ctx.workbench.audit_log(study or None)
    if not rows:
        return message_frame(
            "Nothing logged yet: creating, importing, editing or archiving a study is logged here."
        )
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS).assign(details=lambda f: f["details"].map(_details))


def _details(details: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in details.items())


def _create_panel() -> tuple[list[Any], gr.Button, gr.HTML]:
    with gr.Accordion("Create a study", open=True):
        with gr.Row():
            name = gr.Textbox(label="Name", elem_id="admin-study-name")
            kind = gr.Radio(["preference", "curation"], value="preference", label="Kind")
            k = gr.Number(value=3, minimum=1, maximum=50, precision=0, label="Raters per item (k)")
            gold = gr.Slider(0.0, 0.5, value=0.0, step=0.01, label="Gold (honeypot) rate")
        guidelines = gr.Textbox(label="Guidelines shown to raters (Markdown)", lines=3)
        lease, quota, code, url = _settings_fields("admin-new")
        upload = gr.File(
            label="Import (manifest .jsonl/.csv/.json or .zip with images)",
            file_types=[".zip", ".json", ".jsonl", ".csv"],
            elem_id="admin-upload",
        )
        create = gr.Button("Create study and import", variant="primary", elem_id="admin-create")
        status = gr.HTML(elem_id="admin-create-status")
    return [name, kind, k, gold, guidelines, upload, lease, quota, code, url], create, status


def _settings_fields(prefix: str) -> tuple[gr.Number, gr.Number, gr.Textbox, gr.Textbox]:
    with gr.Row():
        lease = gr.Number(value=DEFAULT_LEASE_MINUTES, minimum=0.01, label="Lease (minutes without activity)",
                          elem_id=f"{prefix}-lease")  # fmt: skip
        quota = gr.Number(value=0, minimum=0, precision=0, label="Answers per rater (quota; 0 = no quota)",
                          elem_id=f"{prefix}-quota")  # fmt: skip
        code = gr.Textbox(label="Completion code", elem_id=f"{prefix}-code")
        url = gr.Textbox(label="Redirect URL when done (https://...)", elem_id=f"{prefix}-url")
    return lease, quota, code, url


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Admin tab; every handler re-checks the password or login."""
    with gr.Row():
        password = gr.Textbox(label="Admin password", type="password", scale=3, elem_id="admin-password")
        if ctx.settings.on_space:
            gr.LoginButton(scale=1)
    create_inputs, create, create_status = _create_panel()
    with gr.Accordion("Manage a study", open=False, elem_id="admin-manage"):
        study = study_picker(ctx, None, True, label="Study", elem_id="admin-study")
        status = gr.HTML(elem_id="admin-status")
        with gr.Row():
            show = gr.Button("Show progress", elem_id="admin-show-progress")
            export = gr.Button("Export study", elem_id="admin-export")
            archive = gr.Button("Archive (hide from raters)", elem_id="admin-archive")
            link = gr.Button("Rater links", elem_id="admin-links")
        links = gr.Markdown(elem_id="admin-rater-links")
        summary = gr.HTML(elem_id="admin-progress")
        progress = gr.Dataframe(message_frame("Pick a study and press Show progress."), label="Claims per rater",
                                interactive=False, elem_id="admin-claims")  # fmt: skip
        with gr.Row():
            release_handle = gr.Textbox(label="Rater handle", scale=3, elem_id="admin-release-handle")
            release_btn = gr.Button("Release this rater's claims", scale=1, elem_id="admin-release")
        with gr.Row():
            more = gr.File(label="Import more items (manifest or zip)", file_types=[".zip", ".json", ".jsonl", ".csv"],
                           scale=3, elem_id="admin-more-upload")  # fmt: skip
            import_btn = gr.Button("Import into this study", scale=1, elem_id="admin-import-more")
        with gr.Accordion("Edit settings", open=False, elem_id="admin-edit"):
            load = gr.Button("Load current settings", elem_id="admin-load")
            with gr.Row():
                e_name = gr.Textbox(label="Name", elem_id="admin-edit-name")
                e_k = gr.Number(precision=0, minimum=1, label="Raters per item (k, can only rise)",
                                elem_id="admin-edit-k")  # fmt: skip
            e_guidelines = gr.Textbox(label="Guidelines (Markdown)", lines=3, elem_id="admin-edit-guidelines")
            e_reasons = gr.Textbox(label="Curation reasons (comma-separated)", elem_id="admin-edit-reasons")
            e_lease, e_quota, e_code, e_url = _settings_fields("admin-edit")
            save = gr.Button("Save changes", variant="primary", elem_id="admin-save")
        with gr.Accordion("Delete", open=False):
            confirm = gr.Textbox(label="Type the study's name to confirm", elem_id="admin-delete-confirm")
            delete_btn = gr.Button("Export, then delete the study", variant="stop", elem_id="admin-delete")
        export_file = gr.File(label="Export", elem_id="admin-export-file")
        log_btn = gr.Button("Show audit log", elem_id="admin-show-log")
        log = gr.Dataframe(message_frame("Press Show audit log."), label="Audit log (newest first)",
                           interactive=False, elem_id="admin-log")  # fmt: skip
    with gr.Accordion("Raters", open=False):
        handles = gr.Textbox(label="Handles, one per line", lines=3, elem_id="admin-handles")
        role = gr.Radio(["rater", "admin"], value="rater", label="Role")
        with gr.Row():
            add = gr.Button("Add raters", elem_id="admin-add-raters")
            unbind = gr.Button("Reset browser binding", elem_id="admin-reset-binding")
        raters_status = gr.HTML()

    def guarded(fn, with_actor: bool = True):
        @user_errors
        def handler(secret, *args, profile: gr.OAuthProfile | None = None):
            check_admin(ctx, secret, profile)
            return fn(ctx, actor_of(profile), *args) if with_actor else fn(ctx, *args)

        return handler

    def on(button: gr.Button, fn, inputs: list, outputs: list, with_actor: bool = True) -> None:
        button.click(
            guarded(fn, with_actor), [password, *inputs], outputs, api_visibility="private", **DB_EVENT
        )

    on(unbind, reset_bindings, [handles], [raters_status], with_actor=False)
    name, kind, k, gold, guidelines, upload, lease, quota, code, url = create_inputs
    on(
        create,
        create_study,
        [name, kind, k, gold, guidelines, upload, lease, quota, code, url],
        [create_status],
    )
    on(add, add_raters, [handles, role], [raters_status], with_actor=False)
    on(show, progress_table, [study], [summary, progress], with_actor=False)
    on(release_btn, release, [study, release_handle], [status])
    on(import_btn, import_more, [study, more], [status])
    edit_fields = [e_name, e_guidelines, e_reasons, e_k, e_lease, e_quota, e_code, e_url]
    on(load, load_settings, [study], [*edit_fields, archive], with_actor=False)
    on(save, save_settings, [study, *edit_fields], [status, study])
    on(archive, toggle_archive, [study], [status, archive])
    on(delete_btn, delete, [study, confirm], [status, export_file, study])
    on(log_btn, audit_table, [study], [log], with_actor=False)
    on(export, lambda c, s: str(export_zip(c.workbench, s)), [study], [export_file],
       with_actor=False)  # fmt: skip

    @user_errors
    def on_links(secret, study_name, request: gr.Request, profile: gr.OAuthProfile | None = None):
        check_admin(ctx, secret, profile)
        require(study_name, "Pick a study.")
        return links_markdown(page_url(request), study_name)

    link.click(on_links, [password, study], [links], api_visibility="private", queue=False)
    return study
