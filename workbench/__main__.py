"""``python -m workbench``: set up studies and raters, import, statistics, export, backup and restore.

Every command takes ``--db URL`` (default ``$WORKBENCH_DB``, else SQLite at ``<data-dir>/workbench.db``) and
``--data-dir`` (where the image store lives). ``bench ...`` (GEdit-Bench) is registered by workbench.gedit.cli.
"""

from __future__ import annotations

import argparse
import getpass
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


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Study settings given on the command line (only those given), in the engine's names and units."""
    out: dict[str, Any] = {}
    if getattr(args, "guidelines", None):
        out["guidelines"] = Path(args.guidelines).read_text(encoding="utf-8")
    if getattr(args, "reasons", None):
        out["reasons"] = [r.strip() for r in args.reasons.split(",") if r.strip()]
    if getattr(args, "lease_minutes", None) is not None:
        out["lease_seconds"] = max(1, round(args.lease_minutes * 60))
    for name in ("k", "quota", "completion_code", "redirect_url"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = None if value in ("", "none") else value
    return out


def _spec(args: argparse.Namespace, name: str, kind: str):
    from workbench.studies import StudySpec

    settings = _settings(args)
    return StudySpec(name, kind=kind, gold_rate=getattr(args, "gold_rate", 0.0) or 0.0,
                     pair_mode=getattr(args, "pair_mode", "balanced") or "balanced", **settings)  # fmt: skip


def _cmd_studies_add(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    spec = _spec(args, args.name, args.kind)
    if args.import_source:
        _print(_import(wb, args, args.name, args.import_source, spec))
    else:
        from dataclasses import asdict

        wb.create_study(actor=args.actor, **asdict(spec))
    _print(wb.study_info(args.name))
    return 0


def _cmd_studies_list(args: argparse.Namespace) -> int:
    _print(_workbench(args).list_studies(include_archived=not args.active))
    return 0


def _cmd_studies_edit(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    changes = _settings(args)
    if args.new_name:
        changes["name"] = args.new_name
    if not changes:
        raise ValueError("nothing to change: give --new-name, --guidelines, --reasons, --k, --lease-minutes, "
                         "--quota, --completion-code or --redirect-url")  # fmt: skip
    _print(wb.update_study(args.name, actor=args.actor, **changes))
    return 0


def _cmd_studies_archive(args: argparse.Namespace) -> int:
    wb = _workbench(args)
    changed = wb.archive_study(args.name, actor=args.actor, archived=not args.undo)
    _print({"study": args.name, "archived": not args.undo, "changed": changed})
    return 0


def _cmd_studies_delete(args: argparse.Namespace) -> int:
    _print(_workbench(args).delete_study(args.name, args.confirm, args.export_dir, actor=args.actor))
    return 0


def _cmd_studies_release(args: argparse.Namespace) -> int:
    released = _workbench(args).release_claims(args.name, args.rater, actor=args.actor)
    _print({"study": args.name, "rater": args.rater, "released": released})
    return 0


def _cmd_studies_progress(args: argparse.Namespace) -> int:
    _print(_workbench(args).study_progress(args.name))
    return 0


def _cmd_studies_log(args: argparse.Namespace) -> int:
    _print(_workbench(args).audit_log(args.name))
    return 0


def _import(wb, args: argparse.Namespace, study: str, source: str, create=None) -> dict[str, Any]:
    from workbench.importers import import_source

    systems = args.systems.split(",") if args.systems else None
    return import_source(wb, study, source, fmt=args.format, root=args.root, systems=systems, bench=args.bench,
                         create=create, actor=args.actor)  # fmt: skip


def _cmd_import(args: argparse.Namespace) -> int:
    from workbench.importers import detect_format

    wb = _workbench(args)
    create = None
    if args.create:
        kind = "curation" if (args.format or detect_format(Path(args.source))) == "finetune" else args.kind
        create = _spec(args, args.study, kind)
    _print(_import(wb, args, args.study, args.source, create))
    return 0


def _cmd_import_battles(args: argparse.Namespace) -> int:
    from workbench.arena.battle_log import import_battles

    wb = _workbench(args)
    try:
        wb.study_info(args.study)
    except LookupError:  # a battle log brings its own systems: the study is created when missing
        wb.create_study(args.study, kind="preference", k=args.k, actor="cli")
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
    from workbench.live_backup import backup

    _workbench(args).close()  # make sure the schema is current before copying
    _print(backup(args.db or default_url(args.data_dir), args.dest, logical=args.logical or None))
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from db.engine import default_url
    from workbench.live_backup import restore

    _print(restore(args.src, args.db or default_url(args.data_dir), force=args.force))
    return 0


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment
        return "cli"


def _quota(value: str) -> int | str:
    return "none" if value.lower() == "none" else int(value)


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

    changer = argparse.ArgumentParser(add_help=False, parents=[common])
    changer.add_argument("--actor", default=_default_actor(), help="who makes the change, for the audit log")
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--guidelines", default=None, help="Markdown file shown to raters")
    settings.add_argument("--reasons", default=None, help="comma-separated curation reason taxonomy")
    settings.add_argument(
        "--lease-minutes",
        type=float,
        default=None,
        help="minutes without activity before a rater's claim returns to the pool (default 30)",
    )
    settings.add_argument(
        "--quota", type=_quota, default=None, help="answers per rater ('none' for no quota)"
    )
    settings.add_argument("--completion-code", default=None, help="code shown to a rater whose quota is done")
    settings.add_argument("--redirect-url", default=None, help="http(s) URL a rater is sent to when done")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument(
        "--format", choices=["manifest", "gedit", "finetune"], default=None, help="default: by file type"
    )
    source.add_argument(
        "--root", default=None, help="import root for relative paths (default: the file's folder)"
    )
    source.add_argument("--systems", default=None, help="comma-separated closed list of system names")
    source.add_argument("--bench", default=None, help="GEdit-Bench parquet file/folder (for a results tree)")

    studies = sub.add_parser("studies", help="create, edit, archive, delete studies; progress; audit log")
    studies = studies.add_subparsers(dest="action", required=True)
    add = studies.add_parser(
        "add",
        parents=[changer, settings, source],
        help="create a study (with --import: create and import in one all-or-nothing step)",
    )
    add.add_argument("name")
    add.add_argument("--kind", choices=["preference", "curation"], default="preference")
    add.add_argument("--k", type=int, default=3, help="raters per item")
    add.add_argument("--gold-rate", type=float, default=0.0, help="share of screens that show a gold item")
    add.add_argument("--pair-mode", choices=["balanced", "uncertain"], default="balanced")
    add.add_argument(
        "--import",
        dest="import_source",
        default=None,
        metavar="SOURCE",
        help="manifest, fine-tuning metadata or GEdit results tree to import into the new study",
    )
    add.set_defaults(handler=_cmd_studies_add)
    slist = studies.add_parser("list", parents=[common], help="list studies (archived ones flagged)")
    slist.add_argument("--active", action="store_true", help="leave archived studies out")
    slist.set_defaults(handler=_cmd_studies_list)
    edit = studies.add_parser("edit", parents=[changer, settings], help="change settings (k can only rise)")
    edit.add_argument("name")
    edit.add_argument("--new-name", default=None)
    edit.add_argument("--k", type=int, default=None, help="raise raters per item (re-plans the queue)")
    edit.set_defaults(handler=_cmd_studies_edit)
    arch = studies.add_parser("archive", parents=[changer], help="hide from raters (kept in results)")
    arch.add_argument("name")
    arch.add_argument("--undo", action="store_true", help="bring an archived study back")
    arch.set_defaults(handler=_cmd_studies_archive)
    dele = studies.add_parser("delete", parents=[changer], help="export the study, then delete it")
    dele.add_argument("name")
    dele.add_argument("--confirm", required=True, help="the study's name again")
    dele.add_argument("--export-dir", required=True, help="folder that receives the export first")
    dele.set_defaults(handler=_cmd_studies_delete)
    rel = studies.add_parser("release", parents=[changer], help="return a rater's open claims to the pool")
    rel.add_argument("name")
    rel.add_argument("rater")
    rel.set_defaults(handler=_cmd_studies_release)
    prog = studies.add_parser("progress", parents=[common], help="done / in progress / pending / expired")
    prog.add_argument("name")
    prog.set_defaults(handler=_cmd_studies_progress)
    log = studies.add_parser("log", parents=[common], help="audit log, newest first")
    log.add_argument("name", nargs="?", default=None)
    log.set_defaults(handler=_cmd_studies_log)

    imp = sub.add_parser(
        "import",
        parents=[changer, settings, source],
        help="import items or curation candidates into a study (all-or-nothing)",
    )
    imp.add_argument(
        "source", help="manifest (.jsonl/.csv), fine-tuning metadata (.json) or GEdit results folder"
    )
    imp.add_argument("--study", required=True, help="target study (must exist unless --create)")
    imp.add_argument(
        "--create",
        action="store_true",
        help="create the study in the same transaction (nothing is left if the import fails)",
    )
    imp.add_argument("--kind", choices=["preference", "curation"], default="preference", help="with --create")
    imp.add_argument("--k", type=int, default=None, help="raters per item, with --create (default 3)")
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
