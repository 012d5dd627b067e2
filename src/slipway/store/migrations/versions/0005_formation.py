"""an app's formation (how many instances of each process type run) and its runner; a
release's status (how its start went)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("formation", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("runner", sa.String(length=40), nullable=True))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("status")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("runner")
        batch_op.drop_column("formation")
