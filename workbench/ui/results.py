"""Tab 4, Results: leaderboard with 95% CIs, win-rate heatmap, per-category, agreement, bias, counts, CSV."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib

matplotlib.use("Agg")  # headless: figures are rendered server-side by gr.Plot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.ui.context import DB_EVENT, UIContext, require, study_picker, user_errors  # noqa: E402

SECTIONS = ("leaderboard", "per_category", "agreement", "position_bias", "raters", "curation")


def as_frame(obj: Any) -> pd.DataFrame:
    """A table for any stats section: a DataFrame, a list of rows, a dict of rows, or a dict of scalars."""
    if obj is None:
        return pd.DataFrame()
    if isinstance(obj, pd.DataFrame):
        return obj.reset_index() if obj.index.name else obj
    if isinstance(obj, list):
        return pd.DataFrame(obj)
    if isinstance(obj, dict):
        if obj and all(isinstance(v, list) and all(isinstance(r, dict) for r in v) for v in obj.values()):
            return pd.concat([pd.DataFrame(v).assign(group=k) for k, v in obj.items()], ignore_index=True)
        if all(not isinstance(v, dict | list) for v in obj.values()):
            return pd.DataFrame({"metric": list(obj), "value": list(obj.values())})
        return pd.DataFrame.from_dict(obj, orient="index").reset_index(names="key")
    return pd.DataFrame({"value": [obj]})


def leaderboard_plot(rows: list[dict[str, Any]]) -> plt.Figure:
    """Bradley-Terry ratings with their 95% bootstrap CIs as horizontal error bars, best on top."""
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.5 * len(rows) + 1)))
    if not rows:
        ax.text(0.5, 0.5, "No votes yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    df = pd.DataFrame(rows).sort_values("rating")
    y = np.arange(len(df))
    err = np.vstack([df["rating"] - df["ci_low"], df["ci_high"] - df["rating"]])
    ax.errorbar(df["rating"], y, xerr=err, fmt="o", capsize=4, color="#4338ca")
    ax.set_yticks(y, [f"{s} (n={v})" for s, v in zip(df["system"], df["votes"], strict=True)])
    ax.set_xlabel("Bradley-Terry rating (95% CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def heatmap_plot(matrix: Any) -> plt.Figure:
    """Row system's win rate against column system (ties excluded or split as the stats module decides)."""
    df = as_frame(matrix) if not isinstance(matrix, pd.DataFrame) else matrix
    if "key" in df.columns:
        df = df.set_index("key")
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
    ax.set_title("Win rate of row vs column")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def csv_bundle(stats: dict[str, Any], study: str, folder: Path) -> Path:
    """All tables as CSV files in one zip (leaderboard.csv, win_matrix.csv, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in study)[:80] or "study"
    path = folder / f"results-{safe}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (*SECTIONS, "win_matrix"):
            if name in stats:
                frame = stats[name] if isinstance(stats[name], pd.DataFrame) else as_frame(stats[name])
                zf.writestr(f"{name}.csv", frame.to_csv(index=isinstance(stats[name], pd.DataFrame)))
    path.write_bytes(buf.getvalue())
    return path


def render(ctx: UIContext, study: str) -> tuple:
    """Every Results output for `study`."""
    require(study, "Pick a study.")
    stats = ctx.workbench.stats(study)
    tables = [as_frame(stats.get(name)) for name in SECTIONS]
    csv = csv_bundle(stats, study, ctx.settings.export_dir)
    board_fig, heat_fig = (
        leaderboard_plot(stats.get("leaderboard") or []),
        heatmap_plot(stats.get("win_matrix")),
    )
    plt.close(board_fig)
    plt.close(heat_fig)
    return (board_fig, heat_fig, *tables, str(csv))


def build(ctx: UIContext) -> gr.Dropdown:
    """Create the Results tab; returns its study dropdown."""
    with gr.Row():
        study = study_picker(ctx, None, label="Study", scale=3, elem_id="results-study")
        refresh = gr.Button("Compute", variant="primary", scale=1, elem_id="results-refresh")
        csv = gr.DownloadButton("Download CSV (zip)", scale=1, elem_id="results-csv")
    with gr.Row():
        board = gr.Plot(label="Leaderboard: Bradley-Terry, 95% CI", elem_id="results-leaderboard")
        heat = gr.Plot(label="Win-rate heatmap", elem_id="results-heatmap")
    tables = []
    for name in SECTIONS:
        with gr.Accordion(name.replace("_", " ").capitalize(), open=name == "leaderboard"):
            tables.append(gr.Dataframe(label=name, interactive=False, elem_id=f"results-{name}"))
    refresh.click(
        user_errors(lambda s: render(ctx, s)),
        [study],
        [board, heat, *tables, csv],
        api_name="stats",
        **DB_EVENT,
    )
    return study
