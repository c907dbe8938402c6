"""Shared test fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test may reach a hub or phone home; one thread keeps parallel work on 2 cores from thrashing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = ROOT.parent / "shared" / "data" / "step1x-examples"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]  # fmt: skip
PG_URL = os.environ.get("WORKBENCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """Real photos with official Step1X-Edit outputs (read in place, never copied into the repo)."""
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip(f"shared examples not found at {SHARED_EXAMPLES}")
    return SHARED_EXAMPLES


def _has_chinese_font() -> bool:
    if not shutil.which("fc-list"):
        return True  # not a fontconfig system: nothing to install the usual way
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(listed.stdout.strip())


@pytest.fixture(scope="session")
def chromium() -> dict:
    """Playwright launch options for Debian's Chromium, installed with apt-get when missing and we are root
    (CI), with a Chinese font so that screenshots of Chinese instructions show characters, not boxes;
    elsewhere the browser tests skip with the reason."""
    packages = [] if Path(CHROMIUM).exists() else ["chromium", "fonts-dejavu-core"]
    if not _has_chinese_font():
        packages.append("fonts-wqy-zenhei")
    if packages and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", *packages], check=False, env=env, capture_output=True,
                       timeout=900)  # fmt: skip
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} and it cannot be installed here (needs root and apt-get)")
    return {"executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}


def _postgres_reachable(url: str) -> str | None:
    """Return None when a server answers, else the reason it does not."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "no server here"
        return f"no PostgreSQL server answers at {url}: {exc.__class__.__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    reason = _postgres_reachable(PG_URL)
    if reason:
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A PostgreSQL URL bound to a fresh schema, dropped afterwards (tests may run side by side)."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in pg_base_url else "?"
    yield f"{pg_base_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the PostgreSQL server carries the `postgres` marker, whichever way it gets its URL,
    so `-m "not postgres"` leaves them all out."""
    for item in items:
        if {"pg_url", "pg_base_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
