"""What every tab receives: settings, the injected editor and the workbench facade, and shared helpers."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr
from sqlalchemy.exc import OperationalError

from workbench.ui.settings import AppSettings
from workbench.ui.throttle import Limits

# Model events share one slot (one GPU); database events run side by side (SQLite/PostgreSQL serialise writers).
F = TypeVar("F", bound=Callable[..., Any])

GPU_EVENT = {"concurrency_id": "gpu", "concurrency_limit": 1}
DB_EVENT = {"concurrency_limit": 8}
# No block frame and no visible label (the placeholder says it): Rate and Curate give the height to the images.
COMPACT = {"container": False, "show_label": False}


@dataclass
class UIContext:
    """Dependencies injected into each tab builder."""

    settings: AppSettings
    editor: Any  # Step1XEditPipeline (or anything with the same __call__ and .name)
    workbench: Any  # workbench.service.Workbench
    limits: Limits = field(default_factory=Limits)  # login backoff and write rate limits of this app

    @property
    def editor_name(self) -> str:
        return str(getattr(self.editor, "name", type(self.editor).__name__))


def escape(text: object) -> str:
    """HTML-escape text that came from users or the database before it is shown."""
    return html.escape("" if text is None else str(text), quote=True)


def humanize(name: object) -> str:
    """A snake_case name as people write it: "over_edit_identity_change" -> "Over edit identity change"."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def status_html(message: str, ok: bool = True) -> str:
    """A short acknowledgement line ("saved", "error: ...") for gr.HTML status components."""
    css = "status-ok" if ok else "status-error"
    return f'<span class="{css}">{escape(message)}</span>'


def storage_error_message(exc: BaseException) -> str:
    """A rater-facing message for a failed write: what went wrong (no SQL, no URL) and that a retry is safe."""
    reason = getattr(exc, "orig", None) or exc
    reason = getattr(reason, "strerror", None) or str(reason).splitlines()[0][:120]
    return (
        f"Not saved: the database could not store this right now ({reason}). "
        "Please try again in a moment; a retried answer is never stored twice."
    )


def user_errors(fn: F) -> F:
    """Show the workbench's input errors (ValueError, LookupError, PermissionError) and storage failures as a
    gr.Error message instead of 'Error'."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, LookupError, PermissionError) as exc:
            raise gr.Error(str(exc).strip("'\"")) from exc
        except (OperationalError, OSError) as exc:  # disk full, read-only database, database unreachable
            raise gr.Error(storage_error_message(exc)) from exc

    return wrapper  # type: ignore[return-value]


def require(condition: object, message: str) -> None:
    """Raise a gr.Error (shown as a clear message in the UI, AppError through gradio_client)."""
    if not condition:
        raise gr.Error(message)


def study_names(ctx: UIContext, kind: str | None = None, include_archived: bool = False) -> list[str]:
    """Study names for the pickers (optionally only one kind); archived studies only where asked (Results, Admin)."""
    studies = ctx.workbench.list_studies(include_archived=include_archived)
    return [s["name"] for s in studies if kind is None or s["kind"] == kind]


def refresh_choices(ctx: UIContext, kind: str | None, include_archived: bool = False) -> Callable[[], Any]:
    """A handler for when a study picker is opened: the study list only. Setting the value too would undo a
    choice the user made while the list was on its way (a slow connection, a loaded server)."""
    return lambda: gr.update(choices=study_names(ctx, kind, include_archived))


def study_picker(
    ctx: UIContext, kind: str | None, include_archived: bool = False, **kwargs: Any
) -> gr.Dropdown:
    """A study dropdown filled now and refreshed on page load; typed names are checked by the workbench."""
    names = study_names(ctx, kind, include_archived)
    return gr.Dropdown(choices=names, value=names[0] if names else None, allow_custom_value=True, **kwargs)
