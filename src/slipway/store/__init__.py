"""The control plane's store: SQLAlchemy 2 models, operations and Alembic migrations.

SQLite by default, PostgreSQL through ``SLIPWAY_DATABASE_URL``; the schema changes only through
migrations.
"""
