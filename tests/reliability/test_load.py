"""The load harness (bench/load_raters.py): its audit catches loss and duplication, and short runs over the
Workbench facade and over the running app (SQLite and PostgreSQL, with a SIGKILL mid-load) lose nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

CLEAN = {
    "lost": 0,
    "duplicated": 0,
    "double_acks": 0,
    "wrong_undo": 0,
    "progress_mismatch": 0,
    "lock_errors": 0,
}


def _assert_clean(result: dict, votes: int) -> None:
    assert {k: result[k] for k in CLEAN} == CLEAN, result
    assert result["live_votes"] == votes and result["other_errors"] == 0, result


def _inprocess_run(load_raters, db_url: str, tmp_path: Path, raters: int, votes: int):
    wb, study, handles = load_raters.seed_study(db_url, tmp_path / "data", raters, votes)
    plan = load_raters.RaterPlan(votes_per_rater=votes // raters, p_resubmit=0.2, p_undo=0.1)
    ledger, wall = load_raters.run_load(load_raters.InProcessTransport(wb, study), handles, plan)
    wb.close()
    return ledger, load_raters.summarise(ledger, wall, load_raters.audit(db_url, ledger), {})


def test_inprocess_load_loses_nothing(load_raters, db_url: str, tmp_path: Path) -> None:
    ledger, result = _inprocess_run(load_raters, db_url, tmp_path, raters=4, votes=120)
    _assert_clean(result, 120)
    assert result["resubmits"] > 0 and result["undos"] > 0, "the mix must exercise resubmits and undos"


def test_audit_catches_lost_and_duplicated_votes(load_raters, tmp_path: Path) -> None:
    """The audit is only worth something if it fails when the database disagrees with the acknowledgements."""
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    ledger, result = _inprocess_run(load_raters, db_url, tmp_path, raters=2, votes=20)
    _assert_clean(result, 20)
    head_sql = (
        "SELECT * FROM votes WHERE choice <> 'retract' AND id NOT IN "
        "(SELECT supersedes_id FROM votes WHERE supersedes_id IS NOT NULL) ORDER BY id DESC LIMIT 1"
    )
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        head = dict(conn.execute(sa.text(head_sql)).mappings().one())
        conn.execute(sa.text("DELETE FROM votes WHERE id = :id"), head)
    assert load_raters.audit(db_url, ledger)["lost"] == 1
    insert = f"INSERT INTO votes ({', '.join(head)}) VALUES ({', '.join(':' + k for k in head)})"
    with engine.begin() as conn:
        conn.execute(sa.text(insert), head)
        # A second answer to the same impression that nobody acknowledged: a double-stored vote.
        conn.execute(
            sa.text(insert),
            {**head, "id": head["id"] + 10_000, "idempotency_key": "x", "supersedes_id": head["id"]},
        )
    engine.dispose()
    audited = load_raters.audit(db_url, ledger)
    assert {k: audited[k] for k in ("lost", "duplicated", "unacknowledged_stored")} == {
        "lost": 0,
        "duplicated": 1,
        "unacknowledged_stored": 0,
    }
    (evidence,) = audited["mismatches"]  # the audit names the chain that disagrees
    assert evidence["pair"][1] == head["impression_id"] and len(evidence["stored"]) == 2


@pytest.mark.slow
def test_app_load_with_sigkill_loses_nothing(load_raters, db_url: str) -> None:
    """Over HTTP, with the server SIGKILLed half-way and restarted: every acknowledged vote is stored once,
    the SQLite file passes integrity_check, and each rater's progress resumes at their acknowledged count."""
    result = load_raters.main(
        ["--raters", "4", "--votes", "80", "--kill-at", "0.5", "--db", db_url, "--json"]
    )
    _assert_clean(result, 80)
    assert result["killed_after"] >= 40 and result["acknowledged"] >= 80, result
    if db_url.startswith("sqlite"):
        assert result["integrity_after_kill"] == "ok" and result["integrity_at_end"] == "ok"
