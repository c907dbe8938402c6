"""The real transformers judge path on a tiny random Qwen2.5-VL saved to a folder (no weights downloaded):
loading, chat template with images, greedy generation, caching. Its replies are garbage, so every sample
must come out as a recorded judge failure with the raw text kept, and never as a score."""

import json

import pytest

from workbench.gedit.dataset import filter_samples
from workbench.gedit.judge import JudgeCache, JudgeLoadError, QwenVLJudge, judge_run
from workbench.gedit.run import run_bench
from workbench.gedit.stats import load_scores, summarize_all


def test_tiny_random_judge_failures_are_counted(tmp_path, tiny_judge_dir, bench, make_editor):
    judge = QwenVLJudge.load(str(tiny_judge_dir), device="cpu", dtype="float32", max_new_tokens=12)
    assert judge.judge_id.startswith("tiny-qwen25vl-judge") and "@local-" in judge.judge_id
    samples = filter_samples(bench, task_types=["color_alter"], languages=["en"])
    results, scores = tmp_path / "results", tmp_path / "scores"
    run_bench(make_editor(), samples, results, progress=False)
    cache = JudgeCache(tmp_path / "cache")
    manifest = judge_run(
        judge, samples, results, "tiny-editor", scores, cache, judge_name="tiny", progress=False
    )
    assert manifest["counts_this_run"] == {"ok": 0, "judge_failed": len(samples), "missing_output": 0}
    assert (
        manifest["generation"]["max_new_tokens"] == 12 and manifest["generation"]["repetition_penalty"] == 1.0
    )
    # 2 questions x 2 attempts (plain, then the stricter re-ask) per sample, all real generate calls
    assert manifest["cache"] == {"hits": 0, "misses": 4 * len(samples)}

    again = judge_run(
        judge, samples, results, "tiny-editor", scores, cache, judge_name="tiny", progress=False
    )
    assert again["cache"] == {"hits": 4 * len(samples), "misses": 0}

    records = [json.loads(line) for line in (scores / "tiny-editor" / "tiny" / "samples.jsonl").open()]
    for rec in records:  # raw replies kept for offline re-parsing; the parse error says why each failed
        assert len(rec["sc"]["raw"]) == 2 and all(isinstance(r, str) for r in rec["sc"]["raw"])
        assert rec["sc"]["errors"] and rec["sc"]["scores"] is None and rec["O"] is None

    table = load_scores(scores)["tiny-editor"]
    assert (table["status"] == "judge_failed").all() and table["SC"].isna().all()
    cov = summarize_all({"tiny": table})["details"]["tiny"]["en"]["fullset"]["coverage"]
    assert cov["scored"] == 0 and cov["judge_failed"] == len(samples)


def test_missing_judge_fails_clearly(tmp_path):
    with pytest.raises(JudgeLoadError, match="--judge"):
        QwenVLJudge.load(str(tmp_path / "no-such-judge"), device="cpu", dtype="float32")
    with pytest.raises(JudgeLoadError, match="--judge"):  # tests run offline: a Hub id cannot be fetched
        QwenVLJudge.load("Qwen/Qwen2.5-VL-7B-Instruct", device="cpu", dtype="float32")
