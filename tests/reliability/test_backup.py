"""Backups (db/backup.py): a snapshot taken while raters vote is consistent, and a restore round-trips every
table exactly, on SQLite and PostgreSQL and across them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from db.backup import read_snapshot, restore, snapshot


def _consistent(tables: dict[str, list[dict]]) -> list[str]:
    """Cross-table invariants a torn (non-atomic) snapshot would break."""
    problems = []
    impressions = {r["id"]: r for r in tables["impressions"]}
    votes = {r["id"]: r for r in tables["votes"]}
    superseded = {v["supersedes_id"] for v in votes.values() if v["supersedes_id"]}
    for v in votes.values():
        if v["impression_id"] not in impressions:
            problems.append(f"vote {v['id']} points at missing impression {v['impression_id']}")
        if v["supersedes_id"] and v["supersedes_id"] not in votes:
            problems.append(f"vote {v['id']} supersedes missing vote {v['supersedes_id']}")
    heads = {v["impression_id"]: v for v in votes.values() if v["id"] not in superseded}
    for imp in impressions.values():
        answered = imp["id"] in heads and heads[imp["id"]]["choice"] != "retract"
        if (imp["status"] == "voted") != answered:
            problems.append(
                f"impression {imp['id']} is {imp['status']} but its live vote is {heads.get(imp['id'])}"
            )
    return problems


def _roundtrip(snap: Path, target_url: str, tmp_path: Path) -> None:
    restore(snap, target_url)
    again = tmp_path / f"again-{snap.name}"
    snapshot(target_url, again)
    (h1, t1), (h2, t2) = read_snapshot(snap), read_snapshot(again)
    assert h1["tables"] == h2["tables"] and h1["revision"] == h2["revision"]
    for name in t1:
        assert t1[name] == t2[name], f"table {name} differs after restore"


@pytest.mark.slow
def test_snapshot_while_voting_is_consistent_and_restores(
    load_raters, db_url: str, tmp_path: Path, pg_base_url: str, request
) -> None:
    wb, study, handles = load_raters.seed_study(db_url, tmp_path / "data", raters=4, votes=160)
    plan = load_raters.RaterPlan(votes_per_rater=40, p_resubmit=0.1, p_undo=0.1, think_ms=(0.0, 2.0))
    result: dict = {}
    writer = threading.Thread(
        target=lambda: result.update(
            ledger=load_raters.run_load(load_raters.InProcessTransport(wb, study), handles, plan)[0]
        )
    )
    writer.start()
    snaps = []
    while writer.is_alive() and len(snaps) < 3:
        snaps.append(tmp_path / f"live-{len(snaps)}.jsonl.gz")
        snapshot(db_url, snaps[-1])
    writer.join()
    assert len(snaps) >= 1
    for snap in snaps:
        header, tables = read_snapshot(snap)
        assert _consistent(tables) == [], snap.name
        assert {name: len(rows) for name, rows in tables.items()} == header["tables"]
    final = tmp_path / "final.jsonl.gz"
    snapshot(db_url, final)
    assert read_snapshot(final)[0]["tables"]["votes"] >= 160
    # Restore into SQLite, and across backends: SQLite -> PostgreSQL, PostgreSQL -> SQLite.
    _roundtrip(final, f"sqlite:///{tmp_path / 'restored.db'}", tmp_path)
    other = (
        f"sqlite:///{tmp_path / 'other.db'}" if "postgresql" in db_url else request.getfixturevalue("pg_url")
    )
    _roundtrip(snaps[0], other, tmp_path)
    wb.close()


def test_restore_refuses_a_non_empty_target(tmp_path: Path) -> None:
    from workbench.service import Workbench

    url = f"sqlite:///{tmp_path / 'a.db'}"
    wb = Workbench(db_url=url, data_dir=str(tmp_path / "data"))
    wb.init()
    wb.add_rater("r1")
    snap = tmp_path / "a.jsonl.gz"
    snapshot(url, snap)
    with pytest.raises(ValueError, match="not empty"):
        restore(snap, url)
    wb.close()
