"""build_demo: the six tabs in one gr.Blocks, plus launch() keywords that belong with it."""

from __future__ import annotations

from typing import Any

import gradio as gr

from workbench.image_store import ImageStore
from workbench.ui import admin, arena, arena_admin, curate, edit, rate, rater_link, results, serving
from workbench.ui.context import UIContext, refresh_choices, study_names
from workbench.ui.page import css, head_html
from workbench.ui.settings import AppSettings


def _refresh(ctx: UIContext, kind: str | None, include_archived: bool = False):
    """On page load: the study list, and a valid selection."""

    def choices(current: str | None):
        names = study_names(ctx, kind, include_archived)
        value = current if current in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=value)

    return choices


def build_demo(settings: AppSettings, editor: Any, workbench: Any) -> gr.Blocks:
    """Build the app (no model or database work happens here beyond listing studies on page load)."""
    ctx = UIContext(settings=settings, editor=editor, workbench=workbench)
    with gr.Blocks(title="Step1X-Edit Studio", delete_cache=(3600, 3600)) as demo:
        # A callable value is evaluated on each page load: the model may still be loading at build time.
        gr.Markdown(
            lambda: f"## Step1X-Edit Studio &nbsp;<small>model: `{ctx.editor_name}`</small>",
            elem_id="studio-title",
        )
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            with gr.Tab("Edit", id="edit"):
                edit_study = edit.build(ctx)
            with gr.Tab("Arena", id="arena"):
                arena_study, arena_ui = arena.build(ctx)
            with gr.Tab("Rate", id="rate"):
                rating = rate.build(ctx)
            with gr.Tab("Curate", id="curate"):
                curate_study = curate.build(ctx).study
            with gr.Tab("Results", id="results"):
                results_study = results.build(ctx)
            with gr.Tab("Admin", id="admin"):
                admin_study = admin.build(ctx)
                arena_admin.build(ctx, arena_ui)
        # Fill the study pickers on page load, and again whenever one is opened (new studies appear).
        # Archived studies are hidden from raters and stay in Results and Admin.
        pickers = [(edit_study, "curation", False), (rating.study, "preference", False),
                   (curate_study, "curation", False), (results_study, None, True), (admin_study, None, True),
                   (arena_study, "arena", False)]  # fmt: skip
        for picker, kind, archived in pickers:
            loaded = demo.load(
                _refresh(ctx, kind, archived), [picker], [picker], api_visibility="private", queue=False
            )
            picker.focus(
                refresh_choices(ctx, kind, archived), None, [picker], api_visibility="private", queue=False
            )
            if picker is rating.study:  # then sign the rater in from a rater link or the browser's storage
                rater_link.wire(ctx, loaded, tabs, rating)
    return demo


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """launch() keywords: page assets, no run history (blind rating), served folders, upload limit."""
    data = settings.data_dir.resolve()
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "head": head_html(),
        "css": css(),
        "run_history": False,
        "ssr_mode": False,
        "footer_links": ["api"],
        "max_file_size": settings.max_file_size,
        # Handlers may return edit results and stored images (e.g. the Arena admin's gallery); Gradio copies
        # them into its cache. Nothing in the data folder is served by path (serving.DataFolderGuard): raters'
        # images go through the image store's own route.
        "allowed_paths": [str(data / "images"), str(data / "edits")],
        "app_kwargs": serving.app_kwargs(data, ImageStore(data / "images")),
        "show_error": False,
    }
