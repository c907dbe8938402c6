"""Facade-level guarantees: blindness (no system identity in what a rater gets, including image bytes),
per-rater isolation, and a read-only database refusing a vote clearly without acknowledging it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from make_hostile import tagged_png
from PIL import Image

from db.backup import table_counts

SYSTEMS = ("zorblax-7f3", "quenvik-9c1")


@pytest.fixture
def study(workbench) -> str:
    outputs = {s: tagged_png(s, c) for s, c in zip(SYSTEMS, [(250, 0, 0), (0, 0, 250)], strict=True)}
    workbench.create_study("blind", kind="preference", k=2)
    for i in range(3):
        workbench.add_item("blind", Image.new("RGB", (32, 32), (9, 9, 9)), f"item {i}", outputs=outputs)
    workbench.add_rater("r1")
    workbench.add_rater("r2")
    return "blind"


def test_nothing_a_rater_receives_names_a_system(workbench, study: str) -> None:
    imp = workbench.next_item(study, "r1")
    texts = [json.dumps(imp, default=str)]
    for key in ("source_path", "left_path", "right_path"):
        texts += [Path(imp[key]).name, Path(imp[key]).read_bytes().decode("latin-1")]
    leaks = [s for s in SYSTEMS for t in texts if s.lower() in t.lower()]
    assert leaks == [], f"system identity reaches the rater: {leaks}"


def test_a_rater_cannot_vote_on_another_raters_impression(workbench, study: str, db_url: str) -> None:
    imp = workbench.next_item(study, "r1")
    before = table_counts(db_url)
    with pytest.raises(PermissionError):
        workbench.submit_vote(imp["impression_id"], "r2", "A", idempotency_key="k-r2")
    with pytest.raises((PermissionError, ValueError, LookupError)):
        workbench.skip(imp["impression_id"], "r2")
    assert table_counts(db_url) == before
    assert workbench.undo_vote(study, "r2") is None  # r2 has nothing to undo; r1's impression untouched


def test_read_only_database_refuses_votes_clearly(workbench, study: str, db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the read-only URI is a SQLite feature")
    from workbench.service import Workbench
    from workbench.ui.context import storage_error_message

    imp = workbench.next_item(study, "r1")
    workbench.close()
    path = db_url.removeprefix("sqlite:///")
    before = table_counts(db_url)
    ro = Workbench(db_url=f"sqlite:///file:{path}?mode=ro&uri=true", data_dir=str(tmp_path / "data"))
    with pytest.raises(Exception) as refused:  # the type is the driver's; the message is checked
        ro.submit_vote(imp["impression_id"], "r1", "A", idempotency_key="k-ro")
    ro.close()
    assert "readonly" in str(refused.value).replace("-", "").lower()
    assert "Not saved" in storage_error_message(refused.value) and "readonly" in storage_error_message(
        refused.value
    )
    assert table_counts(db_url) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_gold_items_cannot_be_told_apart_by_what_a_rater_sees(workbench) -> None:
    """A single rater goes through 4 regular and 2 gold items: the counter moves by one per screen and ends at
    its total, and the public fields of a gold screen are the same set as a regular one's."""
    from workbench.ui.rating import PUBLIC_IMPRESSION_KEYS, new_task, public_json

    workbench.create_study("gold", kind="preference", k=1, gold_rate=0.5)
    outputs = {
        "good": Image.new("RGB", (16, 16), (0, 200, 0)),
        "bad": Image.new("RGB", (16, 16), (200, 0, 0)),
    }
    for i in range(4):
        workbench.add_item("gold", Image.new("RGB", (16, 16), (i, i, i)), f"regular {i}", outputs=outputs)
    for i in range(2):
        workbench.add_item(
            "gold", Image.new("RGB", (16, 16), (50 + i, 0, 0)), f"gold {i}", outputs=outputs, gold="good"
        )
    workbench.add_rater("solo")
    counters, keys = [], set()
    while (imp := workbench.next_item("gold", "solo")) is not None:
        counters.append((imp["progress"]["done"], imp["progress"]["total"]))
        keys.add(tuple(sorted(public_json(new_task(imp, PUBLIC_IMPRESSION_KEYS, "gold")))))
        workbench.submit_vote(imp["impression_id"], "solo", "A", idempotency_key=f"k{len(counters)}")
    assert counters == [(n, 6) for n in range(6)], counters
    assert len(keys) == 1 and "item_id" not in next(
        iter(keys)
    )  # ids would set late-imported gold items apart
