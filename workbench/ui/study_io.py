"""Admin uploads and downloads: import a manifest or a zip (manifest + images) into a study; export a study.

The parsing and validation live in workbench.importers / workbench.export; this module only unpacks the upload
safely and picks the right importer.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.export import export_study
from workbench.importers import ImportFailed, import_source
from workbench.studies import StudySpec
from workbench.ui.downloads import private_zip, safe_name

MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_MEMBERS = 200_000
MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "metadata.json")


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract `archive` into `dest`, refusing absolute paths, '..', links, zip bombs, and archives that cannot be
    read (not a zip, encrypted, an unsupported compression method) with a clear message."""
    try:
        _extract_checked(archive, dest)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive.name} is not a readable zip file ({exc})") from exc
    except NotImplementedError as exc:  # zipfile: "That compression method is not supported"
        raise ValueError(f"{archive.name}: {exc}; use plain deflate compression") from exc
    except RuntimeError as exc:  # (after its subclass above) "File ... is encrypted, password required"
        raise ValueError(
            f"{archive.name}: encrypted zips are not supported; upload it without a password"
        ) from exc


def _extract_checked(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"the zip holds {len(members)} files; at most {MAX_MEMBERS} are accepted")
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValueError("the zip unpacks to more than 4 GiB")
        for m in members:
            name = PurePosixPath(m.filename)
            if name.is_absolute() or ".." in name.parts or (m.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"unsafe path in the zip: {m.filename!r}")
        zf.extractall(dest)


def _find_manifest(root: Path) -> Path:
    """The manifest at the top of the zip (or inside its single top-level folder)."""
    for folder in (root, *[p for p in root.iterdir() if p.is_dir()]):
        for name in MANIFEST_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise ValueError(f"no manifest in the zip: expected one of {', '.join(MANIFEST_NAMES)} at its top level")


def import_upload(
    wb: Any, study: str, upload: str | Path, create: StudySpec | None = None, actor: str = "admin"
) -> dict[str, Any]:
    """Import an uploaded .jsonl/.csv manifest, fine-tuning metadata.json, or a .zip holding one plus images,
    into an existing study or (``create``) a new one made in the same transaction."""
    upload = Path(upload)
    if upload.suffix.lower() != ".zip":
        return _import_file(wb, study, upload, create, actor)
    with tempfile.TemporaryDirectory(prefix="study-import-") as tmp:
        _safe_extract(upload, Path(tmp))
        try:
            return _import_file(wb, study, _find_manifest(Path(tmp)), create, actor)
        except ImportFailed as exc:  # name files as the admin knows them: inside their zip, not a temp folder
            raise ImportFailed(str(exc).replace(str(Path(tmp).resolve()) + "/", f"{upload.name}/").replace(
                tmp + "/", f"{upload.name}/")) from exc  # fmt: skip


def _import_file(wb: Any, study: str, path: Path, create: StudySpec | None, actor: str) -> dict[str, Any]:
    if path.suffix.lower() not in (".json", ".jsonl", ".csv"):
        raise ValueError(
            f"{path.name}: upload a .jsonl/.csv manifest, a metadata.json, or a .zip with one of them"
        )
    return import_source(wb, study, path, create=create, actor=actor)


def export_zip(wb: Any, study: str) -> Path:
    """All tables of the study (CSV and JSONL) in one private zip (see workbench.ui.downloads)."""
    with tempfile.TemporaryDirectory(prefix="study-export-") as tmp:
        files = export_study(wb, study, tmp, formats=("csv", "jsonl"))
        return private_zip(f"export-{safe_name(study)}.zip", [(f.name, f) for f in files])
