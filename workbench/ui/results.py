"""Tab 4, Results: leaderboard with 95% CIs, win-rate heatmap, per-category, agreement, bias, counts, CSV.

The tables themselves (labels, undefined statistics, empty states) are built in `results_tables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib

matplotlib.use("Agg")  # headless: figures are rendered server-side by gr.Plot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.csvsafe import csv_text
from workbench.ui.auth import is_admin
from workbench.ui.context import DB_EVENT, UIContext, humanize, require, study_picker, user_errors
from workbench.ui.downloads import private_zip, safe_name
from workbench.ui.results_tables import (
    WIN_RATE_DECISIVE,
    WIN_RATE_HALF,
    display,
    message_frame,
    tables,
)

# Tables shown (and exported) from wb.stats(study); the win matrix is drawn as a heatmap and exported too.
SECTIONS = ("leaderboard", "per_category", "per_language", "agreement", "position_bias", "raters", "curation",
            "reasons")  # fmt: skip
BEFORE_COMPUTE = "Enter the admin password, pick a study and press Compute."
TITLES = {"per_category": "Per category", "per_language": "Per language", "curation": "Curation: acceptance",
          "reasons": "Curation: reasons cited"}  # fmt: skip
DEFINITIONS = (
    f"**Two win rates.** The leaderboard's *{WIN_RATE_HALF}* counts every vote, a tie or both-bad as half a "
    f"win; the heatmap's *{WIN_RATE_DECISIVE}* counts decisive votes only (FastChat's pairwise win fraction), "
    "so the two differ whenever there are ties. Intervals are 95% bootstrap intervals over items; "
    f"*not enough data* marks a statistic that is undefined for the votes so far."
)


def as_frame(obj: Any) -> pd.DataFrame:
    """One table for a stats section: a list of rows, a dict of scalars, or a dict of such (grouped by key)."""
    if obj is None:
        return pd.DataFrame()
    if isinstance(obj, list):
        return pd.DataFrame(obj)
    if not isinstance(obj, dict):
        return pd.DataFrame({"value": [obj]})
    scalars = {k: v for k, v in obj.items() if not isinstance(v, dict | list)}
    parts = [pd.DataFrame({"metric": list(scalars), "value": list(scalars.values())})] if scalars else []
    for key, value in obj.items():
        if isinstance(value, dict | list):
            parts.append(as_frame(value).assign(section=key))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def win_matrix_frame(matrix: dict[str, Any] | None) -> pd.DataFrame:
    """{"systems", "values"} from the stats report as a square DataFrame (row system's win rate vs column)."""
    if not matrix or not matrix.get("systems"):
        return pd.DataFrame()
    systems = matrix["systems"]
    return pd.DataFrame(matrix["values"], index=systems, columns=systems, dtype=float)


def leaderboard_plot(rows: list[dict[str, Any]]) -> plt.Figure:
    """Bradley-Terry ratings with their 95% bootstrap CIs as horizontal error bars, best on top."""
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.5 * len(rows) + 1.5)))
    if not rows:
        ax.text(0.5, 0.5, "No votes yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    df = pd.DataFrame(rows).sort_values("rating")
    y = np.arange(len(df))
    # A percentile bootstrap interval need not contain the point estimate (few votes): clip, do not fail.
    err = np.clip(np.vstack([df["rating"] - df["ci_low"], df["ci_high"] - df["rating"]]), 0, None)
    ax.errorbar(df["rating"], y, xerr=err, fmt="o", capsize=4, color="#4338ca")
    ax.set_yticks(y, [f"{s} (n={v})" for s, v in zip(df["system"], df["votes"], strict=True)])
    ax.set_xlabel("Bradley-Terry rating (95% CI)")
    ax.set_title("Leaderboard", loc="left")
    ax.margins(y=0.2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def heatmap_plot(df: pd.DataFrame) -> plt.Figure:
    """Row system's win rate against column system, with the value in each cell."""
    fig, ax = plt.subplots(figsize=(6, 5))
    if df.empty:
        ax.text(0.5, 0.5, "No votes yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    values = df.astype(float).to_numpy()
    im = ax.imshow(values, vmin=0, vmax=1, cmap="RdBu")
    ax.set_xticks(range(df.shape[1]), df.columns, rotation=30, ha="right")
    ax.set_yticks(range(df.shape[0]), df.index)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
    ax.set_title(WIN_RATE_DECISIVE.replace(" (", "\n("))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def csv_bundle(stats: dict[str, Any], frames: dict[str, pd.DataFrame], study: str) -> Path:
    """All tables as CSV files in one private zip (leaderboard.csv, win_matrix.csv, ...); undefined values are
    empty."""
    members = [(f"{name}.csv", csv_text(frames[name], index=False)) for name in SECTIONS]
    members.append(("win_matrix.csv", csv_text(win_matrix_frame(stats.get("win_matrix")))))
    return private_zip(f"results-{safe_name(study)}.zip", members)


def render(ctx: UIContext, study: str) -> tuple:
    """Every Results output for `study`."""
    require(study, "Pick a study.")
    stats = ctx.workbench.stats(study)
    frames = tables(stats, ctx.workbench.study_info(study)["kind"])
    csv = csv_bundle(stats, frames, study)  # full precision; the page rounds
    board_fig, heat_fig = (
        leaderboard_plot(stats.get("leaderboard") or []),
        heatmap_plot(win_matrix_frame(stats.get("win_matrix"))),
    )
    plt.close(board_fig)
    plt.close(heat_fig)
    return (board_fig, heat_fig, *(display(frames[name]) for name in SECTIONS), str(csv))


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Results tab (admins only: system names must stay hidden from raters); returns its picker."""
    with gr.Row():
        password = gr.Textbox(label="Admin password", type="password", scale=2, elem_id="results-password")
        study = study_picker(ctx, None, True, label="Study", scale=3, elem_id="results-study")
        refresh = gr.Button("Compute", variant="primary", scale=1, elem_id="results-refresh")
        csv = gr.DownloadButton("Download CSV (zip)", scale=1, elem_id="results-csv")
    # The titles are drawn inside the figures: a block label would cover the top system's name on a phone.
    with gr.Row():
        board = gr.Plot(show_label=False, min_width=320, elem_id="results-leaderboard")  # phones: stacked
        heat = gr.Plot(show_label=False, min_width=320, elem_id="results-heatmap")
    gr.Markdown(DEFINITIONS, elem_id="results-definitions")
    outputs = []
    for name in SECTIONS:
        title = TITLES.get(name, humanize(name))
        with gr.Accordion(title, open=name in ("leaderboard", "agreement")):
            outputs.append(
                gr.Dataframe(
                    message_frame(BEFORE_COMPUTE),
                    label=title,
                    show_label=False,
                    interactive=False,
                    elem_id=f"results-table-{name}",
                )
            )

    @user_errors
    def on_compute(secret, study_name, profile: gr.OAuthProfile | None = None):
        require(
            is_admin(ctx, secret, profile),
            "Results name the systems, so they are for admins: enter the password.",
        )
        return render(ctx, study_name)

    refresh.click(
        on_compute,
        [password, study],
        [board, heat, *outputs, csv],
        api_name="stats",
        **DB_EVENT,
    )
    return study
