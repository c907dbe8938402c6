"""The left and right outputs of an impression (and their systems): one join, used by the rater's screen,
the statistics and the exports."""

from __future__ import annotations

from sqlalchemy import Select, Table

from db.models import Impression, Output, System

IMPRESSIONS, OUTPUTS, SYSTEMS = Impression.__table__, Output.__table__, System.__table__
LEFT_OUTPUT, RIGHT_OUTPUT = OUTPUTS.alias("left_output"), OUTPUTS.alias("right_output")
LEFT_SYSTEM, RIGHT_SYSTEM = SYSTEMS.alias("left_system"), SYSTEMS.alias("right_system")


def join_sides(query: Select, impressions: Table = IMPRESSIONS, systems: bool = True) -> Select:
    """``query`` joined to the impression's ``LEFT_OUTPUT``/``RIGHT_OUTPUT`` (and ``LEFT_SYSTEM``/``RIGHT_SYSTEM``
    when ``systems``), so callers select ``LEFT_OUTPUT.c.image_hash``, ``LEFT_SYSTEM.c.name`` and so on."""
    query = query.join(LEFT_OUTPUT, LEFT_OUTPUT.c.id == impressions.c.left_output_id).join(
        RIGHT_OUTPUT, RIGHT_OUTPUT.c.id == impressions.c.right_output_id
    )
    if systems:
        query = query.join(LEFT_SYSTEM, LEFT_SYSTEM.c.id == LEFT_OUTPUT.c.system_id).join(
            RIGHT_SYSTEM, RIGHT_SYSTEM.c.id == RIGHT_OUTPUT.c.system_id
        )
    return query
