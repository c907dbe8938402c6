"""`--official-prompts`: templates read verbatim (never executed) from the user's own VIEScore checkout, every
score labelled with the prompt set that produced it, and judge replies with raw newlines parsed, not re-asked.

The template file written here is a stand-in with the official *names* and joining rule, not the official text.
"""

import json

import pytest
from PIL import Image

from workbench.__main__ import main
from workbench.gedit.dataset import filter_samples
from workbench.gedit.judge import JudgeCache, judge_run, judge_sample
from workbench.gedit.prompts import STUDIO_PROMPTS, OfficialPromptsError, official_prompts
from workbench.gedit.run import run_bench

TEMPLATES = '''
import os
os.makedirs("EXECUTED", exist_ok=True)  # must never run: the file is parsed, not imported
_context_no_delimit = """CONTEXT: rate the images."""
_prompts_0shot_two_image_edit_rule = """EDIT RULE: instruction <instruction>."""
_prompts_0shot_tie_rule_SC = """SC RULE: two scores."""
_prompts_0shot_rule_PQ = """PQ RULE: two scores."""
unrelated = 3
'''


class RecordingJudge:
    judge_id = "recording@test:fp32"
    name = "recording"
    generation = {"do_sample": False}

    def __init__(self, reply='{"score": [8, 6], "reasoning": "ok"}'):
        self.prompts: list[str] = []
        self.reply = reply

    def generate(self, images, text):
        self.prompts.append(text)
        return self.reply


def _checkout(tmp_path):
    folder = tmp_path / "GEdit-Bench" / "viescore"
    folder.mkdir(parents=True)
    (folder / "vie_prompts.py").write_text(TEMPLATES)
    return tmp_path / "GEdit-Bench"


def test_templates_are_read_verbatim_without_running_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompts = official_prompts(_checkout(tmp_path))
    assert not (tmp_path / "EXECUTED").exists()
    assert (
        prompts.sc("add a hat")
        == "CONTEXT: rate the images.\nEDIT RULE: instruction add a hat.\nSC RULE: two scores."
    )
    assert prompts.pq() == "CONTEXT: rate the images.\nPQ RULE: two scores."
    assert prompts.version.startswith("official-viescore-tie-") and prompts.sha256 != STUDIO_PROMPTS.sha256
    assert official_prompts(tmp_path / "GEdit-Bench" / "viescore" / "vie_prompts.py").sha256 == prompts.sha256


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('_context_no_delimit = "only the context"\n', "no string constant"),
        ("def broken(:\n", "cannot read"),
        (TEMPLATES.replace("<instruction>", "INSTRUCTION"), "no <instruction> placeholder"),
    ],
)
def test_unusable_templates_are_a_clear_error(tmp_path, content, message):
    path = tmp_path / "vie_prompts.py"
    path.write_text(content)
    with pytest.raises(OfficialPromptsError, match=message):
        official_prompts(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfficialPromptsError, match="no vie_prompts.py"):
        official_prompts(tmp_path / "empty")


def test_scores_record_the_prompt_set_and_miss_the_other_sets_cache(tmp_path, bench, make_editor):
    samples = filter_samples(bench, task_types=["color_alter"], languages=["en"])
    results, scores = tmp_path / "results", tmp_path / "scores"
    run_bench(make_editor(), samples, results, progress=False)
    judge, cache = RecordingJudge(), JudgeCache(scores / ".cache")
    prompts = official_prompts(_checkout(tmp_path))
    judge_run(judge, samples, results, "tiny-editor", scores, cache, progress=False)
    studio_calls = len(judge.prompts)
    manifest = judge_run(
        judge, samples, results, "tiny-editor", scores, cache, progress=False, prompts=prompts
    )
    assert len(judge.prompts) == 2 * studio_calls  # another prompt text: no cache hit
    assert all(p.startswith("CONTEXT: rate the images.") for p in judge.prompts[studio_calls:])
    assert manifest["prompt_version"] == prompts.version and manifest["prompt_sha256"] == prompts.sha256
    records = [json.loads(line) for line in (scores / "tiny-editor" / "recording" / "samples.jsonl").open()]
    assert {r["prompt_version"] for r in records} == {prompts.version}


def test_a_reply_with_raw_newlines_is_repaired_not_reasked(tmp_path):
    judge = RecordingJudge(
        '{\n"score" : [7, 9],\n"reasoning" : "The sky is orange.\nNothing else changed."\n}'
    )
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    record = judge_sample(judge, JudgeCache(tmp_path), image, image, "make the sky orange")
    assert record["status"] == "ok" and record["SC"] == 7
    assert record["sc"]["status"] == "repaired" and record["sc"]["attempts"] == 1
    assert len(judge.prompts) == 2  # one SC and one PQ question, no re-ask


def test_cli_rejects_a_path_without_templates(tmp_path, capsys):
    code = main(
        ["bench", "judge", "--bench", str(tmp_path), "--model-name", "m", "--judge", "j",
         "--official-prompts", str(tmp_path)]
    )  # fmt: skip
    assert code == 2 and "no vie_prompts.py" in capsys.readouterr().err
