"""The whole `bench` command chain on tiny local models: make-bench -> run (two models, a saved tiny
pipeline folder) -> judge (tiny random judge) -> stats -> compare -> import-study -> human-vs-judge."""

import json

import pytest

from workbench.gedit.cli import main


@pytest.mark.slow
def test_bench_cli_chain(tmp_path, tiny_judge_dir, capsys):
    from model.tiny import tiny_pipeline

    bench = tmp_path / "bench.parquet"
    assert main(["bench", "make-bench", "--out", str(bench), "--per-type", "1"]) == 0
    model_dir = tmp_path / "tiny-model"
    tiny_pipeline().save_pretrained(model_dir)
    results, scores = tmp_path / "results", tmp_path / "scores"
    common = ["--bench", str(bench), "--task-type", "color_alter", "text_change"]
    for name, seed in (("tiny-a", "0"), ("tiny-b", "1")):
        run = ["bench", "run", *common, "--model", str(model_dir), "--name", name, "--results", str(results)]
        assert main([*run, "--seed", seed, "--steps", "2", "--size-level", "64"]) == 0
    capsys.readouterr()
    outputs = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.png"))
    assert len(outputs) == 2 * 2 * 2  # 2 models x 2 task types x EN/CN
    assert outputs[0].startswith("tiny-a/fullset/color_alter/cn/")
    run_manifest = json.loads((results / "tiny-b" / "run_manifest.json").read_text())
    assert run_manifest["bench"].startswith(f"{bench}@sha256:") and run_manifest["settings"]["seed"] == 1
    assert run_manifest["model_config"]["version"] == "v1.1" and run_manifest["generated"] == 4

    for name in ("tiny-a", "tiny-b"):
        judge = ["bench", "judge", *common, "--results", str(results), "--model-name", name]
        judge += ["--judge", str(tiny_judge_dir), "--judge-name", "tiny", "--scores", str(scores)]
        assert main([*judge, "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "4"]) == 0
        manifest = json.loads(capsys.readouterr().out)
        assert manifest["counts_this_run"]["judge_failed"] == 4 and manifest["counts_this_run"]["ok"] == 0

    assert main(["bench", "stats", "--scores", str(scores)]) == 0
    text = capsys.readouterr().out
    assert "scored 0/2 (judge failed 2, missing output 0)" in text
    assert main(["bench", "stats", "--scores", str(scores), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["tiny-a"]["en"]["fullset"]["average"] == {"SC": None, "PQ": None, "O": None}

    assert main(["bench", "compare", "--scores", str(scores), "tiny-a", "tiny-b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pairs"] == 0
    with pytest.raises(SystemExit, match="no scores for model 'nope'"):
        main(["bench", "compare", "--scores", str(scores), "tiny-a", "nope"])

    db = ["--db", f"sqlite:///{tmp_path / 'wb.db'}", "--data-dir", str(tmp_path / "data")]
    imp = ["bench", "import-study", *common, *db, "--results", str(results), "--models", "tiny-a", "tiny-b"]
    assert main([*imp, "--study", "gedit"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 4
    assert main(["bench", "human-vs-judge", *db, "--study", "gedit", "--scores", str(scores), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["votes"] == 0 and report["votes_with_judge_scores"] == 0
