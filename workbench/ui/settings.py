"""Run-time settings of the Gradio app (parsed by app.py, injected into build_demo)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def on_hf_space() -> bool:
    """True when running inside a Hugging Face Space (the runtime sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


@dataclass
class AppSettings:
    """Everything build_demo needs besides the editor and the workbench."""

    host: str = "127.0.0.1"
    port: int = 7860
    db_url: str | None = None
    model: str | None = None
    data_dir: Path = Path("data")
    # Admin tab: a password from the environment; on a Space, membership of this HF organisation also counts.
    admin_password: str | None = field(
        default_factory=lambda: os.environ.get("STUDIO_ADMIN_PASSWORD") or None
    )
    admin_org: str | None = field(default_factory=lambda: os.environ.get("STUDIO_ADMIN_ORG") or None)
    on_space: bool = field(default_factory=on_hf_space)
    max_file_size: str = "20mb"
    demo_study: bool = True  # create the demo studies on first start
    examples: list[list[str]] = field(default_factory=list)  # Edit-tab examples: [image path, instruction]
    # The loaded model's model.edit_settings.EditSettings, read from its folder before the weights load;
    # None: taken from the editor itself.
    edit_settings: Any = None
    # Self sign-up on the Rate tab; with False only raters added by an admin can rate.
    open_signup: bool = field(default_factory=lambda: os.environ.get("STUDIO_OPEN_SIGNUP", "1") != "0")

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
