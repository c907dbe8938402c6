"""Rater links and remembered sign-ins: the Rate tab opens signed in from URL parameters or browser storage.

A link ``<app>/?study=NAME&rater=alice#rate`` (or Prolific's ``?study=NAME&PROLIFIC_PID=...&STUDY_ID=...
&SESSION_ID=...``) signs the rater in and opens the Rate tab on their current item. Without a link, a rater who
signed in before in this browser (gr.BrowserState, i.e. localStorage) is signed in again after a reload, and
their item is opened when the page shows the Rate tab (the tab is kept in the URL hash by static/studio.js).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import gradio as gr

from workbench.ui.browser_key import KEY_OR_NEW_JS, verify
from workbench.ui.context import UIContext, status_html, study_names
from workbench.ui.rate import RateWidgets, open_screen
from workbench.ui.rating import resolve_handle, sign_in

log = logging.getLogger(__name__)
# Query parameters naming the rater, in order of preference (PROLIFIC_PID: Prolific's participant id).
HANDLE_PARAMS = ("PROLIFIC_PID", "rater")
# Prolific fills these placeholders in a study URL; STUDY_ID and SESSION_ID are stored with the study and the
# rater (workbench.rater_sessions, for matching answers to Prolific's submissions) and echoed nowhere.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
# Runs in the browser before the restore handler: the page's own URL (query and hash, which says which tab is
# showing). The server never sees it otherwise: events are posted to the queue's URL.
# The browser key is minted here too when the browser has none yet.
WITH_PAGE_URL_JS = f"(saved, study, url, key) => [saved, study, window.location.href, {KEY_OR_NEW_JS}]"


def link_params(url: str) -> tuple[str | None, str | None]:
    """(handle, study) named by a rater link's query parameters; None for what it does not name."""
    query = dict(parse_qsl(urlsplit(url or "").query))
    handle = next((query[k].strip() for k in HANDLE_PARAMS if (query.get(k) or "").strip()), None)
    study = (query.get("study") or "").strip() or None
    return handle, study


def platform_ids(url: str) -> tuple[str, str, str] | None:
    """("prolific", STUDY_ID, SESSION_ID) named by a Prolific link, else None."""
    query = dict(parse_qsl(urlsplit(url or "").query))
    if not (query.get("PROLIFIC_PID") or "").strip():
        return None
    external_study, session = ((query.get(k) or "").strip() for k in ("STUDY_ID", "SESSION_ID"))
    return ("prolific", external_study, session) if external_study and session else None


def page_url(request: gr.Request | None) -> str:
    """The app's own address as the browser sees it (behind proxies too), without query or fragment."""
    headers = dict(getattr(request, "headers", None) or {})
    referer = headers.get("referer") or ""
    parts = urlsplit(referer)
    if parts.scheme in ("http", "https") and parts.netloc:
        return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
    return f"http://{headers.get('host', '127.0.0.1')}/"


def rater_links(base_url: str, study: str) -> dict[str, str]:
    """The two link forms for `study`: a plain one (append the rater's handle) and one for Prolific."""
    query = urlencode({"study": study})
    return {
        "plain": f"{base_url}?{query}&rater=",
        "prolific": f"{base_url}?{query}&{PROLIFIC_QUERY}#rate",
    }


def links_markdown(base_url: str, study: str) -> str:
    """Admin view of the links (Markdown code spans, so nothing in a study name renders as markup)."""
    links = rater_links(base_url, study.replace("`", ""))
    return (
        f"**Rater link** (append the handle): `{links['plain']}`\n\n"
        f"**Prolific study URL** (Prolific fills in the ids): `{links['prolific']}`\n\n"
        "The study's quota, completion code and redirect URL decide what a rater sees when done."
    )


def _skip_screen(w: RateWidgets) -> list[Any]:
    return [gr.skip() for _ in w.screen]


def _error_screen(w: RateWidgets, message: str) -> list[Any]:
    """Screen outputs that leave everything as it is but say what went wrong on the status line."""
    screen = _skip_screen(w)
    screen[w.screen.index(w.status)] = status_html(message, ok=False)
    return screen


def restore(
    ctx: UIContext,
    w: RateWidgets,
    saved: dict[str, Any] | None,
    picked: str | None,
    url: str | None,
    key: str | None = None,
) -> list[Any]:
    """Outputs [tabs, handle, study, *screen, saved, key] for a page load at `url`: sign in from a link or
    from the browser's storage (the handle must be free or bound to this browser's `key`)."""
    handle, study = link_params(url or "")
    from_link = handle is not None
    if not from_link:
        handle, study = (saved or {}).get("handle"), (saved or {}).get("study")
    if not handle:
        return [gr.skip()] * (3 + len(w.screen)) + [gr.skip(), gr.skip()]
    names = study_names(ctx, "preference")
    tabs = gr.Tabs(selected="rate") if from_link else gr.skip()
    if from_link and study and study not in names:  # never sign a linked rater into some other study
        return [
            tabs,
            handle,
            gr.skip(),
            *_error_screen(w, f"This link names a study that is not open: {study}."),
            gr.skip(),
            gr.skip(),
        ]
    study = study if study in names else picked
    picker = gr.Dropdown(choices=names, value=study)
    if not (from_link or urlsplit(url or "").fragment == "rate"):
        return [tabs, handle, picker, *_skip_screen(w), gr.skip(), gr.skip()]
    try:
        handle = resolve_handle(handle)
        sign_in(ctx, handle)
        verify(ctx, handle, key)
        screen = list(open_screen(ctx, study, handle))
    except (gr.Error, ValueError, LookupError, PermissionError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        return [tabs, handle, picker, *_error_screen(w, message), gr.skip(), gr.skip()]
    ids = platform_ids(url or "") if from_link and study else None
    if ids:
        try:
            ctx.workbench.record_rater_session(study, handle, *ids)
        except ValueError as exc:  # e.g. an unfilled "{{%SESSION_ID%}}": the rater can still rate
            log.warning("rater link of %r: platform ids not stored: %s", study, exc)
    return [tabs, handle, picker, *screen, {"handle": handle, "study": study}, key]


def wire(ctx: UIContext, loaded: Any, tabs: gr.Tabs, w: RateWidgets) -> None:
    """After the page's picker refresh (`loaded`), sign the rater in from the link or the browser's storage."""
    url = gr.Textbox(visible=False)

    def on_load(saved, picked, page_url, key):
        return restore(ctx, w, saved, picked, page_url, key)

    loaded.then(
        on_load,
        [w.saved, w.study, url, w.key],
        [tabs, w.handle, w.study, *w.screen, w.saved, w.key],
        js=WITH_PAGE_URL_JS,
        api_visibility="private",
        show_progress_on=[w.status],
    )
