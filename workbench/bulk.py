"""Bulk-build large studies fast (core INSERTs, one transaction) for load tests and benchmarks.

The rows are exactly what ``Workbench.add_item``/``next_item`` would create; only the per-row ORM overhead and
the image decoding are skipped (every item reuses the same few stored images).
"""

from __future__ import annotations

import io
import random

from PIL import Image
from sqlalchemy import insert, select

from db.models import Assignment, Impression, Item, Output, Rater, Study
from workbench.service import Workbench


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value % 256, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


def bulk_items(
    wb: Workbench,
    study: str,
    n_items: int,
    systems: tuple[str, ...] = ("a", "b", "c"),
    k: int = 3,
    seed: int = 0,
) -> list[int]:
    """Create a preference study with ``n_items`` items (one output per system); returns the item ids."""
    wb.create_study(study, kind="preference", k=k)
    source = wb.images.put(_png(0))
    hashes = [wb.images.put(_png(i + 1)) for i in range(len(systems))]
    rng = random.Random(seed)

    def write(s) -> list[int]:  # Session
        st = s.scalars(select(Study).where(Study.name == study)).one()
        system_ids = [wb.system_id(s, st.id, name) for name in systems]
        item_ids = s.scalars(
            insert(Item).returning(Item.id, sort_by_parameter_order=True),
            [
                {"study_id": st.id, "source_hash": source, "instruction": f"edit {i}", "language": "en",
                 "is_gold": False, "assigned_count": 0, "order_key": rng.random()}
                for i in range(n_items)
            ],
        ).all()  # fmt: skip
        s.execute(
            insert(Output),
            [
                {"item_id": i, "system_id": sid, "image_hash": h}
                for i in item_ids
                for sid, h in zip(system_ids, hashes, strict=True)
            ],
        )
        return list(item_ids)

    return wb.db.run_write(write)


def bulk_impressions(wb: Workbench, study: str, n_items: int, raters: int = 4) -> list[tuple[int, str]]:
    """A study where each of ``raters`` raters holds one open impression on every item.

    Returns ``(impression_id, rater_handle)`` pairs, ``n_items * raters`` of them, ready for ``submit_vote``.
    """
    item_ids = bulk_items(wb, study, n_items, systems=("a", "b"), k=raters)
    handles = [f"{study}-r{j}" for j in range(raters)]
    for handle in handles:
        wb.add_rater(handle)

    def write(s) -> list[tuple[int, str]]:  # Session
        st = s.scalars(select(Study).where(Study.name == study)).one()
        rater_ids = [s.scalars(select(Rater.id).where(Rater.handle == h)).one() for h in handles]
        outputs = dict.fromkeys(item_ids)
        for item_id, output_id in s.execute(
            select(Output.item_id, Output.id).where(Output.item_id.in_(item_ids))
        ):
            outputs[item_id] = (outputs[item_id] or ()) + (output_id,)
        slots = [(item_id, j) for item_id in item_ids for j in range(raters)]
        assignment_ids = s.scalars(
            insert(Assignment).returning(Assignment.id, sort_by_parameter_order=True),
            [{"study_id": st.id, "rater_id": rater_ids[j], "item_id": i, "status": "open"} for i, j in slots],
        ).all()
        impression_ids = s.scalars(
            insert(Impression).returning(Impression.id, sort_by_parameter_order=True),
            [
                {"study_id": st.id, "rater_id": rater_ids[j], "item_id": i, "assignment_id": a,
                 "left_output_id": outputs[i][j % 2], "right_output_id": outputs[i][1 - j % 2], "status": "open"}
                for (i, j), a in zip(slots, assignment_ids, strict=True)
            ],
        ).all()  # fmt: skip
        s.execute(Item.__table__.update().where(Item.study_id == st.id).values(assigned_count=raters))
        return [(imp, handles[j]) for imp, (_i, j) in zip(impression_ids, slots, strict=True)]

    return wb.db.run_write(write)
