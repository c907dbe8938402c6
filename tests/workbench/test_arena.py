"""Arena engine on SQLite and PostgreSQL: battles stored as impressions + votes, exactly-once votes, pair and
side balance, failures and timeouts, rate limits, moderation, leaderboard, clean_battle round trip."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image, ImageOps
from sqlalchemy import text

from workbench.arena.battle_log import (
    CLEAN_BATTLE_FIELDS,
    clean_battles,
    export_clean_battles,
    import_battles,
)
from workbench.arena.battles import Arena, BattleFailed, Limits, RateLimited
from workbench.arena.contestants import ContestantError, ContestantSpec, parse_contestants
from workbench.arena.leaderboard import arena_report
from workbench.arena.store import (
    create_arena,
    moderate,
    moderation_queue,
    public_prompts,
    set_active,
    system_health,
)
from workbench.importers import ImportFailed


def _spec(name: str, timeout_s: float = 10.0) -> ContestantSpec:
    return ContestantSpec(name, "local", timeout_s, {"model": f"/models/{name}"})


def _tint(value: int):
    """A stand-in editor that blends the image toward a fixed colour (distinct per system)."""

    def run(image: Image.Image, instruction: str) -> Image.Image:
        return Image.blend(image.convert("RGB"), Image.new("RGB", image.size, (value, 255 - value, 90)), 0.5)

    return run


def _failing(image: Image.Image, instruction: str) -> Image.Image:
    raise RuntimeError("out of memory at http://secret-host/edit")


def _slow(image: Image.Image, instruction: str) -> Image.Image:
    time.sleep(3)
    return ImageOps.invert(image.convert("RGB"))


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize((48, 48), Image.NEAREST)


def _arena(wb, names=("alpha", "beta", "gamma"), editors=None, limits=None, timeout_s=10.0) -> Arena:
    create_arena(wb, "arena", [_spec(n, timeout_s) for n in names])
    editors = editors or {n: _tint(40 * i) for i, n in enumerate(names)}
    return Arena(wb, limits=limits or Limits(per_minute=1000, per_day=10_000), editors=editors)


def test_battle_vote_reveal_exactly_once(wb, photo):
    arena = _arena(wb)
    battle = arena.start("arena", "visitor-1", photo, "  make the background blue  ")
    assert battle["instruction"] == "make the background blue" and battle["language"] == "en"
    left, right = Image.open(battle["left_path"]), Image.open(battle["right_path"])
    assert left.size == right.size == photo.size and left.tobytes() != right.tobytes()
    assert "alpha" not in json.dumps({k: v for k, v in battle.items() if k != "pair"})
    first = arena.vote(battle["battle_id"], "A")
    assert first["stored"] and {first["model_a"], first["model_b"]} == set(battle["pair"])
    again = arena.vote(battle["battle_id"], "A")  # a retried click: nothing new
    assert not again["stored"] and again["model_a"] == first["model_a"]
    with pytest.raises(ValueError, match="already has a vote"):
        arena.vote(battle["battle_id"], "B")
    with pytest.raises(LookupError, match="unknown battle"):
        arena.vote("not-a-battle", "A")
    with pytest.raises(ValueError, match="choice must be one of"):
        arena.vote(battle["battle_id"], "left")
    records = clean_battles(wb, "arena")
    assert (
        len(records) == 1 and records[0]["winner"] == "model_a" and records[0]["model_a"] == first["model_a"]
    )
    assert records[0]["question_id"] == battle["battle_id"] and records[0]["judge"] == "visitor-1"
    # The vote is an ordinary vote of the study: the Results statistics see it.
    board = {r["system"]: r for r in wb.stats("arena", bootstrap_rounds=20)["leaderboard"]}
    assert board[first["model_a"]]["wins"] == 1 and board[first["model_b"]]["losses"] == 1


def test_chinese_prompt_and_edit_tab_validation(wb, photo):
    arena = _arena(wb)
    battle = arena.start("arena", "v", photo, "把背景变成蓝色")
    assert battle["language"] == "zh"
    with pytest.raises(ValueError, match="Please type an instruction"):
        arena.start("arena", "v", photo, "   ")
    with pytest.raises(ValueError, match="under 1000 characters"):
        arena.start("arena", "v", photo, "x" * 1001)


def test_pairs_and_sides_are_balanced(wb, photo):
    arena = _arena(wb, names=("a", "b", "c"))
    pairs, left_counts = {}, {}
    for i in range(24):
        battle = arena.start("arena", f"v{i}", photo, f"edit {i}")
        pairs[battle["pair"]] = pairs.get(battle["pair"], 0) + 1
        names = arena.vote(battle["battle_id"], "tie")
        key = (battle["pair"], names["model_a"])
        left_counts[key] = left_counts.get(key, 0) + 1
    assert sorted(pairs.values()) == [8, 8, 8]  # every pair equally often
    assert all(count == 4 for count in left_counts.values()) and len(left_counts) == 6  # each side 4 of 8


def test_same_prompt_new_pair_avoids_the_last_pair(wb, photo):
    arena = _arena(wb, names=("a", "b", "c"))
    first = arena.start("arena", "v", photo, "add a hat")
    second = arena.start("arena", "v", photo, "add a hat", avoid=first["pair"])
    assert second["pair"] != first["pair"]
    two = _arena_named(wb, "duo", ("x", "y"))
    a = two.start("duo", "v", photo, "add a hat")
    assert two.start("duo", "v", photo, "add a hat", avoid=a["pair"])["pair"] == a["pair"]  # the only pair


def _arena_named(wb, name, names):
    create_arena(wb, name, [_spec(n) for n in names])
    return Arena(wb, limits=Limits(per_minute=1000, per_day=10_000),
                 editors={n: _tint(60 * i) for i, n in enumerate(names)})  # fmt: skip


def test_failure_and_timeout_end_the_battle_without_a_vote(wb, photo):
    arena = _arena(wb, names=("good", "broken"), editors={"good": _tint(10), "broken": _failing})
    with pytest.raises(BattleFailed, match=r"system [AB] failed") as failed:
        arena.start("arena", "v", photo, "make it red")
    assert "secret-host" not in str(
        failed.value
    )  # the visitor never sees the error text (it may name the system)
    set_active(wb, "arena", "broken", False)
    arena.forget("arena")  # what the Admin tab does after a change (otherwise it applies within seconds)
    create_arena(wb, "slow-arena", [_spec("good", 10), _spec("slow", 0.5)])
    slow = Arena(
        wb, limits=Limits(per_minute=1000, per_day=10_000), editors={"good": _tint(10), "slow": _slow}
    )
    started = time.monotonic()
    with pytest.raises(BattleFailed, match=r"system [AB] timed out"):
        slow.start("slow-arena", "v", photo, "make it red")
    assert time.monotonic() - started < 2.5  # the battle ends at the timeout, not when the system finishes
    health = {h["system"]: h for h in system_health(wb, "arena")}
    assert health["broken"] == {"system": "broken", "battles": 1, "failed": 1, "timed_out": 0,
                                "median_seconds": None}  # fmt: skip
    assert health["good"]["failed"] == 0 and health["good"]["median_seconds"] is not None
    slow_health = {h["system"]: h for h in system_health(wb, "slow-arena")}
    assert slow_health["slow"]["timed_out"] == 1 and slow_health["good"]["timed_out"] == 0
    assert clean_battles(wb, "arena") == [] and wb.stats("arena", bootstrap_rounds=10)["leaderboard"] == []
    with pytest.raises(ValueError, match="at least two active contestants"):
        arena.start("arena", "v", photo, "make it red")  # "broken" was taken out of new battles


def test_failed_battle_refuses_a_vote(wb, photo):
    arena = _arena(wb, names=("good", "broken"), editors={"good": _tint(10), "broken": _failing})
    with pytest.raises(BattleFailed):
        arena.start("arena", "v", photo, "make it red")
    with wb.db.read.begin() as session:  # the token a client could have kept
        token = session.execute(text("SELECT token FROM arena_battles")).scalar()
    with pytest.raises(ValueError, match="ended without a vote"):
        arena.vote(token, "A")


def test_rate_limit_per_visitor(wb, photo):
    arena = _arena(wb, limits=Limits(per_minute=2, per_day=100))
    arena.start("arena", "greedy", photo, "one")
    arena.start("arena", "greedy", photo, "two")
    with pytest.raises(RateLimited, match="Too many battles in a minute"):
        arena.start("arena", "greedy", photo, "three")
    arena.start("arena", "someone-else", photo, "three")


def test_moderation_hides_flagged_prompts_from_public_outputs(wb, photo):
    arena = _arena(wb)
    for prompt in ("rude words here", "make it red"):
        arena.vote(arena.start("arena", "v", photo, prompt)["battle_id"], "B")
    queue = moderation_queue(wb, "arena")
    assert {q["instruction"] for q in queue} == {"rude words here", "make it red"}
    rude = next(q for q in queue if q["instruction"] == "rude words here")
    assert moderate(wb, "arena", rude["source_hash"], rude["instruction"], "flagged") == 1
    assert [q["instruction"] for q in moderation_queue(wb, "arena")] == ["make it red"]
    assert [p["instruction"] for p in public_prompts(wb, "arena")] == ["make it red"]
    assert len(clean_battles(wb, "arena")) == 2 and len(clean_battles(wb, "arena", public=True)) == 1
    # A new battle on a flagged prompt starts flagged.
    arena.start("arena", "v2", photo, "rude words here")
    assert moderation_queue(wb, "arena", "flagged")[0]["battles"] == 2


def test_leaderboard_with_both_intervals(wb, photo):
    arena = _arena(wb, names=("strong", "weak"), editors={"strong": _tint(0), "weak": _tint(200)})
    strong_output = _tint(0)(photo, "").tobytes()
    for i in range(30):
        prompt = f"make shape {i % 6} red" if i % 2 else f"把第{i % 6}个形状变成红色"  # six prompts
        battle = arena.start("arena", f"v{i}", photo, prompt)
        strong_left = Image.open(battle["left_path"]).convert("RGB").tobytes() == strong_output
        upset = i % 4 == 0  # the weak system wins 8 of 30, unevenly over the prompts
        names = arena.vote(battle["battle_id"], "A" if strong_left != upset else "B")
        assert names["model_a" if strong_left else "model_b"] == "strong"
    report = arena_report(wb, "arena", rounds=50)
    board = report["leaderboard"].set_index("system")
    assert board.loc["strong", "rating"] > board.loc["weak", "rating"] and board.loc[
        "strong", "win_rate"
    ] == pytest.approx(22 / 30)
    assert (
        board.loc["strong", "prompt_ci_low"]
        < board.loc["strong", "rating"]
        < board.loc["strong", "prompt_ci_high"]
    )
    assert board["battles"].tolist() == [30, 30] and set(report["per_language"]) == {"en", "zh"}
    assert set(report["per_category"]) == {"color"} and report["win_matrix"].loc[
        "strong", "weak"
    ] == pytest.approx(0.733, abs=1e-3)


def test_clean_battle_round_trip(wb, photo, tmp_path):
    arena = _arena(wb)
    for i, choice in enumerate(["A", "B", "tie", "both_bad", "A"]):
        arena.vote(arena.start("arena", f"v{i % 2}", photo, f"edit number {i}")["battle_id"], choice)
    first = export_clean_battles(wb, "arena", tmp_path / "clean_battle_a.json")
    records = json.loads(first.read_text())
    assert len(records) == 5 and all(set(r) == set(CLEAN_BATTLE_FIELDS) for r in records)
    assert {r["winner"] for r in records} == {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert all(r["anony"] is True and isinstance(r["tstamp"], float) for r in records)
    wb.create_study("copy", kind="arena", k=1)
    assert import_battles(wb, "copy", first)["imported"] == 5
    second = export_clean_battles(wb, "copy", tmp_path / "clean_battle_b.json")
    assert second.read_bytes() == first.read_bytes()  # exact round trip
    with pytest.raises(ImportFailed, match="this battle was already imported"):
        import_battles(wb, "copy", first)
    ours = {r["system"]: r for r in wb.stats("arena", bootstrap_rounds=10)["leaderboard"]}
    theirs = {r["system"]: r for r in wb.stats("copy", bootstrap_rounds=10)["leaderboard"]}
    assert {s: ours[s]["rating"] for s in ours} == pytest.approx({s: theirs[s]["rating"] for s in theirs})


def _idless(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_id_less_logs_identical_rows_are_distinct_votes(wb, tmp_path):
    systems = [f"model-{i}" for i in range(8)]
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 8, 100_000), rng.integers(1, 8, 100_000)
    winners = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])[rng.integers(0, 4, 100_000)]
    rows = [{"model_a": systems[i], "model_b": systems[(i + j) % 8], "winner": str(w)}
            for i, j, w in zip(a, b, winners, strict=True)]  # fmt: skip
    assert len({json.dumps(r, sort_keys=True) for r in rows}) < 300  # almost every row repeats another
    wb.create_study("public", kind="arena", k=1)
    big = _idless(tmp_path / "dump.json", rows)
    report = import_battles(wb, "public", big)
    assert report == {"study": "public", "imported": 100_000, "without_ids": 100_000}
    with pytest.raises(ImportFailed, match="this file was already imported"):
        import_battles(wb, "public", big)
    same_rows = _idless(tmp_path / "other.json", rows[:10])
    copy = _idless(tmp_path / "other-copy.json", rows[:10] + [])
    copy.write_text(copy.read_text() + "\n")  # a different file with equal rows
    assert import_battles(wb, "public", same_rows)["imported"] == 10
    assert import_battles(wb, "public", copy)["imported"] == 10
    board = {r["system"]: r for r in wb.stats("public", bootstrap_rounds=5)["leaderboard"]}
    assert sum(r["votes"] for r in board.values()) == 2 * 100_020 and set(board) == set(systems)


def test_records_with_ids_stay_deduplicated(wb, tmp_path):
    wb.create_study("logs", kind="arena", k=1)
    row = {"model_a": "x", "model_b": "y", "winner": "model_a", "question_id": "q1"}
    with pytest.raises(ImportFailed, match=r"record 1: duplicate battle"):
        import_battles(wb, "logs", _idless(tmp_path / "dup.json", [row, row]))
    assert import_battles(wb, "logs", _idless(tmp_path / "one.json", [row]))["imported"] == 1
    with pytest.raises(ImportFailed, match="this battle was already imported"):
        import_battles(wb, "logs", _idless(tmp_path / "again.json", [row, {**row, "question_id": "q2"}]))


def test_contestant_declarations(tmp_path):
    specs = parse_contestants(
        """
[[contestant]]
name = "nano"
model = "assets/step1x-edit-nano"
steps = 2
seed = 7
timeout_s = 30

[[contestant]]
name = "space"
url = "owner/space"
api_name = "/edit"
args = { img = "$image", text = "$instruction", guidance = 3.5 }
"""
    )
    assert [s.kind for s in specs] == ["local", "remote"] and specs[0].timeout_s == 30
    assert specs[0].config["model"].endswith("assets/step1x-edit-nano") and specs[1].config["output"] == 0
    json_specs = parse_contestants(
        json.dumps([{"name": "a", "model": "m"}, {"name": "b", "model": "m"}]), "json"
    )
    assert [s.name for s in json_specs] == ["a", "b"]
    bad = [
        ('[[contestant]]\nname = "x"', "either model"),
        ('[[contestant]]\nname = "x"\nmodel = "m"\nurl = "u"', "either model"),
        ('[[contestant]]\nname = "x"\nmodel = "m"\nsteps = 0', "steps must be"),
        ('[[contestant]]\nname = "x"\nmodel = "m"\nseed = "sometimes"', "seed must be"),
        ('[[contestant]]\nname = "x"\nmodel = "m"\ncolour = 1', "unknown field"),
        ('[[contestant]]\nname = "x"\nurl = "u"\napi_name = "edit"', "api_name must look like"),
        (
            '[[contestant]]\nname = "x"\nurl = "u"\napi_name = "/e"\nargs = { a = "$instruction" }',
            "'[$]image'",
        ),
        ('[[contestant]]\nname = "x"\nmodel = "m"\n[[contestant]]\nname = "x"\nmodel = "n"', "distinct"),
        ("not toml at all [", "cannot read"),
    ]
    for text_, message in bad:
        with pytest.raises(ContestantError, match=message):
            parse_contestants(text_)


def test_cli_arena_and_export_battles(tmp_path, capsys):
    from workbench.__main__ import main

    common = ["--db", f"sqlite:///{tmp_path / 'cli.db'}", "--data-dir", str(tmp_path / "data")]
    spec = tmp_path / "arena.json"
    spec.write_text(json.dumps([{"name": "a", "model": "assets/step1x-edit-nano"},
                                {"name": "b", "model": "assets/step1x-edit-nano-v1", "seed": 3}]))  # fmt: skip
    assert main(["arena", "create", "cli-arena", "--contestants", str(spec), *common]) == 0
    assert "seed=3" in capsys.readouterr().out
    log = _idless(tmp_path / "log.json", [{"model_a": "a", "model_b": "b", "winner": "model_b"}] * 3)
    assert main(["import-battles", str(log), "--study", "cli-arena", *common]) == 0
    assert main(["import-battles", str(log), "--study", "cli-arena", *common]) == 2
    assert "this file was already imported" in capsys.readouterr().err
    out = tmp_path / "clean_battle.json"
    assert main(["export-battles", "--study", "cli-arena", "--out", str(out), *common]) == 0
    assert [r["winner"] for r in json.loads(out.read_text())] == ["model_b"] * 3
    capsys.readouterr()
    assert main(["arena", "health", "cli-arena", *common]) == 0
    health = json.loads(capsys.readouterr().out)
    assert [h["system"] for h in health] == ["a", "b"] and all(h["battles"] == 0 for h in health)
