"""Admin tab handlers: create a study from an uploaded zip, add raters, progress, export; rights checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

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
        ctx, "root", "imported", "preference", 2, 0.0, "be careful", str(make_zip(tmp_path, make_scene))
    )
    assert "3 rows imported" in msg
    info = workbench.study_info("imported")
    assert info["k"] == 2 and info["guidelines"] == "be careful"
    workbench.add_rater("r")
    assert workbench.next_item("imported", "r")["progress"]["total"] == 3


def test_zip_with_unsafe_path_is_refused(ctx, tmp_path, make_scene):
    with pytest.raises(ValueError, match="unsafe path"):
        admin.create_study(
            ctx, "root", "evil", "preference", 2, 0.0, "", str(make_zip(tmp_path, make_scene, evil=True))
        )
    assert not (tmp_path.parent / "escape.txt").exists()
    assert "evil" not in [s["name"] for s in ctx.workbench.list_studies()]  # the failed create left nothing


def test_raters_progress_and_export(ctx, workbench):
    assert "Added 2" in admin.add_raters(ctx, "ann\nben\n", "rater")
    with pytest.raises(gr.Error, match="Invalid handles"):
        admin.add_raters(ctx, "bad handle!", "rater")
    task = workbench.next_item("pref", "ann")
    workbench.submit_vote(task["impression_id"], "ann", "A", idempotency_key="k1")
    summary, table = admin.progress_table(ctx, "pref")
    assert table.loc[table["rater"] == "ann", "done"].item() == 1
    assert "<b>1</b> done" in summary and "<b>5</b> pending" in summary  # 3 items x k=2, one answered
    exported = export_zip(workbench, "pref")
    with zipfile.ZipFile(exported) as zf:
        assert any(n.startswith("votes") and n.endswith(".csv") for n in zf.namelist())
    board, heat, *tables, csv = results.render(ctx, "pref")
    # Admin downloads live in private temp folders, never in the (served) data folder.
    data = ctx.settings.data_dir.resolve()
    assert not Path(exported).resolve().is_relative_to(data) and not Path(csv).resolve().is_relative_to(data)
    with zipfile.ZipFile(csv) as zf:
        assert {"leaderboard.csv", "win_matrix.csv", "raters.csv"} <= set(zf.namelist())
    assert not tables[0].empty and set(tables[0]["System"]) <= {"system-0", "system-1", "system-2"}


def _stored_zip(tmp_path, name: str) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.jsonl", '{"instruction": "x"}\n')
    return path


def _encrypted_zip(tmp_path) -> Path:
    path = _stored_zip(tmp_path, "encrypted.zip")
    data = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" flag bit
        at = data.find(sig)
        data[at + flag_at] |= 0x01
    path.write_bytes(bytes(data))
    return path


def _odd_compression_zip(tmp_path) -> Path:
    path = _stored_zip(tmp_path, "odd.zip")
    data = bytearray(path.read_bytes())
    for sig, method_at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99 (AES/unknown)
        at = data.find(sig)
        data[at + method_at] = 99
    path.write_bytes(bytes(data))
    return path


def test_unreadable_zips_get_a_clear_message(ctx, tmp_path):
    from workbench.ui.context import user_errors

    create = user_errors(admin.create_study)  # as the app calls it
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"this is not a zip at all")
    cases = {
        not_zip: "not a readable zip",
        _encrypted_zip(tmp_path): "encrypted zips are not supported",
        _odd_compression_zip(tmp_path): "compression",
    }
    for i, (archive, message) in enumerate(cases.items()):
        with pytest.raises(gr.Error, match=message):
            create(ctx, "root", f"bad-{i}", "preference", 2, 0.0, "", str(archive))


def test_admin_upload_offers_csv_manifests(ctx, workbench, tmp_path, make_scene):
    from workbench.ui import build_demo

    demo = build_demo(ctx.settings, ctx.editor, workbench)
    uploads = [c for c in demo.config["components"] if c.get("props", {}).get("file_types")]
    assert any(".csv" in c["props"]["file_types"] for c in uploads)
    for name in ("s.png", "a.png", "b.png"):
        make_scene(len(name)).save(tmp_path / name)
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "source,instruction,output:a,output:b\ns.png,make it red,a.png,b.png\n", encoding="utf-8"
    )
    assert "1 rows imported" in admin.create_study(
        ctx, "root", "from-csv", "preference", 2, 0.0, "", str(manifest)
    )


def test_manage_a_study(ctx, workbench, tmp_path, make_scene):
    pack = str(make_zip(tmp_path, make_scene))
    assert "3 rows imported" in admin.create_study(
        ctx,
        "root",
        "managed",
        "preference",
        1,
        0.0,
        "",
        pack,
        0.5,
        4,
        "CODE1",
        "https://example.org/done",
    )
    with pytest.raises(gr.Error, match="already exists"):
        admin.create_study(ctx, "root", "managed", "preference", 3, 0.0, "", None)
    info = workbench.study_info("managed")
    assert (info["k"], info["lease_seconds"], info["quota"], info["completion_code"]) == (1, 30, 4, "CODE1")
    with pytest.raises(ValueError, match="duplicate item key"):  # importing the same keys again: refused
        admin.import_more(ctx, "root", "managed", pack)
    workbench.add_rater("ann")
    workbench.next_item("managed", "ann")
    assert "Released 1 claim(s) of ann" in admin.release(ctx, "root", "managed", "ann")
    loaded = admin.load_settings(ctx, "managed")
    assert loaded[:4] == ("managed", "", ", ".join(info["reasons"]), 1)
    message, picker = admin.save_settings(
        ctx, "root", "managed", "renamed", "Be *fair*.", "", 2, 1, 0, "", ""
    )
    assert "k" in message and "name" in message and picker.value == "renamed"
    assert workbench.study_info("renamed")["quota"] is None
    with pytest.raises(ValueError, match="only be raised"):
        admin.save_settings(ctx, "root", "renamed", "renamed", "", "", 1, 1, None, "", "")
    assert "archived" in admin.toggle_archive(ctx, "root", "renamed")[0]
    assert "renamed" not in [s["name"] for s in workbench.list_studies(include_archived=False)]
    with pytest.raises(gr.Error, match="to confirm"):
        admin.delete(ctx, "root", "renamed", "nope")
    message, download, _ = admin.delete(ctx, "root", "renamed", "renamed")
    assert "Deleted &#x27;renamed&#x27;" in message and zipfile.is_zipfile(download)
    log = admin.audit_table(ctx, None)
    assert list(log["action"][:6]) == ["delete", "archive", "edit", "release", "import", "create"]
    assert set(log["actor"][:6]) == {"root"}


def test_an_empty_audit_log_says_what_lands_there(ctx, monkeypatch):
    monkeypatch.setattr(ctx.workbench, "audit_log", lambda study=None: [])
    assert "Nothing logged yet" in admin.audit_table(ctx, None).iloc[0, 0]
