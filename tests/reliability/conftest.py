"""Fixtures for the reliability suite: hostile inputs and the load harness, loaded by path (not packages)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import a script that lives outside the packages (tests/, bench/) as a module, once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered before exec
    spec.loader.exec_module(module)
    return module


make_hostile = load_by_path("make_hostile", HERE / "make_hostile.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise over the generated cases by name, so each hostile input is its own test."""
    if "image_case" in metafunc.fixturenames:
        cases = [case for case, _ in make_hostile.image_cases()]
        metafunc.parametrize("image_case", cases, ids=[c.name for c in cases])
    if "instruction_case" in metafunc.fixturenames:
        cases = make_hostile.INSTRUCTIONS
        metafunc.parametrize("instruction_case", cases, ids=[c.name for c in cases])
    if "import_name" in metafunc.fixturenames:
        names = [entry[0] for entry in make_hostile.IMPORTS]
        metafunc.parametrize("import_name", names, ids=names)


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All hostile files, generated once per session into a temp folder."""
    out = tmp_path_factory.mktemp("hostile")
    make_hostile.generate(out)
    return out


@pytest.fixture(scope="session")
def hostile_cases(hostile_dir: Path) -> dict:
    """Every generated case by name (import cases need the files written first)."""
    import json

    return {c["name"]: make_hostile.Case(**c) for c in json.loads((hostile_dir / "cases.json").read_text())}


@pytest.fixture(scope="session")
def load_raters() -> ModuleType:
    """The load/accounting harness from bench/load_raters.py."""
    return load_by_path("load_raters", ROOT / "bench" / "load_raters.py")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a temp-file SQLite and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wb.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def workbench(db_url: str, tmp_path: Path):
    """An initialised Workbench on ``db_url`` with its data folder in tmp_path."""
    service = pytest.importorskip("workbench.service", reason="workbench/service.py has not landed yet")
    wb = service.Workbench(db_url=db_url, data_dir=str(tmp_path / "data"))
    wb.init()
    return wb


@pytest.fixture(scope="session")
def app_transport(load_raters: ModuleType) -> ModuleType:
    """bench/app_transport.py: start/kill the app as a subprocess, drive it with gradio_client."""
    return load_by_path("app_transport", ROOT / "bench" / "app_transport.py")
