"""``python -m workbench arena ...`` and ``export-battles``: arenas from a contestants file, system health,
the moderation queue, and clean_battle exports (``import-battles`` is the workbench's own command)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _workbench(args: argparse.Namespace):  # lazy import keeps --help fast
    from workbench.service import Workbench

    wb = Workbench(db_url=args.db, data_dir=args.data_dir)
    wb.init()
    return wb


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _cmd_create(args: argparse.Namespace) -> int:
    from workbench.arena.contestants import read_contestants
    from workbench.arena.store import create_arena, set_contestants

    wb, specs = _workbench(args), read_contestants(args.contestants)
    if args.update:
        set_contestants(wb, args.name, specs)
    else:
        create_arena(wb, args.name, specs)
    _print({"arena": args.name, "contestants": [{"name": s.name, "runs as": s.describe()} for s in specs]})
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    from workbench.arena.store import system_health

    _print(system_health(_workbench(args), args.name))
    return 0


def _cmd_queue(args: argparse.Namespace) -> int:
    from workbench.arena.store import moderation_queue

    _print(moderation_queue(_workbench(args), args.name, args.state, limit=args.limit))
    return 0


def _cmd_moderate(args: argparse.Namespace) -> int:
    from workbench.arena.store import moderate

    changed = moderate(_workbench(args), args.name, args.source_hash, args.instruction, args.decision)
    _print({"battles_changed": changed})
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from workbench.arena.battle_log import export_clean_battles

    path = export_clean_battles(_workbench(args), args.study, args.out, public=args.public)
    _print({"written": str(path), "public": args.public})
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``arena`` and ``export-battles`` to the workbench CLI."""
    arena = subparsers.add_parser("arena", help="arenas: contestants, system health, moderation")
    sub = arena.add_subparsers(dest="arena_command", required=True)
    create = sub.add_parser("create", parents=[common], help="create an arena from a contestants file")
    create.add_argument("name")
    create.add_argument("--contestants", required=True, help=".toml or .json file (see docs/arena.md)")
    create.add_argument("--update", action="store_true", help="add/replace contestants of an existing arena")
    create.set_defaults(handler=_cmd_create)
    health = sub.add_parser("health", parents=[common], help="battles, failures, timeouts per system")
    health.add_argument("name")
    health.set_defaults(handler=_cmd_health)
    queue = sub.add_parser(
        "queue", parents=[common], help="prompts awaiting moderation (or flagged/approved)"
    )
    queue.add_argument("name")
    queue.add_argument("--state", choices=["pending", "flagged", "approved"], default="pending")
    queue.add_argument("--limit", type=int, default=50)
    queue.set_defaults(handler=_cmd_queue)
    mod = sub.add_parser("moderate", parents=[common], help="approve or flag a prompt (image hash + text)")
    mod.add_argument("name")
    mod.add_argument("source_hash")
    mod.add_argument("instruction")
    mod.add_argument("decision", choices=["approved", "flagged", "pending"])
    mod.set_defaults(handler=_cmd_moderate)

    export = subparsers.add_parser(
        "export-battles", parents=[common], help="write a study's battles as FastChat clean_battle JSON"
    )
    export.add_argument("--study", required=True)
    export.add_argument("--out", required=True, help="output .json file")
    export.add_argument("--public", action="store_true", help="leave out battles on flagged prompts")
    export.set_defaults(handler=_cmd_export)
