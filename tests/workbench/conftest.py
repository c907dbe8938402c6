"""Workbench fixtures: a Workbench on a temp-file SQLite DB and on PostgreSQL (skips visibly without a server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from workbench.service import Workbench


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against a SQLite file and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wb.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def wb(db_url: str, tmp_path: Path) -> Iterator[Workbench]:
    bench = Workbench(db_url=db_url, data_dir=tmp_path / "data")
    bench.init()
    yield bench
    bench.close()


def _solid(value: int, size: int = 8) -> Image.Image:
    """A tiny distinct image (distinct values give distinct content hashes)."""
    return Image.new("RGB", (size, size), (value % 256, (value // 256) % 256, 7))


def _make_preference_study(
    bench: Workbench,
    name: str = "pref",
    n_items: int = 6,
    systems: tuple[str, ...] = ("m1", "m2", "m3"),
    k: int = 2,
    **kw,
) -> str:
    """A preference study with ``n_items`` items, one output per system each."""
    bench.create_study(name, kind="preference", k=k, **kw)
    for i in range(n_items):
        outputs = {name_: _solid(1000 + i * 10 + j) for j, name_ in enumerate(systems)}
        bench.add_item(name, _solid(i), f"edit {i}", category="color_alter", outputs=outputs, key=f"item-{i}")
    return name


@pytest.fixture
def solid():
    """Factory: ``solid(n)`` -> a tiny image whose content differs for each n."""
    return _solid


@pytest.fixture
def make_study():
    """Factory: ``make_study(wb, name="pref", n_items=6, systems=(...), k=2)`` -> study name."""
    return _make_preference_study
