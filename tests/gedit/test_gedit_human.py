"""Import a bench run (three models) as a preference study, vote through the workbench, correlate with the
judge: per system, per task type and from raters' scores."""

from pathlib import Path

import pandas as pd
import pytest

from workbench.gedit.dataset import filter_samples
from workbench.gedit.human import correlate, human_vs_judge, import_study
from workbench.gedit.judge import find_output
from workbench.gedit.run import RunSettings, run_bench
from workbench.gedit.stats import CANONICAL

# The judge's SC per system: beta > alpha > gamma (not alphabetical, so human outcomes vary in sign).
MODELS = {"alpha": 6.0, "beta": 9.0, "gamma": 3.0}


def judge_table(model: str, samples, sc: float) -> pd.DataFrame:
    rows = [(model, "j", s.task_type, s.key, s.language, s.intersection, sc, 8.0, "ok") for s in samples]
    return pd.DataFrame(rows, columns=CANONICAL)


@pytest.fixture
def workbench(tmp_path):
    from workbench.service import Workbench

    wb = Workbench(db_url=f"sqlite:///{tmp_path / 'wb.db'}", data_dir=tmp_path / "data")
    wb.init()
    yield wb
    wb.close()


def test_import_vote_and_correlate(tmp_path, workbench, bench, make_editor):
    samples = filter_samples(
        bench, task_types=["color_alter", "text_change", "ps_human", "tone_transfer"], languages=["en"]
    )
    results = tmp_path / "results"
    for i, name in enumerate(MODELS):
        editor = make_editor()
        editor.name = name
        # distinct seeds -> distinct images (the store is content-addressed, so the test can map them back)
        run_bench(editor, samples, results, settings=RunSettings(seed=i), progress=False)
    # gamma failed on one sample: that item still has two outputs; delete beta too on another -> one output
    find_output(results, "gamma", samples[0]).unlink()
    find_output(results, "gamma", samples[1]).unlink()
    find_output(results, "beta", samples[1]).unlink()

    report = import_study(workbench, samples, results, list(MODELS), study_name="gedit-pref", k=1)
    assert report["imported"] == len(samples) - 1 and report["too_few_outputs"] == 1
    again = import_study(workbench, samples, results, list(MODELS), study_name="gedit-pref", k=1)
    assert again["imported"] == 0 and again["already_present"] == len(samples) - 1

    # A rater who always agrees with the judge (prefers the system with the higher SC).
    system_of = {}
    for name in MODELS:
        for s in samples:
            if (path := find_output(results, name, s)) is not None:
                system_of[workbench.images.put(path)] = name
    workbench.add_rater("ann")
    votes = 0
    while (imp := workbench.next_item("gedit-pref", "ann")) is not None:
        left, right = system_of[Path(imp["left_path"]).stem], system_of[Path(imp["right_path"]).stem]
        choice = "A" if MODELS[left] > MODELS[right] else "B"
        winner = left if choice == "A" else right
        scores = {"semantic": MODELS[winner] - 1, "quality": 7, "overall": MODELS[winner] - 2}
        workbench.submit_vote(
            imp["impression_id"], "ann", choice=choice, idempotency_key=f"v{votes}", scores=scores
        )
        votes += 1
    assert votes == len(samples) - 1

    tables = {m: judge_table(m, samples, sc) for m, sc in MODELS.items()}
    result = human_vs_judge(workbench, "gedit-pref", tables)
    assert result["votes_with_judge_scores"] == votes
    assert result["pairwise"]["SC"]["spearman"] > 0.5
    assert result["pairwise"]["SC"]["sign_agreement"] == 1.0
    assert set(result["per_task_type"]) == {"color_alter", "text_change", "ps_human", "tone_transfer"}
    assert result["per_system"]["beta"]["human_win_rate"] == 1.0
    assert result["per_system"]["gamma"]["human_win_rate"] == 0.0
    assert result["per_system"]["alpha"]["judge_average"]["SC"] == 6.0
    assert result["system_level"]["SC"]["spearman"] >= 0.8  # 1.0 unless pairing left alpha tied
    assert result["scores"]["semantic_vs_SC"]["spearman"] == pytest.approx(1.0)
    # PQ is constant across systems: its correlation is undefined, not invented
    assert result["pairwise"]["PQ"]["spearman"] is None


def test_correlation_signs_and_missing_judge_scores():
    samples = [("color_alter", f"k{i}", "en") for i in range(6)]

    def table(model, scs):
        rows = [
            (model, "j", t, k, lang, True, sc, 5.0, "ok")
            for (t, k, lang), sc in zip(samples, scs, strict=True)
        ]
        return pd.DataFrame(rows, columns=CANONICAL)

    tables = {"a": table("a", [1, 2, 3, 4, 5, 6]), "b": table("b", [6, 5, 4, 3, 2, 1])}
    uids = [f"{t}/{lang}/{k}" for t, k, lang in samples]
    # Humans prefer the judge's loser every time -> perfectly negative.
    winners = ["model_b", "model_b", "model_b", "model_a", "model_a", "model_a"]
    votes = pd.DataFrame({"model_a": "a", "model_b": "b", "winner": winners, "uid": uids})
    votes.loc[len(votes)] = ["a", "zeta", "model_a", uids[0]]  # a system the judge never scored
    report = correlate(votes, tables)
    assert report["votes_with_judge_scores"] == 6
    assert report["systems_without_scores"] == ["zeta"]
    sc = report["pairwise"]["SC"]
    assert sc["sign_agreement"] == 1.0
    # a two-valued outcome against a spread of differences: the largest rho that ties allow, not 1
    assert sc["spearman"] == pytest.approx(0.8783100656536799)
    flipped = votes.assign(winner=votes["winner"].map({"model_a": "model_b", "model_b": "model_a"}))
    back = correlate(flipped, tables)["pairwise"]["SC"]
    assert back["spearman"] == pytest.approx(-sc["spearman"]) and back["sign_agreement"] == 0.0
