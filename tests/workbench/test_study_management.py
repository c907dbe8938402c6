"""Study management: create + import in one step, edits (k raise with re-planning), archive, delete after an
export, quotas and their settings, and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Assignment, AuditEntry, Item, Study, Vote
from workbench.importers import ImportFailed, import_manifest
from workbench.studies import StudySpec


@pytest.fixture
def manifest(tmp_path: Path, solid) -> Path:
    root = tmp_path / "import"
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(3):
        for name, value in (("src", i), ("a", 100 + i), ("b", 200 + i)):
            solid(value).save(root / "img" / f"{name}{i}.png")
        rows.append({"source": f"img/src{i}.png", "instruction": f"edit {i}", "key": f"k{i}",
                     "output:a": f"img/a{i}.png", "output:b": f"img/b{i}.png"})  # fmt: skip
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _count(wb, model) -> int:
    with wb.db.read.begin() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_create_and_import_is_all_or_nothing(wb, manifest):
    bad = manifest.with_name("bad.jsonl")
    lines = manifest.read_text().splitlines()
    # Row 3 fails inside the transaction (after the study and two items were written): a NUL in the text.
    bad.write_text("\n".join([*lines[:2], lines[2].replace("edit 2", "edit\\u00002")]) + "\n")
    with pytest.raises(ImportFailed, match="bad.jsonl:3: .*NUL"):
        import_manifest(wb, "new", bad, create=StudySpec("new", k=2), actor="root")
    assert (_count(wb, Study), _count(wb, Item), _count(wb, AuditEntry)) == (0, 0, 0)  # nothing left
    report = import_manifest(wb, "new", manifest, create=StudySpec("new", k=2), actor="root")
    assert report["imported"] == 3 and wb.study_info("new")["k"] == 2
    with pytest.raises(ImportFailed, match="already exists"):  # creating twice: refused, old k kept
        import_manifest(wb, "new", manifest, create=StudySpec("new", k=3))
    assert wb.study_info("new")["k"] == 2
    assert _count(wb, Item) == 3
    assert [(e["action"], e["actor"]) for e in wb.audit_log("new")] == [
        ("import", "root"),
        ("create", "root"),
    ]
    # Importing more items into the existing study is its own, explicit call.
    with pytest.raises(ImportFailed, match="duplicate item key"):
        import_manifest(wb, "new", manifest)
    with pytest.raises(ImportFailed, match="unknown study"):
        import_manifest(wb, "missing", manifest)
    assert _count(wb, Study) == 1


def test_edits_are_validated_and_audited(wb, make_study):
    make_study(wb, n_items=2, k=1)
    diff = wb.update_study(
        "pref", actor="root", name="renamed", guidelines="Look **closely**.", lease_seconds=60
    )
    assert diff["name"] == ["pref", "renamed"] and diff["lease_seconds"] == [1800, 60]
    info = wb.study_info("renamed")
    assert info["guidelines"] == "Look **closely**." and info["lease_seconds"] == 60
    assert wb.update_study("renamed", guidelines="Look **closely**.") == {}  # nothing changed, nothing logged
    for bad, message in (({"k": 0}, "positive"), ({"lease_seconds": 0}, "lease"), ({"kind": "curation"}, "cannot"),
                         ({"name": ""}, "non-empty"), ({"quota": -1}, "quota")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            wb.update_study("renamed", **bad)
    log = wb.audit_log("renamed")
    assert len(log) == 2 and log[0]["action"] == "edit" and log[0]["actor"] == "root"
    assert log[0]["details"]["name"] == ["pref", "renamed"]


def test_raising_k_replans_and_lowering_is_refused(wb, make_study):
    make_study(wb, n_items=2, k=1)
    for h in ("ann", "bob", "cat"):
        wb.add_rater(h)
    for h in ("ann", "bob"):
        shown = wb.next_item("pref", h)
        wb.submit_vote(shown["impression_id"], h, "A", f"{h}-1")
    assert wb.next_item("pref", "cat") is None  # every item has its k = 1
    wb.update_study("pref", k=2, actor="root")
    assert wb.audit_log("pref")[0]["details"] == {"k": [1, 2], "reopened": 2}
    shown = wb.next_item("pref", "cat")  # re-planned: both items take one more rater
    assert shown is not None
    wb.submit_vote(shown["impression_id"], "cat", "B", "cat-1")
    assert wb.next_item("pref", "cat")["item_id"] != shown["item_id"]
    with pytest.raises(ValueError, match="only be raised"):
        wb.update_study("pref", k=1)
    assert wb.study_progress("pref")["slots"] == 4


def test_taxonomy_edit_keeps_reasons_in_use(wb, solid):
    wb.create_study("cur", kind="curation", k=1, reasons=["artifacts", "blurry"])
    wb.add_candidate("cur", solid(1), "add a hat", solid(2))
    wb.add_rater("ann")
    cand = wb.next_candidate("cur", "ann")
    wb.submit_decision(cand["candidate_id"], "ann", "reject", ["artifacts"], idempotency_key="d1")
    with pytest.raises(ValueError, match="used by decisions"):
        wb.update_study("cur", reasons=["blurry"])
    wb.update_study("cur", reasons=["artifacts", "wrong_region"])
    assert wb.study_info("cur")["reasons"] == ["artifacts", "wrong_region"]


def test_archive_hides_from_raters_and_keeps_results(wb, make_study):
    make_study(wb, n_items=2, k=1)
    wb.add_rater("ann")
    shown = wb.next_item("pref", "ann")
    wb.submit_vote(shown["impression_id"], "ann", "A", "a1")
    open_screen = wb.next_item("pref", "ann")
    assert wb.archive_study("pref", actor="root") is True
    assert wb.archive_study("pref", actor="root") is False
    assert [s["name"] for s in wb.list_studies(include_archived=False)] == []
    assert wb.list_studies()[0]["archived"] is True
    with pytest.raises(ValueError, match="archived"):
        wb.next_item("pref", "ann")
    # A screen already open still takes its answer (never lost); results keep the study.
    assert wb.submit_vote(open_screen["impression_id"], "ann", "B", "a2")["stored"]
    assert sum(r["votes"] for r in wb.stats("pref", bootstrap_rounds=10)["leaderboard"]) == 4
    wb.archive_study("pref", archived=False)
    assert wb.next_item("pref", "ann") is None
    assert [e["action"] for e in wb.audit_log("pref")] == ["unarchive", "archive", "create"]


def test_delete_exports_first_and_needs_the_name(wb, make_study, tmp_path):
    make_study(wb, n_items=2, k=1)
    wb.create_study("other")
    wb.add_rater("ann")
    shown = wb.next_item("pref", "ann")
    wb.submit_vote(shown["impression_id"], "ann", "A", "a1")
    with pytest.raises(ValueError, match="confirm"):
        wb.delete_study("pref", confirm="prf", export_dir=tmp_path / "exports")
    assert _count(wb, Item) == 2 and not (tmp_path / "exports").exists()
    report = wb.delete_study("pref", confirm="pref", export_dir=tmp_path / "exports", actor="root")
    folder = Path(report["exported_to"])
    assert (folder / "votes.csv").is_file() and "A" in (folder / "vote_history.csv").read_text()
    assert (_count(wb, Item), _count(wb, Vote), _count(wb, Assignment)) == (0, 0, 0)
    assert [s["name"] for s in wb.list_studies()] == ["other"]
    entry = wb.audit_log()[0]
    assert (entry["action"], entry["study"], entry["actor"]) == ("delete", "pref", "root")
    assert entry["details"]["exported_to"] == str(folder)


def test_quota_and_completion_settings(wb, make_study):
    make_study(
        wb, n_items=4, k=1, quota=2, completion_code="C0DE-42", redirect_url="https://example.org/done?x=1"
    )
    info = wb.study_info("pref")
    assert (info["quota"], info["completion_code"], info["redirect_url"]) == (
        2,
        "C0DE-42",
        "https://example.org/done?x=1",
    )
    wb.add_rater("ann")
    for i in range(2):
        assert not wb.rater_quota_done("pref", "ann")
        shown = wb.next_item("pref", "ann")
        wb.submit_vote(shown["impression_id"], "ann", "A", f"q{i}")
    assert wb.rater_quota_done("pref", "ann")
    assert wb.next_item("pref", "ann") is None  # quota met: no new screen
    wb.update_study("pref", quota=3)
    assert not wb.rater_quota_done("pref", "ann") and wb.next_item("pref", "ann") is not None
    for bad, message in ((dict(redirect_url="javascript:alert(1)"), "http"), (dict(redirect_url="/relative"), "http"),
                         (dict(completion_code="has space"), "completion code"), (dict(quota=0), "quota")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            wb.update_study("pref", **bad)
        with pytest.raises(ValueError, match=message):
            wb.create_study("x", **bad)
    wb.update_study("pref", quota=None, completion_code="", redirect_url="")
    assert wb.study_info("pref")["quota"] is None and wb.study_info("pref")["redirect_url"] is None
    assert not wb.rater_quota_done("pref", "ann")
