"""leases, study settings, audit log

Claims (assignments) and screens (impressions) can expire; studies get a lease length, an archive flag, a
per-rater quota with its completion code / redirect URL; every change to a study is written to ``audit_log``.

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-05

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0004"  # the head of main when this was written
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ASSIGNMENT = "status IN ('open', 'done', 'skipped')"
NEW_ASSIGNMENT = "status IN ('open', 'done', 'skipped', 'expired')"
OLD_IMPRESSION = "status IN ('open', 'voted', 'skipped')"
NEW_IMPRESSION = "status IN ('open', 'voted', 'skipped', 'expired')"


def _status_check(table: str, condition: str) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode rebuilds the table with the new one.
    with op.batch_alter_table(table) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
        batch_op.create_check_constraint("status", condition)


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch_op:
        batch_op.add_column(sa.Column("lease_seconds", sa.Integer(), server_default="1800", nullable=False))
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("quota", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completion_code", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("redirect_url", sa.Text(), nullable=True))
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.add_column(sa.Column("active_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("extra", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE assignments SET active_at = created_at")
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.alter_column("active_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index("ix_assignments_lease", ["study_id", "status", "active_at"], unique=False)
    _status_check("assignments", NEW_ASSIGNMENT)
    _status_check("impressions", NEW_IMPRESSION)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("study_name", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_study_id"))
    op.drop_table("audit_log")
    op.execute("UPDATE impressions SET status = 'skipped' WHERE status = 'expired'")
    op.execute("UPDATE assignments SET status = 'skipped' WHERE status = 'expired'")
    _status_check("impressions", OLD_IMPRESSION)
    _status_check("assignments", OLD_ASSIGNMENT)
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.drop_index("ix_assignments_lease")
        batch_op.drop_column("extra")
        batch_op.drop_column("active_at")
    with op.batch_alter_table("studies") as batch_op:
        for column in ("redirect_url", "completion_code", "quota", "archived_at", "lease_seconds"):
            batch_op.drop_column(column)
