"""Page-level assets passed to launch(): the head script (shortcuts, compare viewer) and CSS."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"


@cache
def head_html() -> str:
    """<script> for launch(head=...): gr.HTML does not run scripts, the document head does."""
    return f"<script>\n{(STATIC / 'studio.js').read_text(encoding='utf-8')}\n</script>"


@cache
def css() -> str:
    """Stylesheet for launch(css=...)."""
    return (STATIC / "studio.css").read_text(encoding="utf-8")
