"""``python -m workbench bench ...``: GEdit-Bench run, judge, statistics, comparison and human calibration.

Heavy modules (torch, transformers, the workbench service) are imported inside the handlers so that
``--help`` and ``bench stats`` stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.gedit import LANGUAGES, TASK_TYPES

DEFAULT_BENCH = "stepfun-ai/GEdit-Bench"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command tree to the workbench CLI."""
    bench = subparsers.add_parser("bench", help="GEdit-Bench: run an editor, judge with VIEScore, statistics")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    run = sub.add_parser("run", help="run an editor over the bench (resumable; splits keys under accelerate)")
    _add_bench_args(run)
    run.add_argument(
        "--model", default=None, help="model folder or Hub id (default: the embedded nano model)"
    )
    run.add_argument("--name", default=None, help="results folder name (default: the pipeline's name)")
    run.add_argument("--results", default="results", help="results root (official layout below it)")
    run.add_argument("--seed", type=int, default=0, help="base seed; each sample derives its own from it")
    run.add_argument("--steps", type=int, default=28)
    run.add_argument("--guidance", type=float, default=6.0)
    run.add_argument("--size-level", type=int, default=1024)
    run.set_defaults(handler=_cmd_run)

    judge = sub.add_parser("judge", help="score edited images with a local VIEScore judge (cached)")
    _add_bench_args(judge)
    judge.add_argument("--results", default="results", help="results root holding {model}/fullset/...")
    judge.add_argument("--model-name", required=True, help="which results/{model} to judge")
    judge.add_argument("--judge", required=True, help="Qwen2.5-VL folder or Hub id")
    judge.add_argument(
        "--judge-name", default=None, help="label for the scores folder (default from --judge)"
    )
    judge.add_argument("--revision", default=None, help="Hub revision of the judge (recorded)")
    judge.add_argument("--scores", default="scores", help="scores root: {model}/{judge}/samples.jsonl")
    judge.add_argument("--cache", default=None, help="judge-call cache folder (default: SCORES/.judge_cache)")
    judge.add_argument("--device", default=None)
    judge.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    judge.add_argument("--max-attempts", type=int, default=2, help="bounded re-asks when a reply won't parse")
    judge.add_argument("--max-new-tokens", type=int, default=512)
    judge.add_argument(
        "--official-prompts",
        default=None,
        metavar="PATH",
        help="use the official VIEScore prompt templates verbatim, read from your own checkout of the "
        "GEdit-Bench/VIEScore code (vie_prompts.py or a folder holding it); default: this project's wording",
    )
    judge.set_defaults(handler=_cmd_judge)

    stats = sub.add_parser("stats", help="official GEdit aggregation (+coverage, bootstrap CIs)")
    stats.add_argument("--scores", required=True, help="folder with official CSVs or the project's scores")
    stats.add_argument("--judge", default=None, help="only this judge folder")
    stats.add_argument("--json", action="store_true", help="print the table as JSON")
    stats.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for 95%% CIs (0 = off)")
    stats.add_argument(
        "--missing-as-zero",
        action="store_true",
        help="score missing edited images 0 (stricter than official)",
    )
    stats.set_defaults(handler=_cmd_stats)

    export = sub.add_parser(
        "export-csv", help="write scores in the official CSV layout (for calculate_statistics.py)"
    )
    export.add_argument("--scores", required=True)
    export.add_argument("--judge", default=None)
    export.add_argument(
        "--out", required=True, help="folder for {model}/{judge}/{model}_{task}_all_vie_score.csv"
    )
    export.set_defaults(handler=_cmd_export_csv)

    compare = sub.add_parser("compare", help="paired comparison of two models on shared samples")
    compare.add_argument("--scores", required=True)
    compare.add_argument("model_a")
    compare.add_argument("model_b")
    compare.add_argument("--judge", default=None)
    compare.add_argument("--language", default="en", choices=LANGUAGES)
    compare.add_argument("--subset", default="fullset", choices=["fullset", "intersection"])
    compare.add_argument("--bootstrap", type=int, default=2000)
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(handler=_cmd_compare)

    imp = sub.add_parser("import-study", help="import a bench run (several models) as a preference study")
    _add_bench_args(imp)
    _add_workbench_args(imp)
    imp.add_argument("--results", default="results")
    imp.add_argument("--models", nargs="+", required=True, help="results/{model} folders to compare")
    imp.add_argument("--study", required=True, help="study name")
    imp.add_argument("--k", type=int, default=3, help="ratings wanted per item")
    imp.set_defaults(handler=_cmd_import_study)

    hvj = sub.add_parser("human-vs-judge", help="Spearman/Kendall between human ratings and judge scores")
    _add_workbench_args(hvj)
    hvj.add_argument("--study", required=True)
    hvj.add_argument("--scores", required=True)
    hvj.add_argument("--judge", default=None)
    hvj.add_argument("--json", action="store_true")
    hvj.set_defaults(handler=_cmd_human_vs_judge)

    make = sub.add_parser(
        "make-bench", help="write a small synthetic bench parquet (same schema; for demos/tests)"
    )
    make.add_argument("--out", required=True, help="parquet file to write")
    make.add_argument("--per-type", type=int, default=2, help="samples per task type and language")
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(handler=_cmd_make_bench)


def _add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bench", default=DEFAULT_BENCH, help="parquet file/folder or Hub dataset id")
    p.add_argument("--language", nargs="*", choices=LANGUAGES, default=None, help="filter languages")
    p.add_argument("--task-type", nargs="*", choices=TASK_TYPES, default=None, help="filter task types")
    p.add_argument("--key", nargs="*", default=None, help="filter sample keys")
    p.add_argument("--intersection", action="store_true", help="only the intersection subset")


def _add_workbench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="database URL (default: $WORKBENCH_DB or data/workbench.db)")
    p.add_argument("--data-dir", default="data")


def _load_filtered(args: argparse.Namespace):
    from workbench.gedit.dataset import filter_samples, load_bench

    return filter_samples(
        load_bench(args.bench),
        languages=args.language,
        task_types=args.task_type,
        keys=args.key,
        intersection_only=args.intersection,
    )


def _bench_label(source: str) -> str:
    from workbench.gedit.dataset import bench_revision

    return f"{source}@{bench_revision(source)}"


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.gedit.run import RunSettings, distributed_context, run_bench

    samples = _load_filtered(args)
    rank, world, device = distributed_context()
    from model.loading import load_editor

    editor = load_editor(args.model, device=device)
    settings = RunSettings(
        seed=args.seed,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        size_level=args.size_level,
    )
    summary = run_bench(
        editor,
        samples,
        Path(args.results),
        model_name=args.name,
        settings=settings,
        rank=rank,
        world_size=world,
        bench_source=_bench_label(args.bench),
    )
    summary.pop("seeds")  # in the manifest file; too long for the terminal
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if summary["failed"] else 0


def _cmd_judge(args: argparse.Namespace) -> int:
    from workbench.gedit.judge import JudgeCache, QwenVLJudge, judge_run
    from workbench.gedit.prompts import STUDIO_PROMPTS, official_prompts

    prompts = official_prompts(args.official_prompts) if args.official_prompts else STUDIO_PROMPTS
    samples = _load_filtered(args)
    judge = QwenVLJudge.load(
        args.judge,
        revision=args.revision,
        device=args.device,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
    )
    scores_root = Path(args.scores)
    cache = JudgeCache(Path(args.cache) if args.cache else scores_root / ".judge_cache")
    summary = judge_run(
        judge,
        samples,
        results_dir=Path(args.results),
        model_name=args.model_name,
        scores_dir=scores_root,
        cache=cache,
        judge_name=args.judge_name,
        max_attempts=args.max_attempts,
        bench_source=_bench_label(args.bench),
        prompts=prompts,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from workbench.gedit.stats import format_table, load_scores, summarize_all

    tables = load_scores(Path(args.scores), judge=args.judge)
    summary = summarize_all(tables, bootstrap=args.bootstrap, missing_as_zero=args.missing_as_zero)
    if args.json:
        print(json.dumps(summary["scores"], indent=2, allow_nan=True))
    else:
        print(format_table(summary))
    return 0


def _cmd_export_csv(args: argparse.Namespace) -> int:
    from workbench.gedit.stats import export_official_csv, load_scores

    for name, df in load_scores(Path(args.scores), judge=args.judge).items():
        judge = df["judge"].iloc[0] if len(df) else "judge"
        paths = export_official_csv(df, Path(args.out), name.split("@")[0], judge)
        print(f"{name}: {len(paths)} files in {paths[0].parent}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from workbench.gedit.stats import load_scores, paired_comparison

    tables = load_scores(Path(args.scores), judge=args.judge)
    for name in (args.model_a, args.model_b):
        if name not in tables:
            raise SystemExit(f"no scores for model {name!r} under {args.scores} (found: {sorted(tables)})")
    result = paired_comparison(
        tables[args.model_a],
        tables[args.model_b],
        language=args.language,
        intersection_only=args.subset == "intersection",
        n_boot=args.bootstrap,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for metric, row in result["metrics"].items():
            print(
                f"{metric}: {args.model_a} {row['a']:.3f} vs {args.model_b} {row['b']:.3f}  "
                f"diff {row['diff']:+.3f} [95% CI {row['ci_low']:+.3f}, {row['ci_high']:+.3f}]  "
                f"p={row['p_value']:.4f}"
            )
        print(f"paired samples: {result['n_pairs']}")
    return 0


def _cmd_import_study(args: argparse.Namespace) -> int:
    from workbench.gedit.human import import_study
    from workbench.service import Workbench

    samples = _load_filtered(args)
    wb = Workbench(db_url=args.db, data_dir=args.data_dir)
    wb.init()
    report = import_study(wb, samples, Path(args.results), args.models, study_name=args.study, k=args.k)
    print(json.dumps(report, indent=2))
    return 0


def _cmd_human_vs_judge(args: argparse.Namespace) -> int:
    from workbench.gedit.human import format_report, human_vs_judge
    from workbench.gedit.stats import load_scores
    from workbench.service import Workbench

    wb = Workbench(db_url=args.db, data_dir=args.data_dir)
    wb.init()
    tables = load_scores(Path(args.scores), judge=args.judge)
    report = human_vs_judge(wb, args.study, tables)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _cmd_make_bench(args: argparse.Namespace) -> int:
    from workbench.gedit.dataset import write_synthetic_bench

    path = write_synthetic_bench(Path(args.out), per_type=args.per_type, seed=args.seed)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m workbench.gedit.cli bench ...``)."""
    parser = argparse.ArgumentParser(prog="gedit")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
