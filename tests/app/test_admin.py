"""Admin tab handlers: create a study from an uploaded zip, add raters, progress, export; rights checked."""

from __future__ import annotations

import json
import zipfile

import gradio as gr
import pytest

from workbench.ui import admin, results
from workbench.ui.study_io import export_zip


def make_zip(tmp_path, make_scene, n: int = 3, evil: bool = False):
    folder = tmp_path / "pack"
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        for name, seed in (("src", i), ("a", 50 + i), ("b", 90 + i)):
            make_scene(seed).save(folder / "img" / f"{name}{i}.png")
        rows.append({"source": f"img/src{i}.png", "instruction": f"make {i} red", "key": f"k{i}",
                     "outputs": {"sys-a": f"img/a{i}.png", "sys-b": f"img/b{i}.png"}})  # fmt: skip
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
        if evil:
            zf.writestr("../escape.txt", "x")
    return archive


def test_create_study_from_zip_then_rate(ctx, workbench, tmp_path, make_scene):
    msg = admin.create_study(
        ctx, "imported", "preference", 2, 0.0, "be careful", str(make_zip(tmp_path, make_scene))
    )
    assert "3 rows imported" in msg
    info = workbench.study_info("imported")
    assert info["k"] == 2 and info["guidelines"] == "be careful"
    workbench.add_rater("r")
    assert workbench.next_item("imported", "r")["progress"]["total"] == 3


def test_zip_with_unsafe_path_is_refused(ctx, tmp_path, make_scene):
    with pytest.raises(ValueError, match="unsafe path"):
        admin.create_study(
            ctx, "evil", "preference", 2, 0.0, "", str(make_zip(tmp_path, make_scene, evil=True))
        )
    assert not (tmp_path.parent / "escape.txt").exists()


def test_raters_progress_and_export(ctx, workbench):
    assert "Added 2" in admin.add_raters(ctx, "ann\nben\n", "rater")
    with pytest.raises(gr.Error, match="Invalid handles"):
        admin.add_raters(ctx, "bad handle!", "rater")
    task = workbench.next_item("pref", "ann")
    workbench.submit_vote(task["impression_id"], "ann", "A", idempotency_key="k1")
    table = admin.progress_table(ctx, "pref")
    assert table.loc[table["rater"] == "ann", "votes"].item() == 1
    with zipfile.ZipFile(export_zip(workbench, "pref", ctx.settings.export_dir)) as zf:
        assert any(n.startswith("votes") and n.endswith(".csv") for n in zf.namelist())
    board, heat, *tables, csv = results.render(ctx, "pref")
    with zipfile.ZipFile(csv) as zf:
        assert {"leaderboard.csv", "win_matrix.csv", "raters.csv"} <= set(zf.namelist())
    assert not tables[0].empty and set(tables[0]["System"]) <= {"system-0", "system-1", "system-2"}
