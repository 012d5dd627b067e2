"""`slipway` and `slipwayd` list the commands of ARCHITECTURE.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SLIPWAY_COMMANDS = [
    "login",
    "logout",
    "whoami",
    "keys",
    "apps",
    "collaborators",
    "env",
    "addons",
    "deployments",
    "logs",
    "run",
    "db-tunnel",
    "stats",
    "scale",
    "restart",
    "rollback",
    "ps",
    "open",
    "completion",
]
SLIPWAYD_COMMANDS = [
    "up",
    "api",
    "gateway",
    "worker",
    "runner",
    "git-shell",
    "hook",
    "admin",
    "migrate",
]


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    module = "slipway.cli.main" if program == "slipway" else "slipway.daemon"
    code = f"import sys; from {module} import app; sys.argv[0] = {program!r}; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("program", "commands"), [("slipway", SLIPWAY_COMMANDS), ("slipwayd", SLIPWAYD_COMMANDS)]
)
def test_help_lists_every_command(program: str, commands: list[str]) -> None:
    result = run(program, "--help")
    assert result.returncode == 0
    listed = {
        line.split()[1]
        for line in result.stdout.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1
    }
    assert set(commands) <= listed


@pytest.mark.parametrize(
    ("group", "subcommands"),
    [
        ("keys", ["add", "list", "remove"]),
        ("apps", ["create", "list", "info", "destroy"]),
        ("collaborators", ["add", "list", "remove"]),
        ("env", ["list", "set", "unset"]),
        ("tokens", ["list", "create", "revoke"]),
        ("addons", ["add", "list", "remove"]),
    ],
)
def test_groups_list_their_subcommands(group: str, subcommands: list[str]) -> None:
    result = run("slipway", group, "--help")
    assert result.returncode == 0
    for sub in subcommands:
        assert f"│ {sub} " in result.stdout


def test_make_up_installs_only_what_running_needs() -> None:
    """A newcomer's `make up` does not wait for pytest, mypy and schemathesis."""
    root = Path(__file__).parents[3]
    planned = subprocess.run(
        ["make", "-n", "-B", "up"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in planned.splitlines() if "pip install" in line]
    assert any(line.endswith(" -e .") for line in installs), installs
    assert not any("[dev]" in line for line in installs), installs
    assert "exec .venv/bin/slipwayd up" in planned


@pytest.mark.parametrize("command", ["slipway", "slipwayd"])
def test_both_commands_say_their_version(command: str) -> None:
    from slipway import __version__

    shown = subprocess.run(
        [str(Path(sys.executable).parent / command), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == f"{command} {__version__}\n"


def test_up_takes_the_options_the_readme_shows() -> None:
    shown = run("slipwayd", "up", "--help").stdout
    for option in ("--data-dir", "--host", "--http-port", "--ssh-port", "--redis-url"):
        assert option in shown
