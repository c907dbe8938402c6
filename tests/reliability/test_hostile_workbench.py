"""Hostile images and instructions through the Workbench facade: a clear error or a correct result, and a
refused input leaves every table exactly as it was (nothing half-imported)."""

from __future__ import annotations

from pathlib import Path

import pytest
from make_hostile import Case, as_displayed, mismatches  # registered by conftest.load_by_path
from PIL import Image

from db.backup import table_counts

GOOD = Image.new("RGB", (64, 48), (120, 160, 90))
OUTPUTS = {
    "sys-one": Image.new("RGB", (64, 48), (10, 200, 10)),
    "sys-two": Image.new("RGB", (64, 48), (200, 10, 10)),
}


def _study(workbench) -> int:
    study = workbench.create_study("hostile", kind="preference", k=1)
    workbench.add_rater("r1")
    return study


def _shown(workbench, study: int) -> dict:
    imp = workbench.next_item(study, "r1")
    assert imp is not None, "the item that was accepted is not served"
    return imp


def _refused_cleanly(workbench, action, before: dict[str, int], url: str, name: str) -> None:
    with pytest.raises((ValueError, LookupError)) as err:  # bad input, or an unknown rater/study
        action()
    assert len(str(err.value)) >= 10, f"{name}: unclear error {err.value!r}"
    assert table_counts(url) == before, f"{name}: a refused input changed the database"


@pytest.mark.parametrize("role", ["source", "output"])
def test_hostile_image_in_add_item(
    workbench, db_url: str, hostile_dir: Path, image_case: Case, role: str
) -> None:
    study = _study(workbench)
    path = hostile_dir / image_case.path
    source = path if role == "source" else GOOD
    outputs = {**OUTPUTS, "sys-one": path} if role == "output" else OUTPUTS
    before = table_counts(db_url)
    try:
        workbench.add_item(study, source, "make it brighter", outputs=outputs)
    except ValueError as exc:
        assert image_case.expect != "ok", f"{image_case.name}: a valid image was refused: {exc}"
        assert table_counts(db_url) == before, f"{image_case.name}: refused, but rows were written"
        return
    assert image_case.expect != "error", f"{image_case.name}: a hostile file was accepted"
    imp = _shown(workbench, study)
    sides = [imp["source_path"]] if role == "source" else [imp["left_path"], imp["right_path"]]
    # The hostile output is on one side (which one is random); the other is a plain control image.
    problems = [mismatches(as_displayed(p), image_case.check) for p in sides]
    assert [] in problems, f"{image_case.name}: not shown correctly: {problems}"


def test_hostile_instruction(workbench, db_url: str, instruction_case: Case) -> None:
    study = _study(workbench)
    before = table_counts(db_url)
    name, text = instruction_case.name, instruction_case.text
    if instruction_case.expect == "error":
        _refused_cleanly(
            workbench, lambda: workbench.add_item(study, GOOD, text, outputs=OUTPUTS), before, db_url, name
        )
        return
    try:
        workbench.add_item(study, GOOD, text, outputs=OUTPUTS)
    except ValueError as exc:
        assert instruction_case.expect == "either", f"{name}: refused a valid instruction: {exc}"
        assert len(str(exc)) >= 10 and table_counts(db_url) == before
        return
    assert _shown(workbench, study)["instruction"] == text, f"{name}: the instruction was not kept verbatim"


def test_unknown_rater_and_study_are_refused(workbench, db_url: str) -> None:
    study = _study(workbench)
    workbench.add_item(study, GOOD, "make it brighter", outputs=OUTPUTS)
    before = table_counts(db_url)
    _refused_cleanly(workbench, lambda: workbench.next_item(study, "nobody"), before, db_url, "unknown rater")
    _refused_cleanly(
        workbench, lambda: workbench.next_item(study + 999, "r1"), before, db_url, "unknown study"
    )


def test_vote_comment_with_nul_is_refused_on_every_backend(workbench, db_url: str) -> None:
    """PostgreSQL cannot store NUL in text; SQLite can. Both must refuse it the same clear way."""
    study = _study(workbench)
    workbench.add_item(study, GOOD, "make it brighter", outputs=OUTPUTS)
    imp = _shown(workbench, study)
    before = table_counts(db_url)

    def vote() -> dict:
        return workbench.submit_vote(imp["impression_id"], "r1", "A", idempotency_key="k1", comment="a\x00b")

    _refused_cleanly(workbench, vote, before, db_url, "NUL in comment")
    assert workbench.submit_vote(
        imp["impression_id"], "r1", "A", idempotency_key="k1", comment="<b>ok</b> 🎩"
    )["stored"]
