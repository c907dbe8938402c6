"""A small synthetic world that produces (source, instruction, target) edit triplets.

The world is a 2x2 grid of cells on a plain background. Each cell holds at most one object: a circle,
square or triangle (filled or outline, solid or striped) or a letter rendered with the bundled DejaVu
font. Objects in one scene always have distinct colours, so "the red circle" names exactly one object.
Every edit category of the Step1X-Edit paper that such a world can express is generated, with several
English and Chinese phrasings. Generation is deterministic in (seed, index).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path(__file__).resolve().parents[2] / "assets" / "fonts" / "DejaVuSans-Bold.ttf"

GRID = 2  # cells per side
SUPERSAMPLE = 4  # drawn at 4x and box-downsampled, for anti-aliased edges

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 190),
    "orange": (245, 130, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (170, 170, 170),
    "beige": (235, 220, 185),
    "light blue": (185, 215, 245),
}
SHAPES = ("circle", "square", "triangle")
LETTERS = ("A", "B", "E", "K", "S", "X")
SLOT_NAMES = ("top left", "top right", "bottom left", "bottom right")
TONES = ("grayscale", "invert")
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}

CATEGORIES = (
    "add",
    "remove",
    "replace",
    "color",
    "texture",
    "background",
    "text",
    "move",
    "tone",
    "style",
)
LANGUAGES = ("en", "zh")
# Categories whose edit touches only some cells; the rest are global (every pixel may change).
GLOBAL_CATEGORIES = frozenset({"background", "tone"})

ZH = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "orange": "橙色",
    "white": "白色",
    "gray": "灰色",
    "beige": "米色",
    "light blue": "浅蓝色",
    "circle": "圆形",
    "square": "正方形",
    "triangle": "三角形",
    "top left": "左上角",
    "top right": "右上角",
    "bottom left": "左下角",
    "bottom right": "右下角",
    "left": "左",
    "right": "右",
    "up": "上",
    "down": "下",
}


@dataclass(frozen=True)
class Obj:
    """One object in a cell."""

    kind: str  # a SHAPES entry or "letter"
    color: str
    letter: str = ""
    outline: bool = False
    striped: bool = False


@dataclass(frozen=True)
class Scene:
    """A full scene: background colour, objects by slot (0..3, row-major), global tone."""

    background: str
    objects: tuple[Obj | None, ...]
    tone: str = "none"

    def used_colors(self) -> set[str]:
        return {o.color for o in self.objects if o is not None}

    def letters(self) -> set[str]:
        return {o.letter for o in self.objects if o is not None and o.kind == "letter"}


@dataclass
class Triplet:
    """One edit example. `slots` lists the cells the edit changes (all cells for global edits)."""

    source: Image.Image
    target: Image.Image
    instruction: str
    language: str
    category: str
    slots: tuple[int, ...]
    source_scene: Scene
    target_scene: Scene
    spec: dict = field(default_factory=dict)
    key: str = ""
    edit: dict = field(default_factory=dict)  # language-free description (model/nano/grammar.py phrases it)


# ---------------------------------------------------------------- rendering


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), px)


def _shape_mask(kind: str, cell: int, letter: str, outline: bool) -> Image.Image:
    """A white-on-black mask of one object, `cell` pixels square (supersampled)."""
    mask = Image.new("L", (cell, cell), 0)
    draw = ImageDraw.Draw(mask)
    m = cell // 6
    box = (m, m, cell - 1 - m, cell - 1 - m)
    width = max(1, cell // 7) if outline else 0
    if kind == "circle":
        draw.ellipse(box, fill=None if outline else 255, outline=255, width=width or 1)
    elif kind == "square":
        draw.rectangle(box, fill=None if outline else 255, outline=255, width=width or 1)
    elif kind == "triangle":
        pts = [(cell // 2, m), (cell - 1 - m, cell - 1 - m), (m, cell - 1 - m)]
        if outline:
            draw.line([*pts, pts[0]], fill=255, width=width, joint="curve")
        else:
            draw.polygon(pts, fill=255)
    elif kind == "letter":
        font = _font(int(cell * 0.8))
        left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
        x = (cell - (right - left)) / 2 - left
        y = (cell - (bottom - top)) / 2 - top
        draw.text((x, y), letter, fill=255, font=font)
    else:
        raise ValueError(f"unknown object kind {kind!r}")
    return mask


def render(scene: Scene, size: int = 32) -> Image.Image:
    """Render a scene to an RGB image of `size` x `size` pixels."""
    if size % GRID:
        raise ValueError(f"size must be a multiple of {GRID}, got {size}")
    big = size * SUPERSAMPLE
    cell = big // GRID
    canvas = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    stripe_period = 4 * SUPERSAMPLE
    for slot, obj in enumerate(scene.objects):
        if obj is None:
            continue
        row, col = divmod(slot, GRID)
        mask = _shape_mask(obj.kind, cell, obj.letter, obj.outline)
        fill = Image.new("RGB", (cell, cell), COLORS[obj.color])
        if obj.striped:
            light = tuple((c + 255) // 2 for c in COLORS[obj.color])
            stripes = ImageDraw.Draw(fill)
            for y in range(stripe_period // 2, cell, stripe_period):
                stripes.rectangle((0, y, cell, y + stripe_period // 2 - 1), fill=light)
        canvas.paste(fill, (col * cell, row * cell), mask)
    image = canvas.resize((size, size), Image.Resampling.BOX)
    return apply_tone(image, scene.tone)


def apply_tone(image: Image.Image, tone: str) -> Image.Image:
    """Apply a global tone transform ("none", "grayscale", "invert")."""
    if tone == "none":
        return image
    arr = np.asarray(image, dtype=np.float32)
    if tone == "grayscale":
        lum = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        arr = np.repeat(lum[..., None], 3, axis=2)
    elif tone == "invert":
        arr = 255.0 - arr
    else:
        raise ValueError(f"unknown tone {tone!r}")
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def cell_box(slot: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) pixel bounds of a cell."""
    cell = size // GRID
    row, col = divmod(slot, GRID)
    return row * cell, col * cell, (row + 1) * cell, (col + 1) * cell


# ---------------------------------------------------------------- naming and phrasing


def name(obj: Obj, lang: str) -> str:
    """The noun phrase naming an object, e.g. "the red circle" / "红色的圆形"."""
    if lang == "zh":
        noun = f"字母{obj.letter}" if obj.kind == "letter" else ZH[obj.kind]
        return f"{ZH[obj.color]}的{noun}"
    noun = f"letter {obj.letter}" if obj.kind == "letter" else obj.kind
    return f"the {obj.color} {noun}"


def _indefinite(obj: Obj, lang: str) -> str:
    if lang == "zh":
        noun = f"字母{obj.letter}" if obj.kind == "letter" else ZH[obj.kind]
        return f"一个{ZH[obj.color]}的{noun}"
    noun = f"letter {obj.letter}" if obj.kind == "letter" else obj.kind
    return f"{'an' if obj.color == 'orange' else 'a'} {obj.color} {noun}"


def _w(word: str, lang: str) -> str:
    return ZH[word] if lang == "zh" else word


# Templates take keyword arguments; every category has several phrasings per language.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "add": {
        "en": ("add {new} in the {pos}", "put {new} at the {pos}", "draw {new} in the {pos} corner"),
        "zh": ("在{pos}添加{new}", "在{pos}画{new}", "往{pos}放{new}"),
    },
    "remove": {
        "en": ("remove {obj}", "delete {obj}", "erase {obj} from the picture", "take away {obj}"),
        "zh": ("移除{obj}", "删除{obj}", "把{obj}去掉"),
    },
    "replace": {
        "en": ("replace {obj} with {new}", "swap {obj} for {new}", "turn {obj} into {new}"),
        "zh": ("把{obj}换成{new}", "用{new}替换{obj}", "将{obj}替换为{new}"),
    },
    "color": {
        "en": (
            "make {obj} {color}",
            "change the colour of {obj} to {color}",
            "paint {obj} {color}",
            "recolor {obj} {color}",
        ),
        "zh": ("把{obj}变成{color}", "将{obj}的颜色改为{color}", "把{obj}涂成{color}"),
    },
    "texture": {
        "en": (
            "give {obj} a {texture} texture",
            "make {obj} {texture}",
            "change {obj} to a {texture} pattern",
        ),
        "zh": ("让{obj}变成{texture}", "把{obj}改成{texture}纹理", "给{obj}换成{texture}图案"),
    },
    "background": {
        "en": ("change the background to {bg}", "make the background {bg}", "set a {bg} background"),
        "zh": ("把背景换成{bg}", "将背景改为{bg}", "背景变成{bg}"),
    },
    "text": {
        "en": (
            "change the letter {old} to {new_letter}",
            'replace the text "{old}" with "{new_letter}"',
            "write {new_letter} instead of {old}",
        ),
        "zh": (
            "把字母{old}改成{new_letter}",
            '将文字"{old}"替换为"{new_letter}"',
            "把{old}换成字母{new_letter}",
        ),
    },
    "move": {
        "en": ("move {obj} {dir}", "shift {obj} one cell {dir}", "slide {obj} {dir}"),
        "zh": ("把{obj}向{dir}移动", "将{obj}往{dir}移一格", "让{obj}向{dir}挪动"),
    },
    "tone": {
        "en": ("{tone_en}",),
        "zh": ("{tone_zh}",),
    },
    "style": {
        "en": ("draw {obj} as {style}", "make {obj} {style}", "render {obj} as {style}"),
        "zh": ("把{obj}画成{style}", "让{obj}变成{style}", "将{obj}改为{style}"),
    },
}
TONE_PHRASES = {
    "grayscale": {
        "en": ("make the picture black and white", "convert the image to grayscale", "remove all colour"),
        "zh": ("把图片变成黑白", "将图像转换为灰度", "去掉所有颜色"),
    },
    "invert": {
        "en": ("invert the colours", "make a colour negative of the image", "invert the image"),
        "zh": ("反转颜色", "把图片变成负片", "将图像颜色反相"),
    },
}
TEXTURE_WORDS = {"striped": ("striped", "条纹"), "plain": ("plain", "纯色")}
STYLE_WORDS = {"outline": ("an outline", "空心轮廓"), "filled": ("a filled shape", "实心图形")}
DIRECTION_WORDS_EN = {"left": "left", "right": "right", "up": "up", "down": "down"}


# ---------------------------------------------------------------- scene and edit sampling


def random_object(
    rng: random.Random,
    exclude_colors: set[str],
    allow_letter: bool = True,
    exclude_letters: set[str] = frozenset(),
) -> Obj:
    """A random object whose colour is not in `exclude_colors` (and letter, if any, not in `exclude_letters`)."""
    color = rng.choice([c for c in COLORS if c not in exclude_colors])
    kinds = SHAPES + (("letter",) if allow_letter else ())
    kind = rng.choice(kinds)
    if kind == "letter":
        return Obj("letter", color, letter=rng.choice([x for x in LETTERS if x not in exclude_letters]))
    return Obj(kind, color, outline=rng.random() < 0.25, striped=rng.random() < 0.25)


def random_scene(rng: random.Random, n_min: int = 1, n_max: int = 3) -> Scene:
    """A random scene with n_min..n_max objects in distinct colours."""
    n = rng.randint(n_min, n_max)
    slots = rng.sample(range(GRID * GRID), n)
    objects: list[Obj | None] = [None] * (GRID * GRID)
    used: set[str] = set()
    letters: set[str] = set()  # letters are unique too, so "the letter A" names one object
    for slot in slots:
        obj = random_object(rng, used, exclude_letters=letters)
        used.add(obj.color)
        letters.add(obj.letter)
        objects[slot] = obj
    return Scene(rng.choice(list(BACKGROUNDS)), tuple(objects))


def _with(scene: Scene, slot: int, obj: Obj | None) -> Scene:
    objects = list(scene.objects)
    objects[slot] = obj
    return replace(scene, objects=tuple(objects))


def _occupied(scene: Scene, pred=lambda o: True) -> list[int]:
    return [i for i, o in enumerate(scene.objects) if o is not None and pred(o)]


def _neighbour(slot: int, direction: str) -> int | None:
    row, col = divmod(slot, GRID)
    dr, dc = DIRECTIONS[direction]
    r, c = row + dr, col + dc
    if 0 <= r < GRID and 0 <= c < GRID:
        return r * GRID + c
    return None


def obj_dict(obj: Obj) -> dict:
    """What a phrase needs to name an object (JSON-serialisable)."""
    return {"kind": obj.kind, "color": obj.color, "letter": obj.letter}


def _plan_edit(
    category: str, scene: Scene, rng: random.Random, lang: str
) -> tuple[Scene, tuple[int, ...], dict, dict] | None:
    """Choose an edit of `category` for `scene`.

    Returns (target scene, changed slots, template fields in `lang`, language-free edit description).
    """
    empty = [i for i, o in enumerate(scene.objects) if o is None]
    if category == "add":
        if not empty:
            return None
        slot = rng.choice(empty)
        new = random_object(rng, scene.used_colors(), allow_letter=False)
        new = replace(new, outline=False, striped=False)
        fields = {"new": _indefinite(new, lang), "pos": _w(SLOT_NAMES[slot], lang)}
        return _with(scene, slot, new), (slot,), fields, {"new": obj_dict(new), "pos": SLOT_NAMES[slot]}
    if category == "remove":
        slots = _occupied(scene)
        slot = rng.choice(slots)
        old = scene.objects[slot]
        return _with(scene, slot, None), (slot,), {"obj": name(old, lang)}, {"obj": obj_dict(old)}
    if category == "replace":
        slot = rng.choice(_occupied(scene))
        old = scene.objects[slot]
        new = random_object(rng, scene.used_colors(), allow_letter=False)
        new = replace(
            new, kind=rng.choice([k for k in SHAPES if k != old.kind]), outline=False, striped=False
        )
        fields = {"obj": name(old, lang), "new": _indefinite(new, lang)}
        return _with(scene, slot, new), (slot,), fields, {"obj": obj_dict(old), "new": obj_dict(new)}
    if category == "color":
        slot = rng.choice(_occupied(scene))
        old = scene.objects[slot]
        color = rng.choice([c for c in COLORS if c not in scene.used_colors()])
        return (
            _with(scene, slot, replace(old, color=color)),
            (slot,),
            {"obj": name(old, lang), "color": _w(color, lang)},
            {"obj": obj_dict(old), "color": color},
        )
    if category in ("texture", "style"):
        slots = _occupied(scene, lambda o: o.kind != "letter")
        if not slots:
            return None
        slot = rng.choice(slots)
        old = scene.objects[slot]
        if category == "texture":
            new, word = replace(old, striped=not old.striped), ("plain" if old.striped else "striped")
            fields = {"obj": name(old, lang), "texture": TEXTURE_WORDS[word][lang == "zh"]}
            return _with(scene, slot, new), (slot,), fields, {"obj": obj_dict(old), "texture": word}
        new, word = replace(old, outline=not old.outline), ("filled" if old.outline else "outline")
        return (
            _with(scene, slot, new),
            (slot,),
            {"obj": name(old, lang), "style": STYLE_WORDS[word][lang == "zh"]},
            {"obj": obj_dict(old), "style": word},
        )
    if category == "background":
        bg = rng.choice([b for b in BACKGROUNDS if b != scene.background])
        return replace(scene, background=bg), tuple(range(GRID * GRID)), {"bg": _w(bg, lang)}, {"bg": bg}
    if category == "text":
        slots = _occupied(scene, lambda o: o.kind == "letter")
        if not slots:
            return None
        slot = rng.choice(slots)
        old = scene.objects[slot]
        letter = rng.choice([x for x in LETTERS if x not in scene.letters()])
        return (
            _with(scene, slot, replace(old, letter=letter)),
            (slot,),
            {"old": old.letter, "new_letter": letter},
            {"old": old.letter, "new_letter": letter},
        )
    if category == "move":
        moves = [
            (s, d, n)
            for s in _occupied(scene)
            for d in DIRECTIONS
            if (n := _neighbour(s, d)) is not None and scene.objects[n] is None
        ]
        if not moves:
            return None
        slot, direction, dest = rng.choice(moves)
        obj = scene.objects[slot]
        target = _with(_with(scene, slot, None), dest, obj)
        fields = {"obj": name(obj, lang), "dir": _w(direction, lang)}
        return target, tuple(sorted((slot, dest))), fields, {"obj": obj_dict(obj), "dir": direction}
    if category == "tone":
        tone = rng.choice(TONES)
        phrases = TONE_PHRASES[tone]
        fields = {"tone_en": rng.choice(phrases["en"]), "tone_zh": rng.choice(phrases["zh"])}
        return replace(scene, tone=tone), tuple(range(GRID * GRID)), fields, {"tone": tone}
    raise ValueError(f"unknown category {category!r}")


def _scene_for(category: str, rng: random.Random) -> Scene:
    """A random scene on which `category` is possible (e.g. "text" needs a letter)."""
    scene = random_scene(rng)
    if category == "text" and not _occupied(scene, lambda o: o.kind == "letter"):
        slot = rng.choice(range(GRID * GRID))
        others = {o.color for i, o in enumerate(scene.objects) if o is not None and i != slot}
        color = rng.choice([c for c in COLORS if c not in others])
        scene = _with(scene, slot, Obj("letter", color, letter=rng.choice(LETTERS)))  # the only letter
    if category in ("texture", "style") and not _occupied(scene, lambda o: o.kind != "letter"):
        slot = _occupied(scene)[0]
        scene = _with(
            scene, slot, random_object(rng, scene.used_colors() - {scene.objects[slot].color}, False)
        )
    if category == "add" and all(o is not None for o in scene.objects):
        scene = _with(scene, rng.choice(range(GRID * GRID)), None)
    return scene


def edit_key(scene: Scene, category: str, edit: dict) -> str:
    """The identity of an edit, whatever its wording: training rephrases instructions, so the train / eval
    split must not depend on the words."""
    return f"{scene!r}|{category}|{json.dumps(edit, sort_keys=True)}"


def split_of(key: str) -> str:
    """ "eval" for one in ten edit keys, else "train": held-out edits never train, in any wording."""
    return "eval" if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10 == 0 else "train"


def make_triplet(
    seed: int,
    index: int,
    *,
    categories: tuple[str, ...] = CATEGORIES,
    zh_fraction: float = 0.3,
    size: int = 32,
    split: str | None = None,
) -> Triplet:
    """The deterministic triplet number `index` of stream `seed`.

    With `split` ("train"/"eval") set, draws are repeated (deterministically) until the triplet's
    edit key (source scene + language-free edit) falls in that split, so the two splits never share an edit.
    """
    for attempt in range(1000):
        rng = random.Random(f"{seed}:{index}:{attempt}")
        category = categories[rng.randrange(len(categories))]
        lang = "zh" if rng.random() < zh_fraction else "en"
        scene = _scene_for(category, rng)
        plan = _plan_edit(category, scene, rng, lang)
        if plan is None:
            continue
        target_scene, slots, fields, edit = plan
        instruction = rng.choice(TEMPLATES[category][lang]).format(**fields)
        key = edit_key(scene, category, edit)
        if split is not None and split_of(key) != split:
            continue
        return Triplet(
            source=render(scene, size),
            target=render(target_scene, size),
            instruction=instruction,
            language=lang,
            category=category,
            slots=slots,
            source_scene=scene,
            target_scene=target_scene,
            spec=fields,
            key=key,
            edit=edit,
        )
    raise RuntimeError(f"could not draw a {split or 'any'} triplet for seed {seed} index {index}")


def alternative_targets(scene: Scene, category: str) -> list[Scene]:
    """Every target scene one edit of `category` can make from `scene` (the requested one among them).

    The success check asks which of these an output looks like: a text edit must show the requested
    letter rather than any other, a move the requested cell rather than another one, and so on.
    """
    used = scene.used_colors()
    free_colors = [c for c in COLORS if c not in used]
    shapes = _occupied(scene, lambda o: o.kind != "letter")
    out: list[Scene] = []
    if category == "add":
        for slot in (i for i, o in enumerate(scene.objects) if o is None):
            out += [_with(scene, slot, Obj(k, c)) for k in SHAPES for c in free_colors]
    elif category == "remove":
        out = [_with(scene, slot, None) for slot in _occupied(scene)]
    elif category == "replace":
        for slot in _occupied(scene):
            kinds = [k for k in SHAPES if k != scene.objects[slot].kind]
            out += [_with(scene, slot, Obj(k, c)) for k in kinds for c in free_colors]
    elif category == "color":
        for slot in _occupied(scene):
            out += [_with(scene, slot, replace(scene.objects[slot], color=c)) for c in free_colors]
    elif category == "texture":
        out = [
            _with(scene, s, replace(scene.objects[s], striped=not scene.objects[s].striped)) for s in shapes
        ]
    elif category == "style":
        out = [
            _with(scene, s, replace(scene.objects[s], outline=not scene.objects[s].outline)) for s in shapes
        ]
    elif category == "background":
        out = [replace(scene, background=b) for b in BACKGROUNDS if b != scene.background]
    elif category == "text":
        free_letters = [x for x in LETTERS if x not in scene.letters()]
        for slot in _occupied(scene, lambda o: o.kind == "letter"):
            out += [_with(scene, slot, replace(scene.objects[slot], letter=x)) for x in free_letters]
    elif category == "move":
        for slot in _occupied(scene):
            for direction in DIRECTIONS:
                dest = _neighbour(slot, direction)
                if dest is not None and scene.objects[dest] is None:
                    out.append(_with(_with(scene, slot, None), dest, scene.objects[slot]))
    elif category == "tone":
        out = [replace(scene, tone=t) for t in TONES]
    else:
        raise ValueError(f"unknown category {category!r}")
    return out
