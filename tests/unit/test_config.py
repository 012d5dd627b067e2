from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from slipway.config import load_settings


def test_environment_is_read_with_the_slipway_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SLIPWAY_HTTP_PORT", "9000")
    monkeypatch.setenv("SLIPWAY_SSH_PORT", "2022")
    monkeypatch.setenv("SLIPWAY_REDIS_URL", "redis://example:1/2")
    monkeypatch.setenv("SLIPWAY_DATABASE_URL", "postgresql+psycopg://db/slipway")
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert (settings.http_port, settings.ssh_port) == (9000, 2022)
    assert settings.redis_url == "redis://example:1/2"
    assert settings.effective_database_url == "postgresql+psycopg://db/slipway"


def test_flags_win_over_environment_and_none_means_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLIPWAY_HTTP_PORT", "9000")
    monkeypatch.setenv("SLIPWAY_SSH_PORT", "2022")
    settings = load_settings(http_port=9100, ssh_port=None)
    assert (settings.http_port, settings.ssh_port) == (9100, 2022)


def test_defaults_put_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATA_DIR", "DATABASE_URL", "REDIS_URL", "HTTP_PORT", "SSH_PORT"):
        monkeypatch.delenv(f"SLIPWAY_{name}", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.data_dir == tmp_path / "slipway"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'slipway' / 'slipway.db'}"
    assert settings.redis_url is None
    assert (settings.http_port, settings.ssh_port) == (8080, 2222)


@pytest.mark.parametrize("value", ["0", "70000", "http", "-1"])
def test_a_bad_port_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SLIPWAY_SSH_PORT", value)
    with pytest.raises(ValidationError, match="ssh_port"):
        load_settings()
