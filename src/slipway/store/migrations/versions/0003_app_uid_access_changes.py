"""apps get an immutable uid for their files; access changes for edge services

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 12:40:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=32), nullable=True))
    apps = sa.table("apps", sa.column("id", sa.Integer), sa.column("uid", sa.String))
    connection = op.get_bind()
    for (app_id,) in connection.execute(sa.select(apps.c.id)).all():
        connection.execute(apps.update().where(apps.c.id == app_id).values(uid=uuid.uuid4().hex))
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.alter_column("uid", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_apps_uid"), ["uid"])

    op.create_table(
        "access_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("user_name", sa.String(length=40), nullable=True),
        sa.Column("fingerprint", sa.String(length=60), nullable=True),
        sa.Column("app_name", sa.String(length=48), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("access_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_changes_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_changes_created_at"))
    op.drop_table("access_changes")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_apps_uid"), type_="unique")
        batch_op.drop_column("uid")
