"""add-ons made by users: their plan, the resource that holds them (a database and role, a
server), and the config variables they set

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("addons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("resource", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("variables", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("addons", schema=None) as batch_op:
        batch_op.drop_column("variables")
        batch_op.drop_column("resource")
        batch_op.drop_column("plan")
