"""GEdit-Bench evaluation: run an editor over the benchmark, judge with VIEScore, aggregate like the paper.

Modules (one concern each): ``dataset`` (read/generate the bench), ``run`` (editor over the bench),
``judge`` (local VIEScore judge + cache), ``parse`` (strict judge-reply parsing), ``stats`` (official
aggregation, coverage, bootstrap, paired comparison), ``human`` (workbench study import, human vs judge),
``cli`` (``python -m workbench bench ...``).
"""

import re

# The 11 category ids exactly as the dataset and the official scripts spell them (mixed '-' and '_').
TASK_TYPES: tuple[str, ...] = (
    "background_change",
    "color_alter",
    "material_alter",
    "motion_change",
    "ps_human",
    "style_change",
    "subject-add",
    "subject-remove",
    "subject-replace",
    "text_change",
    "tone_transfer",
)
# The dataset's language codes ("cn", not "zh").
LANGUAGES: tuple[str, ...] = ("en", "cn")


def safe_name(text: str) -> str:
    """A model/judge label usable as one folder name ("tiny-random (untrained)" -> "tiny-random_untrained")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"
