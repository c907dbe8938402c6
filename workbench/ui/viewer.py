"""HTML for the compare viewer: N images that zoom and pan together (behaviour in static/studio.js).

Images are referenced by URL, never inlined: the image store's own route (workbench.ui.serving), whose URLs
name the content hash only. Every string that reaches the page is escaped here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from workbench.ui.serving import image_url


@dataclass(frozen=True)
class Pane:
    """One image in the viewer. role "source" is the reference for flicker and difference modes."""

    label: str
    path: str | Path
    role: str = "output"  # "source" | "output"


def _pane_html(pane: Pane, source_url: str) -> str:
    url = html.escape(image_url(pane.path), quote=True)
    label = html.escape(pane.label)
    alt = ""
    if pane.role == "output":
        # The source sits under each output for flicker mode; the canvas receives the difference map.
        alt = (
            f'<img class="sx-alt" src="{html.escape(source_url, quote=True)}" alt="source" draggable="false">'
            '<canvas class="sx-diff"></canvas>'
        )
    return (
        f'<figure class="sx-pane" data-role="{html.escape(pane.role, quote=True)}">'
        f"<figcaption>{label}</figcaption>"
        f'<div class="sx-frame"><div class="sx-layer">'
        f'<img class="sx-main" src="{url}" alt="{label}" draggable="false">{alt}'
        f'</div></div><div class="sx-note"></div></figure>'
    )


def compare_viewer_html(panes: list[Pane], aspect: float = 1.0) -> str:
    """Viewer markup for `panes`; the first pane with role "source" drives flicker and difference modes."""
    if not panes:
        return ""
    source = next((p for p in panes if p.role == "source"), panes[0])
    source_url = image_url(source.path)
    has_outputs = any(p.role == "output" for p in panes)
    modes = (
        '<button data-sx-mode="flicker" title="Alternate each output with the source (F)">Flicker</button>'
        '<button data-sx-mode="diff" title="Show |output - source| (D)">Difference</button>'
        if has_outputs
        else ""
    )
    toolbar = (
        '<div class="sx-toolbar">'
        f"{modes}"
        '<button data-sx-action="reset" title="Reset zoom (0)">Reset zoom</button>'
        '<span class="sx-zoom">100%</span>'
        '<span class="sx-hint">Scroll to zoom, drag to pan: all images move together.</span>'
        "</div>"
    )
    body = "".join(_pane_html(p, source_url) for p in panes)
    style = f"--sx-n:{len(panes)};--sx-aspect:{max(0.2, min(5.0, aspect)):.4f}"
    return f'<div class="sx-viewer" data-mode="side" style="{style}">{toolbar}<div class="sx-panes">{body}</div></div>'
