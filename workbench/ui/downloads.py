"""Admin downloads (results and study exports) as private, short-lived files.

Each download is written into its own fresh temp folder (mode 0700, outside the data folder and every served
path). Gradio copies a file a handler returns into its cache under a hash of the file's bytes (seeded per
installation) and hands that URL to the requesting session only; zips also carry a random comment, so their
bytes alone are unguessable too. The private copy is deleted after PRIVATE_TTL_S.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path

PRIVATE_TTL_S = 600.0  # Gradio copies the file into its cache when the handler returns; this is a margin


def safe_name(text: str, fallback: str = "study") -> str:
    """A file-name-safe version of a study name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80] or fallback


def private_path(filename: str) -> Path:
    """A path for ``filename`` in a fresh private folder (mode 0700, outside every served folder), removed
    after PRIVATE_TTL_S."""
    folder = Path(tempfile.mkdtemp(prefix="studio-download-"))
    timer = threading.Timer(PRIVATE_TTL_S, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True})
    timer.daemon = True
    timer.start()
    return folder / filename


def private_zip(filename: str, members: Iterable[tuple[str, bytes | str | Path]]) -> Path:
    """A zip of ``members`` ((name in zip, bytes/text or a file to copy)) in a fresh private folder."""
    path = private_path(filename)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.comment = secrets.token_hex(16).encode()
        for name, data in members:
            if isinstance(data, Path):
                zf.write(data, name)
            else:
                zf.writestr(name, data)
    return path
