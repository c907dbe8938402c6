"""rater sessions: a recruiting platform's study and session ids per rater and study

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-05

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rater_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("external_study", sa.String(length=100), nullable=False),
        sa.Column("session", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rater_id"], ["raters.id"], name=op.f("fk_rater_sessions_rater_id_raters")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_rater_sessions_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rater_sessions")),
        sa.UniqueConstraint(
            "study_id",
            "rater_id",
            "platform",
            "session",
            name=op.f("uq_rater_sessions_study_id_rater_id_platform_session"),
        ),
    )
    with op.batch_alter_table("rater_sessions") as batch_op:
        batch_op.create_index(batch_op.f("ix_rater_sessions_rater_id"), ["rater_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rater_sessions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_rater_sessions_rater_id"))
    op.drop_table("rater_sessions")
