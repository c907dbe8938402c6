"""arena: the "arena" study kind, contestants, battles; tstamp/anony on imported battles

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-05

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

KINDS_BEFORE = "kind IN ('preference', 'curation')"
KINDS_AFTER = "kind IN ('preference', 'curation', 'arena')"


def _study_kinds(condition: str) -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_studies_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_studies_kind"), sa.text(condition))


# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    _study_kinds(KINDS_AFTER)
    op.create_table(
        "arena_contestants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('local', 'remote')", name=op.f("ck_arena_contestants_kind")),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["systems.id"],
            name=op.f("fk_arena_contestants_system_id_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_contestants")),
        sa.UniqueConstraint("system_id", name=op.f("uq_arena_contestants_system_id")),
    )
    op.create_table(
        "arena_battles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("visitor", sa.String(length=64), nullable=False),
        sa.Column("left_system_id", sa.Integer(), nullable=False),
        sa.Column("right_system_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("impression_id", sa.Integer(), nullable=True),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("left_seconds", sa.Float(), nullable=True),
        sa.Column("right_seconds", sa.Float(), nullable=True),
        sa.Column("left_error", sa.Text(), nullable=True),
        sa.Column("right_error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("moderation", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "moderation IN ('pending', 'approved', 'flagged')", name=op.f("ck_arena_battles_moderation")
        ),
        sa.CheckConstraint("status IN ('ready', 'failed')", name=op.f("ck_arena_battles_status")),
        sa.ForeignKeyConstraint(
            ["impression_id"],
            ["impressions.id"],
            name=op.f("fk_arena_battles_impression_id_impressions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_arena_battles_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["left_system_id"], ["systems.id"], name=op.f("fk_arena_battles_left_system_id_systems")
        ),
        sa.ForeignKeyConstraint(
            ["right_system_id"], ["systems.id"], name=op.f("fk_arena_battles_right_system_id_systems")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_arena_battles_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_battles")),
        sa.UniqueConstraint("impression_id", name=op.f("uq_arena_battles_impression_id")),
        sa.UniqueConstraint("token", name=op.f("uq_arena_battles_token")),
    )
    with op.batch_alter_table("arena_battles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_arena_battles_study_id"), ["study_id"], unique=False)
        batch_op.create_index("ix_arena_battles_visitor", ["study_id", "visitor", "created_at"], unique=False)

    with op.batch_alter_table("imported_battles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tstamp", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("anony", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("imported_battles", schema=None) as batch_op:
        batch_op.drop_column("anony")
        batch_op.drop_column("tstamp")

    with op.batch_alter_table("arena_battles", schema=None) as batch_op:
        batch_op.drop_index("ix_arena_battles_visitor")
        batch_op.drop_index(batch_op.f("ix_arena_battles_study_id"))

    op.drop_table("arena_battles")
    op.drop_table("arena_contestants")
    _study_kinds(KINDS_BEFORE)
