"""Study guidelines (written by a study's admin) as Markdown that renders text, never active or remote content.

Gradio's Markdown sanitiser keeps ``<form>``, ``<input>`` and external ``<img>``: a guideline could then ask a
rater for a password in a form, or load a tracking pixel that reveals each rater's address and timing to an
outside server. Only Markdown itself is kept: raw HTML is shown as text, and image syntax becomes a plain link
(no request until the rater clicks it).
"""

from __future__ import annotations

import re

IMAGE = re.compile(r"!(?=\[)")  # "![alt](url)" and "![alt][ref]": the "!" makes Markdown load the URL


def safe_markdown(text: str | None) -> str:
    """``text`` with every HTML tag escaped and every Markdown image turned into a link."""
    text = (text or "").replace("&", "&amp;").replace("<", "&lt;")
    return IMAGE.sub(r"\\!", text)
