"""The control plane's store: SQLAlchemy 2 models, operations and Alembic migrations.

SQLite by default, PostgreSQL through ``SLIPWAY_DATABASE_URL``; the schema changes only through
migrations.

Only the API and ``slipwayd admin`` (users, migrations) open it. The CLI, the gateway and the
builder import only its rules (``names``, ``errors``), which need neither a database nor
SQLAlchemy.
"""
