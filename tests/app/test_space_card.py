"""The Space front matter in docs/app.md (and README.md once it carries it) agrees with the pinned gradio."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import gradio
import yaml

ROOT = Path(__file__).resolve().parents[2]


def pinned_gradio() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pin = next(d for d in deps if re.match(r"gradio(\[.*\])?==", d))
    return pin.split("==", 1)[1]


def front_matter(text: str) -> dict:
    match = re.search(r"^---\n(.*?)\n---", text, re.S | re.M)
    assert match, "no --- front matter block"
    return yaml.safe_load(match.group(1))


def check(card: dict) -> None:
    assert card["sdk"] == "gradio"
    assert str(card["sdk_version"]) == pinned_gradio() == gradio.__version__
    assert (ROOT / card["app_file"]).is_file()
    assert card["hf_oauth"] is True and card["suggested_hardware"]


def test_docs_front_matter_matches_pins():
    block = re.search(
        r"```yaml\n(---\n.*?\n---)\n```", (ROOT / "docs" / "app.md").read_text(encoding="utf-8"), re.S
    )
    assert block
    check(front_matter(block.group(1)))


def test_readme_front_matter_when_present():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if readme.startswith("---\n"):
        check(front_matter(readme))


def test_requirements_leave_gradio_and_spaces_to_the_space():
    lines = [ln.split("==")[0].strip().lower() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "gradio" not in lines and "spaces" not in lines
