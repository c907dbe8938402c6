"""Page-level assets passed to launch(): the head script (shortcuts, compare viewer, fit, tab history), the
page-frame stylesheet and the app CSS."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"


@cache
def head_html() -> str:
    """<script> and <style> for launch(head=...): gr.HTML does not run scripts, the document head does; and
    launch(css=...) cannot style the page frame around the app."""
    script = (STATIC / "studio.js").read_text(encoding="utf-8")
    style = (STATIC / "page.css").read_text(encoding="utf-8")
    return f"<script>\n{script}\n</script>\n<style>\n{style}\n</style>"


@cache
def css() -> str:
    """Stylesheet for launch(css=...)."""
    return (STATIC / "studio.css").read_text(encoding="utf-8")
