"""The judge-reply parser on a corpus of realistic replies: what parses, what is repaired, what fails."""

import pytest

from workbench.gedit.parse import parse_reply

GOOD = [
    # (reply, scores, status)
    ('{"score": [8, 6], "reasoning": "The car is red; the background is unchanged."}', [8, 6], "ok"),
    ('{\n"score" : [7.5, 9],\n"reasoning" : "ok"\n}', [7.5, 9], "ok"),
    ('```json\n{"score": [3, 10], "reasoning": "barely edited"}\n```', [3, 10], "ok"),
    ('Here is my evaluation:\n{"score": [9, 8], "reasoning": "good"}\nHope this helps!', [9, 8], "ok"),
    ('||V^=^V||\n{"score": [5, 5], "reasoning": "meh"}\n||V^=^V||', [5, 5], "ok"),
    ('{"score": [0, 10], "reasoning": "编辑失败，图像没有变化。"}', [0, 10], "ok"),
    ('{"score": ["6", "7"], "reasoning": "numbers as strings"}', [6, 7], "ok"),
    ('{"reasoning": "braces {inside} text", "score": [4, 6]}', [4, 6], "ok"),
    ('Reasoning first: {"note": "x"} then {"score": [2, 3], "reasoning": "second object"}', [2, 3], "ok"),
]

REPAIRED = [
    ('{"score"：[8，7]，"reasoning"："背景已替换为海滩，效果自然。"}', [8, 7], "full-width punctuation"),
    ('{"score": [6, 7], "reasoning": "fine",}', [6, 7], "trailing comma"),
    ("{'score': [5, 9], 'reasoning': 'python dict'}", [5, 9], "single quotes"),
    ("[7, 8]", [7, 8], "bare list"),
    (
        '{\n"score" : [8, 6],\n"reasoning" : "The hat is added.\nThe face is unchanged."\n}',
        [8, 6],
        "newline inside a string",
    ),
    ('{"score"：[7，5]，"reasoning"："第一行\n第二行"}', [7, 5], "newline inside a string"),
]

FAILED = [
    ("", "empty"),
    ("I cannot evaluate this image.", "no JSON"),
    ('{"reasoning": "forgot the scores"}', "no 'score' key"),
    ('{"score": [8], "reasoning": "one score"}', "expected 2 scores"),
    ('{"score": [8, 7, 6], "reasoning": "three"}', "expected 2 scores"),
    ('{"score": [11, 7], "reasoning": "out of range"}', "outside"),
    ('{"score": [-1, 7], "reasoning": "negative"}', "outside"),
    ('{"score": [85, 70], "reasoning": "percent scale"}', "outside"),
    ('{"score": ["high", "low"], "reasoning": "words"}', "non-numeric"),
    ('{"score": [true, 5], "reasoning": "bool"}', "non-numeric"),
    ('{"score": 8, "reasoning": "scalar"}', "not a list"),
    ('{"score": [8, 7], "reasoning": "truncated', "no JSON"),
    ("评分：8分和7分。图像编辑成功。", "no JSON"),
    ("!!!!@@@ token soup <|im_end|> 0 0 0", "no JSON"),
]


@pytest.mark.parametrize(("reply", "scores", "status"), GOOD)
def test_clean_replies_parse_exactly(reply, scores, status):
    result = parse_reply(reply)
    assert result.status == status
    assert result.scores == scores
    assert result.fixes == []


@pytest.mark.parametrize(("reply", "scores", "fix"), REPAIRED)
def test_repairs_are_recorded(reply, scores, fix):
    result = parse_reply(reply)
    assert result.status == "repaired"
    assert result.scores == scores
    assert fix in result.fixes


@pytest.mark.parametrize(("reply", "reason"), FAILED)
def test_unparseable_replies_fail_without_a_score(reply, reason):
    result = parse_reply(reply)
    assert result.status == "failed"
    assert result.scores is None
    assert not result.ok
    assert reason.lower().split()[0] in result.error.lower()


def test_chinese_reasoning_is_kept():
    result = parse_reply('{"score": [9, 8], "reasoning": "文字已改为HELLO"}')
    assert result.reasoning == "文字已改为HELLO"
