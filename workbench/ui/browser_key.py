"""The per-browser secret behind handle binding (workbench.browser_keys), for the sign-in UI.

Kept in the browser's localStorage by a gr.BrowserState. The page mints it (MINT_JS runs in the browser before
the sign-in event is sent) and the sign-in reply stores it; every rating action passes it with the handle.
Scripted API clients run no page code, send no key, and so never bind a handle.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from workbench.browser_keys import check_or_bind

STORAGE_KEY = "studio-browser-key"
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


# Event js: (study, handle, key) -> the same with a fresh 256-bit key when the browser has none yet.
# crypto.getRandomValues also works on plain-http origins (randomUUID needs a secure context).
KEY_OR_NEW_JS = """key || Array.from(
  crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join("")"""
MINT_JS = f"(study, handle, key) => [study, handle, {KEY_OR_NEW_JS}]"


def browser_key_state() -> gr.BrowserState:
    """The component that keeps this browser's secret between visits."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY)


def verify(ctx: Any, handle: str, key: Any) -> None:
    """Refuse ``handle`` unless this browser holds it (or it is unbound); see check_or_bind."""
    check_or_bind(ctx.workbench, handle, key if isinstance(key, str) and KEY_RE.match(key) else None)
