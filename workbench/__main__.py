"""``python -m workbench``: set up studies and raters, import, statistics, export, backup and restore.

Every command takes ``--db URL`` (default ``$WORKBENCH_DB``, else SQLite at ``<data-dir>/workbench.db``) and
``--data-dir`` (where the image store lives). ``bench ...`` (GEdit-Bench) is registered by workbench.gedit.cli.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.importers import ImportFailed


def _workbench(args: argparse.Namespace):  # lazy import keeps --help fast
    from workbench.service import Workbench

    wb = Workbench(db_url=args.db, data_dir=args.data_dir)
    wb.init()
    return wb


def _print(value: Any, as_json: bool = True) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str) if as_json else value)


def _cmd_init(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    _print({"db": wb.db_url, "data_dir": str(wb.data_dir), "studies": [s["name"] for s in wb.list_studies()]})
    return 0


def _cmd_studies_add(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    guidelines = Path(args.guidelines).read_text(encoding="utf-8") if args.guidelines else ""
    reasons = [r.strip() for r in args.reasons.split(",") if r.strip()] if args.reasons else None
    wb.create_study(args.name, kind=args.kind, k=args.k, gold_rate=args.gold_rate, guidelines=guidelines,
                    reasons=reasons, pair_mode=args.pair_mode)  # fmt: skip
    _print(wb.study_info(args.name))
    return 0


def _cmd_studies_list(args: argparse.Namespace) -> int:
    _print(_workbench(args).list_studies())
    return 0


def _ensure_study(wb, name: str, kind: str, k: int) -> None:
    try:
        wb.study_info(name)
    except LookupError:
        wb.create_study(name, kind=kind, k=k)


def _detect_format(path: Path) -> str:
    if path.is_dir():
        return "gedit"
    if path.suffix.lower() == ".json":
        return "finetune"
    return "manifest"


def _cmd_import(args: argparse.Namespace) -> int:
    from workbench.importers import import_finetune_metadata, import_gedit_results, import_manifest

    source = Path(args.source)
    fmt = args.format or _detect_format(source)
    wb = _workbench(args)
    _ensure_study(wb, args.study, "curation" if fmt == "finetune" else args.kind, args.k)
    systems = args.systems.split(",") if args.systems else None
    if fmt == "gedit":
        if not args.bench:
            raise ImportFailed(
                f"{source}: a GEdit results tree needs --bench (the bench parquet file or folder)"
            )
        report = import_gedit_results(wb, args.study, source, args.bench, systems=systems)
    elif fmt == "finetune":
        report = import_finetune_metadata(wb, args.study, source, root=args.root)
    else:
        report = import_manifest(wb, args.study, source, root=args.root, systems=systems)
    _print(report)
    return 0


def _cmd_import_battles(args: argparse.Namespace) -> int:
    from workbench.arena.battle_log import import_battles

    wb = _workbench(args)
    _ensure_study(wb, args.study, "preference", args.k)
    _print(import_battles(wb, args.study, args.file, allow_new_systems=args.allow_new_systems))
    return 0


def _cmd_raters_add(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    for handle in args.handles:
        wb.add_rater(handle, role=args.role)
    _print(wb.list_raters())
    return 0


def _cmd_raters_list(args: argparse.Namespace) -> int:
    raters = _workbench(args).list_raters()
    if args.json:
        _print(raters)
    else:
        for r in raters:
            print(f"{r['handle']:<24} {r['role']:<6} {r['created_at']}")
    return 0


def _format_leaderboard(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'rank':>4}  {'system':<28} {'rating':>7}  {'95% CI':>17}  {'votes':>6}  {'win rate':>8}"]
    for r in rows:
        ci = "n/a" if r.get("ci_low") is None else f"{r['ci_low']:.0f} .. {r['ci_high']:.0f}"
        lines.append(
            f"{r.get('rank', ''):>4}  {r['system']:<28} {r['rating']:7.1f}  {ci:>17}  {r['votes']:>6}  {r['win_rate']:8.3f}"
        )
    return "\n".join(lines)


def _cmd_stats(args: argparse.Namespace) -> int:
    result = _workbench(args).stats(args.study, bootstrap_rounds=args.rounds, seed=args.seed)
    if args.json:
        _print(result)
        return 0
    if result["leaderboard"]:
        print(_format_leaderboard(result["leaderboard"]))
    if result.get("position_bias"):
        overall = result["position_bias"][0]
        print(
            f"\nleft-side win rate {overall['left_rate']} over {overall['decisive']} decisive votes (p={overall['p_value']})"
        )
    if result.get("agreement"):
        print(f"agreement: {json.dumps(result['agreement'])}")
    if result.get("curation"):
        print(json.dumps(result["curation"], indent=2, default=str))
    if not result["leaderboard"] and not result.get("curation"):
        print(f"study {args.study!r} has no votes or decisions yet")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from workbench.export import export_accepted, export_study

    wb = _workbench(args)
    written: dict[str, Any] = {}
    if args.accepted:
        written["accepted"] = str(export_accepted(wb, args.study, args.out, rule=args.rule))
    else:
        formats = [f.strip() for f in args.format.split(",") if f.strip()]
        written["files"] = [str(p) for p in export_study(wb, args.study, args.out, formats)]
    if args.push:
        from workbench.hub import HubPusher

        pusher = HubPusher.from_env(wb, [args.study])
        if pusher is None:
            raise SystemExit("--push needs WORKBENCH_HF_REPO and HF_TOKEN in the environment")
        written["pushed"] = pusher.push()
    _print(written)
    return 0


def _cmd_backup(args: argparse.Namespace) -> int:
    from db.engine import default_url
    from workbench.backup import backup

    _workbench(args).close()  # make sure the schema is current before copying
    _print(backup(args.db or default_url(args.data_dir), args.dest, logical=args.logical or None))
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from db.engine import default_url
    from workbench.backup import restore

    _print(restore(args.src, args.db or default_url(args.data_dir), force=args.force))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=None, help="database URL (default: $WORKBENCH_DB or <data-dir>/workbench.db)"
    )
    common.add_argument("--data-dir", default="data", help="folder for the SQLite file and the image store")
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("init", parents=[common], help="create or upgrade the schema").set_defaults(
        handler=_cmd_init
    )

    studies = sub.add_parser("studies", help="create and list studies").add_subparsers(
        dest="action", required=True
    )
    add = studies.add_parser("add", parents=[common], help="create a study")
    add.add_argument("name")
    add.add_argument("--kind", choices=["preference", "curation"], default="preference")
    add.add_argument("--k", type=int, default=3, help="raters per item")
    add.add_argument("--gold-rate", type=float, default=0.0, help="share of screens that show a gold item")
    add.add_argument("--guidelines", default=None, help="Markdown file shown to raters")
    add.add_argument("--reasons", default=None, help="comma-separated curation reason taxonomy")
    add.add_argument("--pair-mode", choices=["balanced", "uncertain"], default="balanced")
    add.set_defaults(handler=_cmd_studies_add)
    studies.add_parser("list", parents=[common], help="list studies").set_defaults(handler=_cmd_studies_list)

    imp = sub.add_parser(
        "import", parents=[common], help="import items or curation candidates (all-or-nothing)"
    )
    imp.add_argument(
        "source", help="manifest (.jsonl/.csv), fine-tuning metadata (.json) or GEdit results folder"
    )
    imp.add_argument("--study", required=True, help="target study (created if missing)")
    imp.add_argument(
        "--format", choices=["manifest", "gedit", "finetune"], default=None, help="default: by file type"
    )
    imp.add_argument(
        "--kind", choices=["preference", "curation"], default="preference", help="for a new study"
    )
    imp.add_argument("--k", type=int, default=3, help="raters per item, for a new study")
    imp.add_argument(
        "--root", default=None, help="import root for relative paths (default: the file's folder)"
    )
    imp.add_argument("--systems", default=None, help="comma-separated closed list of system names")
    imp.add_argument("--bench", default=None, help="GEdit-Bench parquet file/folder (for a results tree)")
    imp.set_defaults(handler=_cmd_import)

    battles = sub.add_parser(
        "import-battles", parents=[common], help="import FastChat/GenAI-Arena battles as votes (ids or none)"
    )
    battles.add_argument("file")
    battles.add_argument("--study", required=True)
    battles.add_argument("--k", type=int, default=3, help="raters per item, for a new study")
    battles.add_argument("--allow-new-systems", action="store_true")
    battles.set_defaults(handler=_cmd_import_battles)

    raters = sub.add_parser("raters", help="add and list raters").add_subparsers(dest="action", required=True)
    radd = raters.add_parser("add", parents=[common], help="add raters")
    radd.add_argument("handles", nargs="+")
    radd.add_argument("--role", choices=["rater", "admin"], default="rater")
    radd.set_defaults(handler=_cmd_raters_add)
    rlist = raters.add_parser("list", parents=[common], help="list raters")
    rlist.add_argument("--json", action="store_true")
    rlist.set_defaults(handler=_cmd_raters_list)

    stats = sub.add_parser("stats", parents=[common], help="leaderboard, agreement, position bias, curation")
    stats.add_argument("--study", required=True)
    stats.add_argument("--json", action="store_true", help="print one JSON document")
    stats.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds for the CIs")
    stats.add_argument("--seed", type=int, default=0)
    stats.set_defaults(handler=_cmd_stats)

    exp = sub.add_parser(
        "export", parents=[common], help="export tables (CSV/Parquet/JSONL) or the accepted set"
    )
    exp.add_argument("--study", required=True)
    exp.add_argument("--out", required=True, help="output folder")
    exp.add_argument("--format", default="csv,parquet,jsonl", help="comma-separated: csv, parquet, jsonl")
    exp.add_argument("--accepted", action="store_true", help="curation: write metadata.json + images/")
    exp.add_argument("--rule", choices=["majority", "unanimous"], default="majority")
    exp.add_argument("--push", action="store_true", help="also push a snapshot to $WORKBENCH_HF_REPO")
    exp.set_defaults(handler=_cmd_export)

    bk = sub.add_parser("backup", parents=[common], help="consistent snapshot while the app is serving")
    bk.add_argument("dest", help="new file: .db (SQLite copy) or .jsonl.gz (logical, any backend)")
    bk.add_argument("--logical", action="store_true", help="logical snapshot even for SQLite")
    bk.set_defaults(handler=_cmd_backup)
    rs = sub.add_parser("restore", parents=[common], help="restore a backup into --db")
    rs.add_argument("src")
    rs.add_argument(
        "--force", action="store_true", help="replace an existing SQLite file (stop the app first)"
    )
    rs.set_defaults(handler=_cmd_restore)

    from workbench.arena.cli import register as register_arena
    from workbench.gedit.cli import register

    register(sub)
    register_arena(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one clear line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (
        ImportFailed,
        LookupError,
        ValueError,
        FileExistsError,
        FileNotFoundError,
        PermissionError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
