"""What the results and export functions read through: the database, the image store and a study's info.

The `Workbench` facade satisfies this protocol. Taking it instead of the facade keeps the imports one way:
`workbench.service` imports `results` and `export`, never the reverse.
"""

from __future__ import annotations

from typing import Any, Protocol

from db.engine import Database
from workbench.image_store import ImageStore
from workbench.lookup import StudyRef


class StudyReader(Protocol):
    """A workbench whose studies can be read (``Workbench`` is one)."""

    db: Database
    images: ImageStore

    def study_info(self, study: StudyRef) -> dict[str, Any]:
        """Name, kind and settings of a study (``Workbench.study_info``)."""
        ...
