"""What an edit instruction must be (shared by the Edit and Arena tabs), its language and a rough category."""

from __future__ import annotations

import re

MAX_INSTRUCTION_CHARS = 1000
EMPTY_MESSAGE = "Please type an instruction, e.g. 'make the sky orange' or '把天空变成橙色'."
LONG_MESSAGE = f"Keep the instruction under {MAX_INSTRUCTION_CHARS} characters."
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# First match wins; English keywords are matched as words, Chinese ones as substrings. The categories are the
# edit types of the Step1X-Edit paper that a keyword can tell apart; everything else is "other".
CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "text",
        ("text", "word", "words", "letter", "letters", "write", "writing", "caption", "文字", "字", "写"),
    ),
    ("background", ("background", "backdrop", "背景")),
    ("style", ("style", "painting", "cartoon", "sketch", "anime", "watercolor", "outline", "风格", "画风")),
    (
        "tone",
        ("tone", "brighter", "darker", "brightness", "contrast", "warmer", "colder", "色调", "亮", "暗"),
    ),
    ("remove", ("remove", "delete", "erase", "get rid", "删除", "去掉", "移除", "去除")),
    ("add", ("add", "insert", "put", "place", "添加", "加上", "增加", "放")),
    # Colour words before "replace": "turn it red" / "把它变成红色" recolour rather than replace.
    (
        "color",
        (
            "color",
            "colour",
            "red",
            "green",
            "blue",
            "yellow",
            "orange",
            "purple",
            "pink",
            "black",
            "white",
            "颜色",
            "红",
            "绿",
            "蓝",
            "黄",
            "橙",
            "紫",
            "粉",
            "黑",
            "白",
        ),
    ),  # fmt: skip
    ("replace", ("replace", "swap", "turn", "into", "替换", "换成", "变成")),
    ("move", ("move", "shift", "移动", "挪")),
    ("texture", ("texture", "striped", "stripes", "pattern", "纹理", "条纹")),
)


def instruction_problem(instruction: str | None) -> str | None:
    """The message to show for an unusable instruction, or None when it is fine."""
    text = (instruction or "").strip()
    if not text:
        return EMPTY_MESSAGE
    if len(text) > MAX_INSTRUCTION_CHARS:
        return LONG_MESSAGE
    if "\x00" in text:
        return "The instruction contains a NUL character; please remove it."
    return None


def instruction_language(text: str) -> str:
    """ "zh" when the instruction contains Chinese characters, else "en"."""
    return "zh" if _CJK.search(text) else "en"


def category_of(instruction: str) -> str:
    """A rough edit category from keywords (for per-category leaderboards of free-form prompts)."""
    lowered = instruction.lower()
    words = set(re.findall(r"[a-z]+", lowered))
    for category, keywords in CATEGORY_KEYWORDS:
        for keyword in keywords:
            if (keyword in words) if keyword.isascii() and " " not in keyword else keyword in lowered:
                return category
    return "other"
