"""Judge plumbing with a scripted backend: VIEScore arithmetic, bounded re-ask, recorded failures (never a
score), missing outputs, the content-hash cache, per-sample records and their statistics."""

import json
import math

import pytest
from PIL import Image

from workbench.gedit.dataset import filter_samples
from workbench.gedit.judge import JudgeCache, ask_scored, judge_run, judge_sample, resize_for_judge
from workbench.gedit.prompts import PROMPT_VERSION, STRICT_SUFFIX
from workbench.gedit.run import output_path, run_bench
from workbench.gedit.stats import load_scores, summarize_all


class ScriptedJudge:
    """Answers by rule: SC questions (2 images) and PQ questions (1 image); counts real generate calls."""

    judge_id = "scripted@test:fp32"
    name = "scripted"
    generation = {"do_sample": False}

    def __init__(
        self, sc_reply='{"score": [8, 6], "reasoning": "ok"}', pq_reply='{"score": [9, 7], "reasoning": "ok"}'
    ):
        self.sc_reply, self.pq_reply = sc_reply, pq_reply
        self.calls = 0

    def generate(self, images, text):
        self.calls += 1
        reply = self.sc_reply if len(images) == 2 else self.pq_reply
        return reply(text) if callable(reply) else reply


def img(color=(10, 20, 30), size=(64, 48)):
    return Image.new("RGB", size, color)


def test_viescore_arithmetic_and_judge_inputs(tmp_path):
    judge = ScriptedJudge()
    record = judge_sample(judge, JudgeCache(tmp_path), img(), img((200, 0, 0)), "make it red")
    assert record["SC"] == 6 and record["PQ"] == 7 and record["O"] == pytest.approx(math.sqrt(42))
    assert record["sc"]["scores"] == [8, 6] and record["pq"]["scores"] == [9, 7]
    assert record["sc"]["raw"] == ['{"score": [8, 6], "reasoning": "ok"}']
    assert record["status"] == "ok" and record["sc"]["status"] == "ok"
    resized = resize_for_judge(img(size=(1000, 500)))
    assert resized.size == (724, 362)  # about 512*512 area, aspect kept, int truncation


def test_bounded_reask_then_recorded_failure(tmp_path):
    cache = JudgeCache(tmp_path)
    fixed = ScriptedJudge(
        sc_reply=lambda text: '{"score": [7, 7]}' if text.endswith(STRICT_SUFFIX) else "Looks good!"
    )
    q = ask_scored(fixed, cache, [img(), img()], "prompt", max_attempts=2)
    assert q.status == "retried" and q.scores == [7, 7] and q.replies == ["Looks good!", '{"score": [7, 7]}']

    hopeless = ScriptedJudge(sc_reply="I cannot help with that.")
    record = judge_sample(hopeless, cache, img(), img((1, 2, 3)), "add a hat", max_attempts=3)
    assert record["status"] == "judge_failed"
    assert record["SC"] is None and record["O"] is None  # never a guessed score
    assert record["PQ"] == 7
    assert record["sc"]["attempts"] == 3 and len(record["sc"]["errors"]) == 3
    # Greedy re-asks with an identical prompt cost nothing: 2 distinct prompts -> 2 generate calls for SC.
    assert hopeless.calls == 2 + 1


def test_judge_run_records_cache_and_stats(tmp_path, bench, make_editor):
    samples = filter_samples(bench, task_types=["color_alter", "text_change", "style_change"])
    results, scores = tmp_path / "results", tmp_path / "scores"
    run_bench(make_editor(), samples, results, progress=False)
    missing = samples[0]
    output_path(results, "tiny-editor", missing).unlink()  # an editor failure
    output_path(results, "tiny-editor", samples[1]).write_bytes(b"\x89PNG\r\n truncated")  # a corrupt output
    bad = {s.instruction for s in samples if s.task_type == "style_change" and s.language == "cn"}
    judge = ScriptedJudge(sc_reply=lambda text: "???" if any(b in text for b in bad) else '{"score": [8, 6]}')
    cache = JudgeCache(scores / ".cache")
    manifest = judge_run(judge, samples, results, "tiny-editor", scores, cache, progress=False)

    n_bad = sum(1 for s in samples if s.instruction in bad)
    assert manifest["counts_this_run"] == {
        "ok": len(samples) - 2 - n_bad,
        "judge_failed": n_bad,
        "missing_output": 2,
    }
    assert manifest["prompt_version"] == PROMPT_VERSION and manifest["judge"] == judge.judge_id
    assert manifest["generation"]["do_sample"] is False
    lines = (scores / "tiny-editor" / "scripted" / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(samples)
    failed = [r for r in records if r["status"] == "judge_failed"]
    assert all(r["SC"] is None and r["sc"]["raw"] == ["???", "???"] for r in failed)
    assert all(r["judge"] == judge.judge_id and r["prompt_version"] == PROMPT_VERSION for r in records)
    corrupt = next(r for r in records if r["key"] == samples[1].key and r["language"] == samples[1].language)
    assert corrupt["status"] == "missing_output" and "not a readable image" in corrupt["output_error"]

    # A rerun costs nothing: every call is a cache hit.
    calls = judge.calls
    again = judge_run(judge, samples, results, "tiny-editor", scores, cache, progress=False)
    assert judge.calls == calls and again["cache"]["misses"] == 0 and again["cache"]["hits"] > 0
    # A different judge id misses the cache.
    other = ScriptedJudge()
    other.judge_id = "scripted@other:fp32"
    judge_run(other, samples[:1], results, "tiny-editor", scores, cache, judge_name="other", progress=False)
    assert other.calls == 0  # samples[0] has no output: nothing to ask
    judge_run(other, samples[2:3], results, "tiny-editor", scores, cache, judge_name="other", progress=False)
    assert other.calls == 2

    table = load_scores(scores, judge="scripted")["tiny-editor"]
    summary = summarize_all({"m": table})
    cov_cn = summary["details"]["m"]["cn"]["fullset"]["coverage"]
    assert cov_cn["judge_failed"] == n_bad
    assert summary["scores"]["m"]["en"]["fullset"]["average"] == pytest.approx(
        {"SC": 6.0, "PQ": 7.0, "O": math.sqrt(42)}
    )
    strict = summarize_all({"m": table}, missing_as_zero=True)["scores"]["m"]
    assert strict[missing.language]["fullset"][missing.task_type]["SC"] < 6.0  # the missing output counts 0
    # the CN style_change group had only failures: it drops out of the CN average (coverage says so)
    assert "style_change" not in summary["details"]["m"]["cn"]["fullset"]["n"]
    assert cov_cn["task_types_scored"] == 2
