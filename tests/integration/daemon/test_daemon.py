"""`slipwayd migrate` and `slipwayd admin create-user`, run as an administrator would."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import text

from slipway.api.app import create_app
from slipway.config import Settings
from slipway.store.db import Database
from slipway.store.migrate import alembic_config, is_current

SLIPWAYD = Path(sys.executable).parent / "slipwayd"


def slipwayd(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    return subprocess.run(
        [str(SLIPWAYD), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_migrate_then_create_users(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = slipwayd(data, "migrate")
    assert first.returncode == 0, first.stderr
    assert slipwayd(data, "migrate").returncode == 0  # idempotent
    database = Database(f"sqlite:///{data / 'slipway.db'}")
    assert is_current(database.engine)
    assert stat.S_IMODE((data / "slipway.db").stat().st_mode) == 0o600

    created = slipwayd(data, "admin", "create-user", "alice", "--admin")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("slp_")  # only the token

    again = slipwayd(data, "admin", "create-user", "alice")
    assert again.returncode == 1
    assert again.stderr.endswith("slipwayd admin create-user: the user 'alice' already exists\n")
    bad = slipwayd(data, "admin", "create-user", "Alice!")
    assert bad.returncode == 1 and "invalid user name 'Alice!'" in bad.stderr


def test_the_internal_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'slipway.db'}")
    first = create_app(Settings(data_dir=tmp_path / "data"), database)
    secret = tmp_path / "data" / "internal_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert first.state.internal_secret == secret.read_text().strip()
    assert len(first.state.internal_secret) >= 40
    second = create_app(Settings(data_dir=tmp_path / "data"), database)
    assert second.state.internal_secret == first.state.internal_secret


def test_migrating_adopts_the_repositories_of_an_earlier_version(tmp_path: Path) -> None:
    """Before 0003 repositories were named after their app: they get its uid, keeping
    their code; one whose app is gone keeps its name and is served to nobody."""
    data = tmp_path / "data"
    database = Database(f"sqlite:///{data / 'slipway.db'}")
    command.upgrade(alembic_config(database.engine.url.render_as_string()), "0002")
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO apps (name, created_at) VALUES ('shop', '2026')"))
    for name in ("shop", "gone"):
        subprocess.run(["git", "init", "-q", "--bare", str(data / "repos" / f"{name}.git")])
    migrated = slipwayd(data, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "repository of shop renamed after its uid" in migrated.stdout
    with database.engine.connect() as connection:
        uid = connection.execute(text("SELECT uid FROM apps")).scalar_one()
    assert (data / "repos" / f"{uid}.git" / "HEAD").exists()
    assert not (data / "repos" / "shop.git").exists() and (data / "repos" / "gone.git").exists()
    database.dispose()
