"""The docs are checked against the code: links resolve, shown commands run, every CLI option and every
option of the `Workbench` facade is documented, no drifting counts are written into prose, and the repository
speaks of the project alone."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
# Top-level entries of the repository: a `path/...` in the docs that starts with one of them must exist.
REPO_TOPS = ("app.py", "model", "workbench", "db", "tests", "bench", "docs", "assets", ".ci")
PROJECT_PACKAGES = ("model", "workbench", "db")

FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
TEST_REF = re.compile(r"(test_\w+\.py)::(\w+)([*…]?)")
PY_M = re.compile(r"\bpython3? -m ([A-Za-z_][\w.]*)((?:[ \t]+[a-z][\w-]*)*)")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(path: Path) -> str:
    """The file without its fenced code blocks (their `# ...` lines are comments, not headings)."""
    return FENCE.sub("", _text(path))


def _all_docs() -> str:
    return "\n".join(_text(p) for p in DOCS)


# ---------------------------------------------------------------------------------------------- links and paths
def github_anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives the headings of a Markdown file (lower case, punctuation dropped, spaces to
    hyphens, -1, -2 ... for repeats)."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", _prose(path), re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        unique, n = slug, 0
        while unique in anchors:
            n += 1
            unique = f"{slug}-{n}"
        anchors.add(unique)
    return anchors


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path)):
        if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    return broken


def missing_paths(path: Path) -> list[str]:
    """Repository paths written in `code` spans (e.g. `tests/model/test_cli.py`, `bench/round_trip.py`)."""
    missing = []
    for span in CODE_SPAN.findall(_prose(path)):
        for token in span.split():
            token = token.strip(".,;:()[]'\"").split("::")[0]
            top = token.split("/")[0]
            if "/" not in token or top not in REPO_TOPS or re.search(r"[<>{}$*…|]", token):
                continue
            if not (ROOT / token).exists():
                missing.append(token)
    return missing


@cache
def _test_files() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in (ROOT / "tests").rglob("test_*.py"):
        found.setdefault(p.name, []).append(p)
    return found


def missing_tests(path: Path) -> list[str]:
    """`test_file.py::test_name` references (a trailing * or … means "a test whose name starts so")."""
    missing = []
    for file_name, name, truncated in TEST_REF.findall(_text(path)):
        end = "" if truncated else r"\b"
        pattern = rf"^\s*(?:async\s+)?def {name}{end}"
        files = _test_files().get(file_name, [])
        if not any(re.search(pattern, _text(f), re.M) for f in files):
            missing.append(f"{file_name}::{name}{truncated}")
    return missing


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_relative_links_resolve(path: Path) -> None:
    broken = broken_links(path)
    assert not broken, f"{path.name} links to missing files or headings: {broken}"


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_repository_paths_and_tests_named_in_the_docs_exist(path: Path) -> None:
    paths, tests = missing_paths(path), missing_tests(path)
    assert not paths, f"{path.name} names paths that are not in the repository: {paths}"
    assert not tests, f"{path.name} names tests that do not exist: {tests}"


def test_the_checkers_find_what_is_broken(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "# Guide\n\n## Set up `it`\n\n[ok](#set-up-it) [gone](missing.md) [bad anchor](#nowhere)\n"
        "[web](https://example.org) `bench/no_such_script.py` `tests/conftest.py`\n"
        "`test_docs.py::test_relative_links_resolve` `test_docs.py::test_nothing_like_this` "
        "`test_docs.py::test_relative_*`\n```\n# not a heading\n[skipped](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert github_anchors(doc) == {"guide", "set-up-it"}
    assert broken_links(doc) == ["missing.md: no such file", "#nowhere: no heading with that anchor"]
    assert missing_paths(doc) == ["bench/no_such_script.py"]
    assert missing_tests(doc) == ["test_docs.py::test_nothing_like_this"]


# ---------------------------------------------------------------------------------------------- commands
class _Captured(Exception):
    pass


def parser_of(entry: Callable[[list[str]], object]) -> argparse.ArgumentParser:
    """The parser a CLI entry point (``main(argv)`` or ``parse_args(argv)``) builds, caught before it parses."""
    seen: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        seen.append(self)
        raise _Captured

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), pytest.raises(_Captured):
        entry([])
    return seen[0]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


@cache
def module_parser(module: str) -> argparse.ArgumentParser:
    spec = importlib.util.find_spec(module)
    main_module = f"{module}.__main__" if spec.submodule_search_locations else module
    return parser_of(importlib.import_module(main_module).main)


def load_app() -> object:
    spec = importlib.util.spec_from_file_location("studio_app_for_docs", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def documented_commands(text: str) -> dict[str, set[tuple[str, ...]]]:
    """Distinct (subcommand path) per project module among the `python -m ...` commands shown."""
    commands: dict[str, set[tuple[str, ...]]] = {}
    for module, rest in PY_M.findall(text):
        if module.split(".")[0] not in PROJECT_PACKAGES:
            continue
        parser, path = module_parser(module), []
        for word in rest.split():
            sub = _subparsers(parser)
            if word not in sub:
                break
            parser = sub[word]
            path.append(word)
        commands.setdefault(module, set()).add(tuple(path))
    return commands


# Runs each `--help` as `python -m` does (runpy), all of one module's commands in one interpreter.
_HELP_RUNNER = """
import contextlib, io, json, runpy, sys
module, results = sys.argv[1], []
for path in json.loads(sys.argv[2]):
    sys.argv, out = [module, *path, "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        status = "returned without exiting"
    except SystemExit as exc:
        status = exc.code or 0
    results.append([path, status, out.getvalue()])
print("HELP-RESULTS " + json.dumps(results))
"""


def run_helps(module: str, paths: list[tuple[str, ...]]) -> list[tuple[list[str], object, str]]:
    done = subprocess.run(
        [sys.executable, "-c", _HELP_RUNNER, module, json.dumps(paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    marker = [line for line in done.stdout.splitlines() if line.startswith("HELP-RESULTS ")]
    assert marker, f"python -m {module} --help crashed:\n{done.stderr[-3000:]}"
    return json.loads(marker[-1].removeprefix("HELP-RESULTS "))


def test_the_docs_show_the_main_commands() -> None:
    commands = documented_commands(_all_docs())
    assert {("edit",), ("inspect",)} <= commands["model"]
    assert {("stats",), ("bench", "judge")} <= commands["workbench"]


@pytest.mark.parametrize("module", ["model", "workbench", "db.backup"])
def test_every_documented_command_has_a_working_help(module: str) -> None:
    commands = documented_commands(_all_docs())
    if module not in commands:
        pytest.skip(f"the docs show no `python -m {module}` command")
    paths = sorted(commands[module])
    for path, status, out in run_helps(module, paths):
        shown = " ".join(["python -m", module, *path])
        assert status == 0, f"`{shown} --help` exited with {status}"
        assert out.lstrip().startswith("usage:"), f"`{shown} --help` printed no usage:\n{out[:500]}"


# ---------------------------------------------------------------------------------------------- CLI options
def long_options(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str]]:
    """(command, --option) for the parser and all its subcommands; --help is left out."""
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                yield prefix, option
    for name, sub in _subparsers(parser).items():
        yield from long_options(sub, f"{prefix} {name}")


def undocumented(options: Iterator[tuple[str, str]], text: str) -> list[str]:
    return [f"{cmd} {opt}" for cmd, opt in options if not re.search(re.escape(opt) + r"(?![\w-])", text)]


def test_every_cli_option_is_documented() -> None:
    text = _all_docs()
    options = [
        *long_options(module_parser("model"), "python -m model"),
        *long_options(module_parser("workbench"), "python -m workbench"),
        *long_options(parser_of(load_app().parse_args), "python app.py"),
    ]
    assert len(options) > 40  # the walk reached the subcommands
    missing = undocumented(iter(options), text)
    assert not missing, "options missing from README.md / docs/*.md:\n" + "\n".join(missing)


def test_the_option_check_sees_a_missing_option() -> None:
    parser = argparse.ArgumentParser()
    parser.add_subparsers().add_parser("go").add_argument("--fast-mode")
    options = list(long_options(parser, "tool"))
    assert options == [("tool go", "--fast-mode")]
    assert undocumented(iter(options), "use `--fast` or --fast-modes") == ["tool go --fast-mode"]
    assert undocumented(iter(options), "`tool go [--fast-mode]`") == []


# ---------------------------------------------------------------------------------------------- the Workbench API
def _signature_words(text: str, name: str) -> set[str] | None:
    """Words inside every `name(...)` written in the text; None when it is never written with its options."""
    words, found = set(), False
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", text):
        depth, end = 1, match.end()
        while end < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        words |= set(re.findall(r"\w+", text[match.end() : end]))
        found = True
    return words if found else None


def undocumented_parameters(cls: type, text: str) -> list[str]:
    missing = []
    methods = {"__init__": cls.__init__} | {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }
    for name, method in methods.items():
        shown = cls.__name__ if name == "__init__" else name
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        words = _signature_words(text, shown)
        if words is None:
            missing.append(f"{shown}(...)")
        missing += [f"{shown}({p})" for p in params if words is not None and p not in words]
    return missing


def test_every_workbench_method_and_option_is_documented() -> None:
    from workbench.service import Workbench

    text = _text(ROOT / "docs" / "workbench.md")
    missing = undocumented_parameters(Workbench, text)
    assert not missing, "document these in docs/workbench.md (Python API): " + ", ".join(missing)


def test_the_api_check_sees_a_missing_option() -> None:
    class Facade:
        def __init__(self, url: str) -> None: ...

        def create(self, name: str, k: int = 3) -> None: ...

        def _private(self, x: int) -> None: ...

    assert undocumented_parameters(Facade, "`Facade(url)`, `create(name)`") == ["create(k)"]
    assert undocumented_parameters(Facade, "`Facade(url)`") == ["create(...)"]


# ---------------------------------------------------------------------------------------------- prose
DRIFTING = re.compile(r"\b\d[\d,]*\s+(?:tests|test cases|passed|passing)\b", re.I)


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_no_test_counts_in_prose(path: Path) -> None:
    """Counts that change with every commit go stale in prose; the test run itself reports them."""
    counts = DRIFTING.findall(_text(path))
    assert not counts, f"{path.name} hard-codes counts that drift: {counts}"


def test_the_count_check_sees_a_count() -> None:
    assert DRIFTING.findall("The suite (646 tests at the last run) and 1,204 passed.") == [
        "646 tests",
        "1,204 passed",
    ]
    assert DRIFTING.findall("5,000 votes; the tests cover 32 threads") == []


# ---------------------------------------------------------------------------------------------- provenance
# The repository describes the project, not the way it was built: no roles, no files outside the repository.
PROVENANCE = re.compile(
    r"\bengineer(?:s|'s|s')?\b|CONTRACTS\.md|/work/|shared/reference|\bthis task\b|\blent\b|\bworktrees?\b"
    r"|\b(?:architecture|engineering|workbench-anchors|performance-limits|nano-experiments)(?:\.md\b|\s*§)",
    re.I,
)
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".json", ".jinja", ".js", ".css", ".mako", ".csv", ".cfg", ""}


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / name for name in listed.split("\0") if name]
    return [p for p in paths if p.suffix in TEXT_SUFFIXES and p.is_file() and p != Path(__file__).resolve()]


def provenance_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}"
        for n, line in enumerate(text.splitlines(), 1)
        if PROVENANCE.search(line)
    ]


def test_the_repository_speaks_of_the_project_alone() -> None:
    found = [hit for path in tracked_text_files() for hit in provenance_lines(path)]
    assert not found, "references to who built it or to files outside the repository:\n" + "\n".join(found)


def test_the_provenance_check_sees_a_reference() -> None:
    leftovers = [
        "# written by the reliability engineer",
        "Schema (see /work/team/CONTRACTS.md)",
        "no GPU was lent to this task",
        "The SQLite setup follows engineering.md §4.2",
        "(architecture.md §1.5)",
    ]
    clean = [
        "A session hash per browser tab.",
        "docs/gedit-bench.md",
        "excellent silent talent",
        "engineering",
    ]
    assert [PROVENANCE.search(line) is not None for line in leftovers + clean] == [True] * 5 + [False] * 4
