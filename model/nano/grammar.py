"""How people ask for an edit: sentence frames, synonyms, polite wrappers, questions and typos per language.

An edit is a language-free dict (`world.Triplet.edit`, e.g. {"obj": {...}, "color": "blue"}); `phrase`
turns it into one instruction. Frames come in two disjoint sets per category and language:
`FRAMES[...]["train"]` (the world's fixed templates among them) and `FRAMES[...]["heldout"]`, never used in
training, so the evaluation can ask whether the model understood the sentence or memorised the frame.
Training draws a fresh phrasing every time a triplet is used (`training_instruction`).
"""

from __future__ import annotations

import functools
import random
import re
import string

from model.nano.world import TEMPLATES, TONE_PHRASES

# ---------------------------------------------------------------- vocabulary

COLOR_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "red": {"en": ("red", "crimson"), "zh": ("红色", "红")},
    "green": {"en": ("green",), "zh": ("绿色", "绿")},
    "blue": {"en": ("blue",), "zh": ("蓝色", "蓝")},
    "yellow": {"en": ("yellow",), "zh": ("黄色", "黄")},
    "purple": {"en": ("purple", "violet"), "zh": ("紫色", "紫")},
    "orange": {"en": ("orange",), "zh": ("橙色", "橘色")},
    "white": {"en": ("white",), "zh": ("白色",)},
    "gray": {"en": ("gray", "grey"), "zh": ("灰色",)},
    "beige": {"en": ("beige", "cream"), "zh": ("米色", "米黄色")},
    "light blue": {"en": ("light blue", "pale blue", "sky blue"), "zh": ("浅蓝色", "淡蓝色")},
}
SHAPE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "circle": {"en": ("circle", "disc", "round shape"), "zh": ("圆形", "圆", "圆圈")},
    "square": {"en": ("square", "box", "block"), "zh": ("正方形", "方块", "方形")},
    "triangle": {"en": ("triangle", "triangle shape"), "zh": ("三角形", "三角")},
}
POSITION_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "top left": {"en": ("top left", "top-left", "upper left"), "zh": ("左上角", "左上方", "左上")},
    "top right": {"en": ("top right", "top-right", "upper right"), "zh": ("右上角", "右上方", "右上")},
    "bottom left": {"en": ("bottom left", "bottom-left", "lower left"), "zh": ("左下角", "左下方", "左下")},
    "bottom right": {
        "en": ("bottom right", "bottom-right", "lower right"),
        "zh": ("右下角", "右下方", "右下"),
    },
}
DIRECTION_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "left": {"en": ("left", "to the left", "leftwards"), "zh": ("左",)},
    "right": {"en": ("right", "to the right", "rightwards"), "zh": ("右",)},
    "up": {"en": ("up", "upwards", "upward"), "zh": ("上",)},
    "down": {"en": ("down", "downwards", "downward"), "zh": ("下",)},
}
# "solid" is deliberately absent: it would mean both "not striped" and "not an outline".
TEXTURE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "striped": {"en": ("striped", "stripy"), "zh": ("条纹", "条纹状")},
    "plain": {"en": ("plain", "unstriped"), "zh": ("纯色", "素色")},
}
STYLE_NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "outline": {
        "en": ("an outline", "a hollow outline", "just an outline"),
        "zh": ("空心轮廓", "空心", "轮廓"),
    },
    "filled": {"en": ("a filled shape", "a filled-in shape"), "zh": ("实心图形", "实心")},
}
STYLE_ADJECTIVES = {"outline": ("hollow", "outlined"), "filled": ("filled", "filled in")}
# English names of letters that start with a vowel sound take "an".
AN_LETTERS = frozenset("AEFHILMNORSX")

# ---------------------------------------------------------------- sentence frames

_T = "train"
_H = "heldout"
# Training frames span imperatives, "should" / "应该" statements, wishes and several word orders; the held-out
# frames keep structures no training frame has: "has to" / "需要", passives with "by", "shouldn't have",
# "在…的位置", a colour before "背景", "改写", "去色" / "反色".
FRAMES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "add": {
        "en": {
            _T: (
                "place {new} in the {pos} corner",
                "insert {new} at the {pos}",
                "i want {new} in the {pos}",
                "there should be {new} in the {pos}",
                "give the {pos} corner {new}",
                "stick {new} in the {pos}",
                "the {pos} should get {new}",
                "paint {new} into the {pos} corner",
                "drop {new} into the {pos} cell",
            ),
            _H: ("in the {pos} corner, put {new}", "{new} should be added in the {pos}"),
        },
        "zh": {
            _T: (
                "在{pos}加上{new}",
                "给{pos}加上{new}",
                "我想在{pos}看到{new}",
                "{pos}应该有{new}",
                "在{pos}处添上{new}",
                "把{new}画在{pos}",
                "{pos}那里加上{new}",
                "我要在{pos}加{new}",
                "往{pos}添上{new}",
            ),
            _H: ("{pos}需要{new}", "把{new}放到{pos}"),
        },
    },
    "remove": {
        "en": {
            _T: (
                "get rid of {obj}",
                "i don't want {obj} anymore",
                "{obj} should be removed",
                "clear {obj} from the image",
                "wipe out {obj}",
                "drop {obj} from the picture",
                "lose {obj}",
                "{obj} should go",
                "i'd like {obj} gone",
            ),
            _H: ("{obj} has to be deleted", "the picture shouldn't have {obj}"),
        },
        "zh": {
            _T: (
                "去掉{obj}",
                "把{obj}删掉",
                "不要{obj}",
                "擦掉{obj}",
                "{obj}应该去掉",
                "把{obj}拿掉",
                "清除{obj}",
                "我不想要{obj}了",
                "将{obj}删除",
            ),
            _H: ("{obj}需要被删除", "将{obj}从图中移除"),
        },
    },
    "replace": {
        "en": {
            _T: (
                "change {obj} into {new}",
                "exchange {obj} for {new}",
                "{obj} should become {new}",
                "put {new} where {obj} is",
                "i want {new} instead of {obj}",
                "substitute {new} for {obj}",
                "swap out {obj} for {new}",
                "take out {obj} and draw {new} there",
                "{obj} should be swapped with {new}",
            ),
            _H: ("use {new} in place of {obj}", "{obj} has to be replaced by {new}"),
        },
        "zh": {
            _T: (
                "把{obj}变成{new}",
                "{obj}改成{new}",
                "拿{new}换掉{obj}",
                "{obj}应该换成{new}",
                "把{obj}替换成{new}",
                "将{obj}改为{new}",
                "我想把{obj}换成{new}",
                "用{new}代替{obj}",
                "把{obj}改画成{new}",
            ),
            _H: ("{obj}需要换成{new}", "在{obj}的位置放{new}"),
        },
    },
    "color": {
        "en": {
            _T: (
                "turn {obj} {color}",
                "colour {obj} {color}",
                "{obj} should be {color}",
                "i want {obj} to be {color}",
                "dye {obj} {color}",
                "switch the colour of {obj} to {color}",
                "{obj} in {color}, please",
                "fill {obj} with {color}",
            ),
            _H: ("give {obj} a {color} colour", "{obj} has to be painted {color}"),
        },
        "zh": {
            _T: (
                "把{obj}改成{color}",
                "{obj}换成{color}",
                "给{obj}涂上{color}",
                "{obj}应该是{color}的",
                "把{obj}染成{color}",
                "{obj}的颜色换成{color}",
                "将{obj}改成{color}",
                "我想要{obj}是{color}",
            ),
            _H: ("{obj}需要变成{color}", "让{obj}的颜色变成{color}"),
        },
    },
    "texture": {
        "en": {
            _T: (
                "turn {obj} {texture}",
                "{obj} should be {texture}",
                "i want {obj} to look {texture}",
                "switch {obj} to a {texture} fill",
                "use a {texture} pattern for {obj}",
                "{obj} should have a {texture} pattern",
                "change the pattern of {obj} to {texture}",
            ),
            _H: ("{obj} has to get a {texture} pattern", "give {obj} a {texture} look"),
        },
        "zh": {
            _T: (
                "把{obj}变成{texture}的",
                "{obj}改为{texture}图案",
                "{obj}应该是{texture}的",
                "把{obj}弄成{texture}的",
                "{obj}换成{texture}的样式",
                "我想让{obj}变成{texture}的",
                "让{obj}用{texture}图案",
            ),
            _H: ("{obj}需要{texture}纹理", "给{obj}加上{texture}纹理"),
        },
    },
    "style": {
        "en": {
            _T: (
                "turn {obj} into {style}",
                "{obj} should be {style_adj}",
                "show {obj} as {style}",
                "i want {obj} {style_adj}",
                "redraw {obj} as {style}",
                "make {obj} look {style_adj}",
                "change {obj} to {style}",
            ),
            _H: ("{obj} has to be drawn as {style}", "give me {obj} {style_adj}"),
        },
        "zh": {
            _T: (
                "把{obj}改成{style}",
                "{obj}变成{style}",
                "{obj}应该是{style}",
                "把{obj}弄成{style}",
                "{obj}改画成{style}",
                "将{obj}画为{style}",
                "我想要{obj}变成{style}",
            ),
            _H: ("{obj}需要画成{style}", "用{style}画{obj}"),
        },
    },
    "background": {
        "en": {
            _T: (
                "turn the background {bg}",
                "paint the background {bg}",
                "use a {bg} background",
                "the background should be {bg}",
                "i want a {bg} background",
                "switch the backdrop to {bg}",
                "recolour the background {bg}",
                "put everything on a {bg} background",
            ),
            _H: ("give the picture a {bg} background", "the background has to be {bg}"),
        },
        "zh": {
            _T: (
                "把背景涂成{bg}",
                "背景改成{bg}",
                "背景应该是{bg}",
                "把背景颜色改成{bg}",
                "背景用{bg}",
                "我想要背景是{bg}",
                "把底色换成{bg}",
                "将背景色设为{bg}",
                "让背景变成{bg}",
            ),
            _H: ("背景需要是{bg}", "给图片换一个{bg}背景"),
        },
    },
    "text": {
        "en": {
            _T: (
                "turn the {old} into {a_new}",
                "swap the letter {old} for {new_letter}",
                "the letter {old} should say {new_letter}",
                "replace {old} with {new_letter}",
                "change '{old}' to '{new_letter}'",
                "i'd like {a_new} instead of the {old}",
                "the {old} should read {new_letter}",
                "make the letter {old} {a_new}",
                "rewrite the {old} as {a_new}",
            ),
            _H: ("the letter {old} has to become {new_letter}", "put {a_new} where the letter {old} is"),
        },
        "zh": {
            _T: (
                "把字母{old}变成{new_letter}",
                "用{new_letter}替换字母{old}",
                "字母{old}应该是{new_letter}",
                "将字母{old}换成{new_letter}",
                "{old}这个字母改成{new_letter}",
                "我想把字母{old}换成{new_letter}",
                "字母{old}改为{new_letter}",
            ),
            _H: ("字母{old}需要改成{new_letter}", "把文字{old}改写成{new_letter}"),
        },
    },
    "move": {
        "en": {
            _T: (
                "push {obj} {dir}",
                "move {obj} one step {dir}",
                "{obj} should move {dir}",
                "i want {obj} moved {dir}",
                "nudge {obj} {dir}",
                "shift {obj} over {dir}",
                "drag {obj} {dir} by one cell",
            ),
            _H: ("{obj} has to be shifted {dir}", "take {obj} and move it {dir}"),
        },
        "zh": {
            _T: (
                "把{obj}往{dir}挪",
                "{obj}向{dir}移",
                "{obj}应该往{dir}移",
                "把{obj}往{dir}推一格",
                "将{obj}向{dir}平移",
                "{obj}往{dir}挪一下",
            ),
            _H: ("{obj}需要往{dir}移动", "把{obj}移到{dir}边"),
        },
    },
}
# Frames whose wording depends on the requested value (the edit's own words carry the meaning).
VALUE_FRAMES: dict[tuple[str, str], dict[str, dict[str, tuple[str, ...]]]] = {
    ("texture", "striped"): {
        "en": {_T: ("add stripes to {obj}", "put stripes on {obj}"), _H: ()},
        "zh": {_T: ("给{obj}加上条纹",), _H: ()},
    },
    ("texture", "plain"): {
        "en": {_T: ("remove the stripes from {obj}", "take the stripes off {obj}"), _H: ()},
        "zh": {_T: ("去掉{obj}的条纹",), _H: ()},
    },
    ("style", "outline"): {
        "en": {_T: ("hollow out {obj}", "keep only the outline of {obj}"), _H: ()},
        "zh": {_T: ("把{obj}挖空",), _H: ()},
    },
    ("style", "filled"): {
        "en": {_T: ("fill in {obj}", "fill {obj} with colour"), _H: ()},
        "zh": {_T: ("把{obj}填满",), _H: ()},
    },
    ("tone", "grayscale"): {
        "en": {
            _T: (
                *TONE_PHRASES["grayscale"]["en"],
                "desaturate the image",
                "turn the picture gray",
                "make it monochrome",
                "i want the image in black and white",
                "the picture should be grayscale",
                "drain the colour from the picture",
                "make it look like an old black and white photo",
            ),
            _H: ("the picture has to be black and white", "give the image a grayscale look"),
        },
        "zh": {
            _T: (
                *TONE_PHRASES["grayscale"]["zh"],
                "把图片变成灰度图",
                "让图片变成黑白的",
                "图片应该是黑白的",
                "把画面变成黑白",
                "去掉图片的颜色",
                "转成灰度",
            ),
            _H: ("图片需要变成黑白", "给图片去色"),
        },
    },
    ("tone", "invert"): {
        "en": {
            _T: (
                *TONE_PHRASES["invert"]["en"],
                "turn the picture into a negative",
                "reverse all colours",
                "make the image look like a negative",
                "the colours should be reversed",
                "flip every colour to its opposite",
                "i want inverted colours",
            ),
            _H: ("the colours have to be inverted", "give the picture inverted colours"),
        },
        "zh": {
            _T: (
                *TONE_PHRASES["invert"]["zh"],
                "把颜色反转",
                "让图片变成负片效果",
                "颜色应该反过来",
                "把图片的颜色反过来",
                "做成负片",
                "对图片做反相处理",
            ),
            _H: ("颜色需要反转", "给图片反色"),
        },
    },
}
VALUE_KEYS = {"texture": "texture", "style": "style", "tone": "tone"}

# ---------------------------------------------------------------- wrappers

POLITE = {
    "en": (
        "please {x}",
        "{x}, please",
        "{x}, thanks",
        "{x} please",
        "please {x}, thank you",
        "hey, could you please {x} for me? thanks",
        "i'd like you to {x}",
        "kindly {x}",
        "hi! {x}",
        "{x}, thank you!",
    ),
    "zh": ("请{x}", "{x}，谢谢", "麻烦{x}", "请帮我{x}，谢谢！", "帮我{x}吧", "劳驾{x}"),
}
QUESTIONS = {
    "en": (
        "can you {x}?",
        "could you {x}?",
        "would you {x}?",
        "could you please {x}?",
        "can you please {x} for me?",
        "hey, could you {x} for me? thanks",
    ),
    "zh": ("你能{x}吗？", "可以{x}吗？", "能不能{x}？", "请问可以帮我{x}吗？"),
}
PUNCTUATION = {"en": ("", ".", "!"), "zh": ("", "。", "！")}

VARIANTS = (
    "templates",
    "frames",
    "heldout_frames",
    "typo",
    "capitalised",
    "all_caps",
    "polite",
    "question",
)
# Variants that only make sense for Latin script (Chinese has no case and no letter typos).
ENGLISH_ONLY_VARIANTS = frozenset({"typo", "capitalised", "all_caps"})


def _pick(rng: random.Random, words: dict[str, dict[str, tuple[str, ...]]], key: str, lang: str) -> str:
    return rng.choice(words[key][lang])


def _noun(obj: dict, lang: str, rng: random.Random) -> str:
    if obj["kind"] == "letter":
        return f"字母{obj['letter']}" if lang == "zh" else f"letter {obj['letter']}"
    return _pick(rng, SHAPE_WORDS, obj["kind"], lang)


def definite(obj: dict, lang: str, rng: random.Random) -> str:
    """A phrase naming an object of the scene: "the red circle", "that crimson disc", "红色的圆形"..."""
    color = _pick(rng, COLOR_WORDS, obj["color"], lang)
    noun = _noun(obj, lang, rng)
    if lang == "zh":
        if obj["kind"] == "letter" and rng.random() < 0.3:
            return noun  # letters are unique in a scene
        return rng.choice((f"{color}的{noun}", f"那个{color}的{noun}", f"{color}{noun}"))
    if obj["kind"] == "letter" and rng.random() < 0.3:
        return f"the {noun}"
    return rng.choice((f"the {color} {noun}", f"the {color} {noun}", f"that {color} {noun}"))


def indefinite(obj: dict, lang: str, rng: random.Random) -> str:
    """A phrase for a new object: "a blue square", "an orange disc", "一个蓝色的正方形"."""
    color = _pick(rng, COLOR_WORDS, obj["color"], lang)
    noun = _noun(obj, lang, rng)
    if lang == "zh":
        return rng.choice((f"一个{color}的{noun}", f"{color}的{noun}", f"一个{color}{noun}"))
    return f"{'an' if color[0] in 'aeiou' else 'a'} {color} {noun}"


def _fields(edit: dict, lang: str, rng: random.Random) -> dict[str, str]:
    """Template fields of an edit, each word drawn from its synonyms."""
    out: dict[str, str] = {}
    if "obj" in edit:
        out["obj"] = definite(edit["obj"], lang, rng)
    if "new" in edit:
        out["new"] = indefinite(edit["new"], lang, rng)
    if "pos" in edit:
        out["pos"] = _pick(rng, POSITION_WORDS, edit["pos"], lang)
    if "color" in edit:
        out["color"] = _pick(rng, COLOR_WORDS, edit["color"], lang)
    if "bg" in edit:
        out["bg"] = _pick(rng, COLOR_WORDS, edit["bg"], lang)
    if "dir" in edit:
        out["dir"] = _pick(rng, DIRECTION_WORDS, edit["dir"], lang)
    if "texture" in edit:
        out["texture"] = _pick(rng, TEXTURE_WORDS, edit["texture"], lang)
    if "style" in edit:
        out["style"] = _pick(rng, STYLE_NOUNS, edit["style"], lang)
        out["style_adj"] = rng.choice(STYLE_ADJECTIVES[edit["style"]])
    if "old" in edit:
        out["old"], out["new_letter"] = edit["old"], edit["new_letter"]
        out["a_new"] = f"{'an' if edit['new_letter'] in AN_LETTERS else 'a'} {edit['new_letter']}"
    return out


def template_fields(edit: dict, lang: str) -> dict[str, str]:
    """The world's canonical fields (no synonyms), for its fixed TEMPLATES."""
    from model.nano.world import STYLE_WORDS, ZH
    from model.nano.world import TEXTURE_WORDS as WORLD_TEXTURE

    def w(word: str) -> str:
        return ZH[word] if lang == "zh" else word

    def named(obj: dict, article: str) -> str:
        noun = obj["kind"] if obj["kind"] != "letter" else f"letter {obj['letter']}"
        if lang == "zh":
            noun = f"字母{obj['letter']}" if obj["kind"] == "letter" else ZH[obj["kind"]]
            return f"{'一个' if article else ''}{ZH[obj['color']]}的{noun}"
        art = article or "the"
        if article:
            art = "an" if obj["color"] == "orange" else "a"
        return f"{art} {obj['color']} {noun}"

    out: dict[str, str] = {}
    if "obj" in edit:
        out["obj"] = named(edit["obj"], "")
    if "new" in edit:
        out["new"] = named(edit["new"], "a")
    for key in ("pos", "color", "bg", "dir"):
        if key in edit:
            out[key] = w(edit[key])
    if "texture" in edit:
        out["texture"] = WORLD_TEXTURE[edit["texture"]][lang == "zh"]
    if "style" in edit:
        out["style"] = STYLE_WORDS[edit["style"]][lang == "zh"]
    if "old" in edit:
        out["old"], out["new_letter"] = edit["old"], edit["new_letter"]
    return out


def frames(category: str, edit: dict, lang: str, which: str) -> tuple[str, ...]:
    """The sentence frames of one set ("train" / "heldout") for an edit (value-specific ones included)."""
    own = FRAMES.get(category, {}).get(lang, {}).get(which, ())
    value_key = VALUE_KEYS.get(category)
    extra = VALUE_FRAMES.get((category, edit.get(value_key, "")), {}).get(lang, {}).get(which, ())
    if which == _T and category != "tone":
        own = TEMPLATES[category][lang] + own
    return own + extra


def fill(frame: str, edit: dict, lang: str, rng: random.Random, canonical: bool = False) -> str:
    """A frame filled in for an edit: random synonyms, or the world's canonical words (`canonical`)."""
    text = frame.format(**(template_fields(edit, lang) if canonical else _fields(edit, lang, rng)))
    if lang == "en" and not canonical and "colour" in text and rng.random() < 0.5:
        text = text.replace("colour", "color")
    return text


def template_instruction(category: str, edit: dict, lang: str, rng: random.Random) -> str:
    """One of the world's fixed templates, with the canonical words (what the old model was trained on)."""
    if category == "tone":
        return rng.choice(TONE_PHRASES[edit["tone"]][lang])
    return fill(rng.choice(TEMPLATES[category][lang]), edit, lang, rng, canonical=True)


# Statements ("the X should be blue", "i want ...") read wrong inside "could you ...?" or "please ...".
_STATEMENT_STARTS = ("{", "i ", "i'd ", "the ", "there ", "背景", "字母", "图片", "颜色", "我")


def framed(
    category: str,
    edit: dict,
    lang: str,
    rng: random.Random,
    which: str = _T,
    imperative: bool = False,
    unknown_words: int = 0,
) -> str:
    """The bare instruction from a random frame of set `which`, with random synonyms; `imperative` keeps
    to frames that can be wrapped in "please ..." or "could you ...?"; `unknown_words` inserts that many
    words the grammar never uses (see `insert_unknown_words`)."""
    options = frames(category, edit, lang, which)
    if imperative:
        options = tuple(f for f in options if not f.startswith(_STATEMENT_STARTS)) or options
    frame = insert_unknown_words(rng.choice(options), lang, rng, unknown_words)
    return fill(frame, edit, lang, rng, canonical=False)


# ---------------------------------------------------------------- unknown words

# Everyday English fillers that no frame, wrapper or vocabulary list uses.
EN_FILLERS = ("just", "now", "also", "maybe", "quickly", "simply", "actually", "then", "here", "really")


def _grammar_texts() -> list[str]:
    """Every string of the grammar, held-out frames and the world's templates included."""
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, (tuple, list)):
            for value in node:
                walk(value)

    tables = (FRAMES, VALUE_FRAMES, TEMPLATES, TONE_PHRASES, POLITE, QUESTIONS, COLOR_WORDS, SHAPE_WORDS)
    tables += (POSITION_WORDS, DIRECTION_WORDS, TEXTURE_WORDS, STYLE_NOUNS, STYLE_ADJECTIVES)
    for table in tables:
        walk(table)
    return [re.sub(r"\{\w+\}", " ", text) for text in texts]


@functools.cache
def _known() -> tuple[frozenset[str], frozenset[str]]:
    """(English words, Chinese characters) that the grammar uses anywhere."""
    texts = _grammar_texts()
    words = {w for text in texts for w in re.findall(r"[a-z']+", text.lower())}
    chars = {ch for text in texts for ch in text if "\u4e00" <= ch <= "\u9fff"}
    return frozenset(words), frozenset(chars)


def unknown_word(lang: str, rng: random.Random) -> str:
    """A word the grammar never uses: an English filler or made-up word, or 1-2 random CJK characters.

    Nothing of a held-out frame is ever drawn (the grammar's own words are excluded), so the held-out
    evaluation still meets those words for the first time.
    """
    words, chars = _known()
    if lang == "zh":
        picked = ""
        while len(picked) < rng.randint(1, 2):
            ch = chr(rng.randint(0x4E00, 0x9FA5))
            if ch not in chars:
                picked += ch
        return picked
    if rng.random() < 0.3:
        return rng.choice(EN_FILLERS)
    while True:
        made_up = "".join(
            rng.choice("bcdfghjklmnprstvwz" if k % 2 == 0 else "aeiou") for k in range(rng.randint(4, 7))
        )
        if made_up not in words:
            return made_up


def insert_unknown_words(frame: str, lang: str, rng: random.Random, count: int) -> str:
    """`count` unknown words at random places of a frame, never inside a field; in English never inside a
    word, in Chinese (written without spaces) between any two characters.

    Training with them teaches the model that an unfamiliar word carries no edit: a held-out frame like
    "{obj}需要变成{color}" then reads as its familiar words, not as noise that steers the edit elsewhere.
    Chinese needs the inner places too: an extra character inside a phrase ("改X成") is how Chinese
    says many things in other words, and a model trained only on unknown words next to the fields
    failed every "改写成".
    """
    for _ in range(count):
        fields = [m.span() for m in re.finditer(r"\{\w+\}", frame)]
        if lang == "en":
            cuts = {0, len(frame)} | {m.start() for m in re.finditer(" ", frame)}
            cuts |= {edge for span in fields for edge in span}
        else:
            cuts = {i for i in range(len(frame) + 1) if not any(a < i < b for a, b in fields)}
        at = rng.choice(sorted(cuts))
        word = unknown_word(lang, rng)
        frame = frame[:at] + (f" {word} " if lang == "en" else word) + frame[at:]
    return " ".join(frame.split()) if lang == "en" else frame


def wrap(text: str, lang: str, rng: random.Random, kind: str) -> str:
    """Polite or question wrapper around a bare instruction."""
    table = POLITE if kind == "polite" else QUESTIONS
    return rng.choice(table[lang]).format(x=text)


# ---------------------------------------------------------------- typos

_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours(char: str) -> str:
    for r, row in enumerate(_KEYBOARD):
        c = row.find(char)
        if c >= 0:
            near = row[max(0, c - 1) : c + 2].replace(char, "")
            for other in (r - 1, r + 1):
                if 0 <= other < len(_KEYBOARD):
                    near += _KEYBOARD[other][max(0, c - 1) : c + 1]
            return near
    return string.ascii_lowercase


def add_typo(text: str, rng: random.Random) -> str:
    """One typing mistake (swap, drop, double or a neighbouring key) inside a word of 4+ letters.

    Short words are spared: a letter name ("a", "k") or "up" changed by a typo names a different edit.
    """
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if sum(ch.isascii() and ch.isalpha() for ch in w) >= 4]
    if not candidates:
        return text
    i = rng.choice(candidates)
    word = words[i]
    letters = [k for k, ch in enumerate(word) if ch.isascii() and ch.isalpha()]
    k = rng.choice(letters[1:])  # people rarely mistype the first letter
    kind = rng.randrange(4)
    if kind == 0 and k + 1 < len(word) and word[k + 1].isalpha():
        word = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    elif kind == 1:
        word = word[:k] + word[k + 1 :]
    elif kind == 2:
        word = word[:k] + word[k] + word[k:]
    else:
        word = word[:k] + rng.choice(_neighbours(word[k].lower())) + word[k + 1 :]
    words[i] = word
    return " ".join(words)


# ---------------------------------------------------------------- the public entry points


def variant_instruction(category: str, edit: dict, lang: str, variant: str, rng: random.Random) -> str:
    """The instruction of one evaluation variant (see VARIANTS)."""
    if variant == "templates":
        return template_instruction(category, edit, lang, rng)
    if variant == "heldout_frames":
        return framed(category, edit, lang, rng, _H)
    text = framed(category, edit, lang, rng, _T, imperative=variant in ("polite", "question"))
    if variant == "frames":
        return text
    if variant == "typo":
        return add_typo(text, rng)
    if variant == "capitalised":
        return text[:1].upper() + text[1:]
    if variant == "all_caps":
        return text.upper()
    if variant in ("polite", "question"):
        return wrap(text, lang, rng, variant)
    raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def training_instruction(
    category: str,
    edit: dict,
    rng: random.Random,
    zh_fraction: float = 0.35,
    typo_prob: float = 0.3,
    unknown_prob: float = 0.0,
) -> tuple[str, str]:
    """A fresh (instruction, language) for one training draw: any training frame, synonyms, sometimes a
    wrapper, end punctuation, unknown words (each further one with probability `unknown_prob`, at most 3),
    typos (English) and random capitals. Never a held-out frame."""
    lang = "zh" if rng.random() < zh_fraction else "en"
    roll = rng.random()
    unknown = 0
    while unknown < 3 and rng.random() < unknown_prob:
        unknown += 1
    text = framed(category, edit, lang, rng, _T, imperative=roll < 0.4, unknown_words=unknown)
    if roll < 0.25:
        text = wrap(text, lang, rng, "polite")
    elif roll < 0.4:
        text = wrap(text, lang, rng, "question")
    elif roll < 0.6:
        text += rng.choice(PUNCTUATION[lang])
    if lang == "en":
        while rng.random() < typo_prob:
            text = add_typo(text, rng)
        if rng.random() < 0.2:
            text = text.upper() if rng.random() < 0.3 else text[:1].upper() + text[1:]
    return text, lang


def heldout_frame_list() -> list[str]:
    """Every held-out sentence frame, as "category/lang: frame" lines (for the model card and docs)."""
    lines = []
    for category, by_lang in FRAMES.items():
        for lang, sets in by_lang.items():
            lines += [f"{category}/{lang}: {frame}" for frame in sets[_H]]
    for (category, value), by_lang in VALUE_FRAMES.items():
        for lang, sets in by_lang.items():
            lines += [f"{category}/{lang} ({value}): {frame}" for frame in sets[_H]]
    return lines
