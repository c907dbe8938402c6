"""CLI end to end (in-process), exports, the accepted curation set, backup/restore and the optional Hub push."""

from __future__ import annotations

import json
import logging
import threading

import pandas as pd
import pytest

from workbench.__main__ import main
from workbench.export import export_study
from workbench.hub import HubPusher
from workbench.live_backup import backup, restore
from workbench.service import Workbench


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _vote_everything(wb: Workbench, study: str, raters: tuple[str, ...]) -> int:
    n = 0
    for rater in raters:
        while (shown := wb.next_item(study, rater)) is not None:
            wb.submit_vote(
                shown["impression_id"], rater, "A" if n % 3 else "B", f"{rater}-{n}", scores={"overall": 5}
            )
            n += 1
    return n


def test_cli_flow(db_url, tmp_path, capsys, solid):
    data = tmp_path / "data"
    common = ["--db", db_url, "--data-dir", str(data)]
    root = tmp_path / "in"
    root.mkdir()
    rows = []
    for i in range(4):
        for name, value in (("src", i), ("a", 100 + i), ("b", 200 + i)):
            solid(value).save(root / f"{name}{i}.png")
        rows.append(
            {
                "source": f"src{i}.png",
                "instruction": f"edit {i}",
                "output:a": f"a{i}.png",
                "output:b": f"b{i}.png",
            }
        )
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _run(capsys, "init", *common)[0] == 0
    code, _, err = _run(capsys, "import", str(root / "items.jsonl"), "--study", "s", *common)
    assert code == 2 and "unknown study 's'" in err  # importing never creates a study by accident
    assert (
        _run(capsys, "import", str(root / "items.jsonl"), "--study", "s", "--create", "--k", "2", *common)[0]
        == 0
    )
    code, _, err = _run(capsys, "import", str(root / "items.jsonl"), "--study", "s", *common)
    assert code == 0  # rows without keys may be imported again (they are new items)
    rows[1]["source"] = "../escape.png"
    (root / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = _run(capsys, "import", str(root / "bad.jsonl"), "--study", "s", *common)
    assert code == 2 and "bad.jsonl:2:" in err and "'..'" in err
    assert _run(capsys, "raters", "add", "ann", "bob", *common)[0] == 0
    code, out, _ = _run(capsys, "raters", "list", "--json", *common)
    assert [r["handle"] for r in json.loads(out)] == ["ann", "bob"]
    wb = Workbench(db_url=db_url, data_dir=data)
    assert _vote_everything(wb, "s", ("ann", "bob")) == 16
    wb.close()
    code, out, _ = _run(capsys, "stats", "--study", "s", "--json", "--rounds", "20", *common)
    board = json.loads(out)["leaderboard"]
    assert {row["system"] for row in board} == {"a", "b"}
    assert {"system", "rating", "ci_low", "ci_high", "votes", "win_rate"} <= set(board[0])
    code, out, _ = _run(capsys, "stats", "--study", "s", "--rounds", "20", *common)
    assert code == 0 and "rating" in out
    battles = tmp_path / "battles.jsonl"
    battles.write_text(json.dumps({"model_a": "a", "model_b": "b", "winner": "tie"}) + "\n")
    assert _run(capsys, "import-battles", str(battles), "--study", "s", *common)[0] == 0
    code, out, _ = _run(capsys, "export", "--study", "s", "--out", str(tmp_path / "exp"), *common)
    files = json.loads(out)["files"]
    assert len(files) == 5 * 3  # votes, vote_history, impressions, items, rater_sessions; 3 formats each
    votes = pd.read_parquet(tmp_path / "exp" / "votes.parquet")
    assert len(votes) == 17 and set(votes["winner"]) <= {"model_a", "model_b", "tie"}
    assert len(pd.read_csv(tmp_path / "exp" / "vote_history.csv")) == 16
    assert _run(capsys, "stats", "--study", "nope", *common)[0] == 2


def test_cli_study_management(db_url, tmp_path, capsys, solid):
    common = ["--db", db_url, "--data-dir", str(tmp_path / "data"), "--actor", "ops"]
    root = tmp_path / "in"
    root.mkdir()
    for name, value in (("src", 1), ("a", 2), ("b", 3)):
        solid(value).save(root / f"{name}.png")
    good = {"source": "src.png", "instruction": "edit", "output:a": "a.png", "output:b": "b.png", "key": "k1"}
    (root / "bad.jsonl").write_text(json.dumps({**good, "output:b": "missing.png"}) + "\n")
    (root / "good.jsonl").write_text(json.dumps(good) + "\n")
    add = [
        "studies",
        "add",
        "s",
        "--k",
        "1",
        "--lease-minutes",
        "0.5",
        "--quota",
        "5",
        "--completion-code",
        "DONE1",
    ]
    code, _, err = _run(capsys, *add, "--import", str(root / "bad.jsonl"), *common)
    assert code == 2 and "file not found" in err
    assert json.loads(_run(capsys, "studies", "list", *common[:4])[1]) == []  # nothing left behind
    code, out, _ = _run(capsys, *add, "--import", str(root / "good.jsonl"), *common)
    assert code == 0 and '"imported": 1' in out
    info = Workbench(db_url=db_url, data_dir=tmp_path / "data").study_info("s")
    assert (info["lease_seconds"], info["quota"], info["completion_code"]) == (30, 5, "DONE1")
    code, _, err = _run(capsys, "studies", "edit", "s", "--k", "0", *common)
    assert code == 2 and "positive" in err
    assert (
        _run(capsys, "studies", "edit", "s", "--k", "2", "--redirect-url", "https://x.org/ok", *common)[0]
        == 0
    )
    wb = Workbench(db_url=db_url, data_dir=tmp_path / "data")
    wb.add_rater("ann")
    wb.next_item("s", "ann")
    code, out, _ = _run(capsys, "studies", "progress", "s", *common[:4])
    assert json.loads(out)["in_progress"] == 1 and json.loads(out)["slots"] == 2
    code, out, _ = _run(capsys, "studies", "release", "s", "ann", *common)
    assert json.loads(out)["released"] == 1
    assert _run(capsys, "studies", "archive", "s", *common)[0] == 0
    assert json.loads(_run(capsys, "studies", "list", "--active", *common[:4])[1]) == []
    code, _, err = _run(
        capsys, "studies", "delete", "s", "--confirm", "x", "--export-dir", str(tmp_path / "e"), *common
    )
    assert code == 2 and "confirm" in err
    code, out, _ = _run(
        capsys, "studies", "delete", "s", "--confirm", "s", "--export-dir", str(tmp_path / "e"), *common
    )
    assert code == 0 and (tmp_path / "e").is_dir()
    code, out, _ = _run(capsys, "studies", "log", *common[:4])
    log = json.loads(out)
    assert [e["action"] for e in log] == ["delete", "archive", "release", "edit", "import", "create"]
    assert {e["actor"] for e in log} == {"ops"}
    wb.close()


def test_accepted_set_in_finetune_format(wb, tmp_path, solid):
    wb.create_study("c", kind="curation", k=2)
    for i in range(3):
        wb.add_candidate("c", solid(i), f"caption {i}", solid(50 + i), category="subject-add", key=f"t{i}")
    decisions = {0: ("accept", "accept"), 1: ("accept", "reject"), 2: ("reject", "reject")}
    for j, rater in enumerate(("ann", "bob")):
        wb.add_rater(rater)
        while (cand := wb.next_candidate("c", rater)) is not None:
            index = int(cand["instruction"].split()[-1])
            wb.submit_decision(
                cand["candidate_id"], rater, decisions[index][j], idempotency_key=f"{rater}{index}"
            )
    path = wb.export_accepted("c", tmp_path / "accepted")
    entries = json.loads(path.read_text())
    assert [e["caption"] for e in entries.values()] == ["caption 0"]
    ((target, entry),) = entries.items()
    assert (path.parent / target).is_file() and (path.parent / entry["ref_image_path"]).is_file()
    from model.nano.data import read_metadata

    assert len(read_metadata(path)) == 1  # the trainer's own reader accepts the file
    files = export_study(wb, "c", tmp_path / "cur", formats=("jsonl",))
    assert {p.name for p in files} == {
        "decisions.jsonl",
        "decision_history.jsonl",
        "candidates.jsonl",
        "rater_sessions.jsonl",
    }


def test_backup_while_writing_and_restore(tmp_path, solid):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    wb = Workbench(db_url=url, data_dir=tmp_path)
    wb.init()
    wb.create_study("s", k=3)
    for i in range(30):
        wb.add_item("s", solid(i), f"e{i}", outputs={"a": solid(100 + i), "b": solid(200 + i)})
    wb.add_rater("ann")
    stop = threading.Event()

    def keep_voting() -> None:
        while not stop.is_set() and (shown := wb.next_item("s", "ann")) is not None:
            wb.submit_vote(shown["impression_id"], "ann", "A", f"k{shown['impression_id']}")

    writer = threading.Thread(target=keep_voting)
    writer.start()
    try:
        report = backup(url, tmp_path / "snap.db")
        logical = backup(url, tmp_path / "snap.jsonl.gz")
    finally:
        stop.set()
        writer.join()
    assert report["integrity"] == "ok" and logical["format"] == "logical"
    with pytest.raises(FileExistsError):
        backup(url, tmp_path / "snap.db")
    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    assert restore(tmp_path / "snap.db", restored_url)["integrity"] == "ok"
    with pytest.raises(FileExistsError):
        restore(tmp_path / "snap.db", restored_url)
    copy = Workbench(db_url=restored_url, data_dir=tmp_path)
    copy.init()
    assert len(copy.list_raters()) == 1 and copy.study_info("s")["k"] == 3
    copy.close()
    wb.close()


def test_hub_push_is_off_without_config_and_never_raises(wb, monkeypatch, caplog):
    monkeypatch.delenv("WORKBENCH_HF_REPO", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    wb.create_study("s", k=1)
    assert HubPusher.from_env(wb, ["s"]) is None
    monkeypatch.setenv("WORKBENCH_HF_REPO", "someone/does-not-exist")
    monkeypatch.setenv("HF_TOKEN", "hf_invalid")
    pusher = HubPusher.from_env(wb, ["s"], every_s=3600)
    assert pusher is not None
    with caplog.at_level(logging.ERROR, logger="workbench.hub"):
        thread = pusher.start()  # offline in tests (HF_HUB_OFFLINE=1): the push fails, only a log line
        pusher.stop(timeout=30)
    assert not thread.is_alive()
    assert "snapshot push to someone/does-not-exist failed" in caplog.text
