"""client webhooks (the caller's webhook_url and its delivery outbox) and speaker names

Revision ID: 0002_client_webhooks
Revises: 0001_jobs
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_client_webhooks"
down_revision: str | None = "0001_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("webhook_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("notify_state", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("notify_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("notify_next_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("speaker_names", JsonDoc, nullable=True))
    op.create_index("ix_jobs_notify", "jobs", ["notify_state", "notify_next_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_notify", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("speaker_names")
        batch.drop_column("notify_next_at")
        batch.drop_column("notify_attempts")
        batch.drop_column("notify_state")
        batch.drop_column("webhook_url")
