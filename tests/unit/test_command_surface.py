"""`slipway` and `slipwayd` list the commands of ARCHITECTURE.md; unbuilt ones fail honestly."""

from __future__ import annotations

import subprocess
import sys

import pytest

SLIPWAY_COMMANDS = [
    "login",
    "logout",
    "whoami",
    "keys",
    "apps",
    "collaborators",
    "env",
    "deployments",
    "logs",
    "run",
    "db-tunnel",
    "stats",
    "scale",
    "restart",
    "rollback",
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
    ],
)
def test_groups_list_their_subcommands(group: str, subcommands: list[str]) -> None:
    result = run("slipway", group, "--help")
    assert result.returncode == 0
    for sub in subcommands:
        assert f"│ {sub} " in result.stdout


@pytest.mark.parametrize(
    ("program", "args", "message"),
    [
        ("slipway", ["logs", "-n", "10", "-f"], "slipway logs: not implemented yet\n"),
        ("slipway", ["db-tunnel", "-p", "10000"], "slipway db-tunnel: not implemented yet\n"),
        ("slipwayd", ["runner"], "slipwayd runner: not implemented yet\n"),
    ],
)
def test_an_unbuilt_command_says_so_and_fails(program: str, args: list[str], message: str) -> None:
    result = run(program, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == message
