"""`slipway run` through the real CLI, API, runner and `slipwayd up`: exit statuses, a
pseudo-terminal (prompt, resize, Ctrl-C), byte-exact pipes, uploads, detached one-offs,
`ps`, the idle timeout, and the add-on's database from a one-off."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

from tests.builds_support import SLIPWAY, Platform, server
from tests.services import wait_until

pytestmark = pytest.mark.timeout(300)
IDLE_TIMEOUT = 4  # seconds: the platform's in these tests


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("run"),
        settings={"SLIPWAY_RUN_IDLE_TIMEOUT": str(IDLE_TIMEOUT)},
    )
    platform.start()
    app = platform.new_app(
        "tools",
        None,
        {
            "Procfile": "web: python server.py\n",
            "server.py": server("tools"),
            "requirements.txt": "psycopg[binary]>=3.1\n",
        },
    )
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    platform.answers("tools", "tools pid=")
    yield platform
    platform.stop()


def run(
    platform: Platform, *argv: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [SLIPWAY, "run", "-a", "tools", *argv],
        input=stdin if stdin is not None else b"",
        env=platform.env,
        capture_output=True,
        timeout=timeout,
    )


def test_the_exit_status_is_the_processs(platform: Platform) -> None:
    assert run(platform, "--", "python", "-c", "import sys; sys.exit(3)").returncode == 3
    assert run(platform, "exit 7").returncode == 7  # one argument: a shell command line
    assert run(platform, "kill -9 $$").returncode == 128 + 9
    assert run(platform, "true").returncode == 0


def test_the_one_off_has_the_apps_environment_and_separate_streams(platform: Platform) -> None:
    result = run(
        platform, "-e", "GREETING=hi", "--", "echo $GREETING $DYNO $APP; id -un; echo oops >&2"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("hi run.") and lines[0].endswith(" tools")
    if os.geteuid() == 0:
        assert lines[1] != "root"  # the app's user
    assert result.stderr == b"oops\n"


def test_piped_stdin_and_stdout_are_byte_exact(platform: Platform) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    result = run(platform, "cat", stdin=payload, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stdout) == len(payload)
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(payload).digest()
    # End of input reaches the process: wc counts and exits.
    assert run(platform, "wc -c", stdin=b"12345").stdout.split() == [b"5"]


def read_until(fd: int, wanted: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{wanted!r} not seen in {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                raise AssertionError(f"EOF before {wanted!r}; got {seen[-500:]!r}") from None
    return seen


def test_a_terminal_gets_a_prompt_resizes_and_ctrl_c(platform: Platform) -> None:
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(secondary)
    cli = subprocess.Popen(
        ["setsid", "--ctty", SLIPWAY, "run", "-a", "tools", "bash"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**platform.env, "TERM": "xterm", "PS1": "ignored"},
    )
    try:
        read_until(primary, b"as run.")
        read_until(primary, b"$ ")  # bash's first prompt: it drops what is typed before
        os.write(primary, b"export PS1='prompt> '; stty size\r")
        read_until(primary, b"24 80")
        fcntl.ioctl(primary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        # readline drops what is typed while it handles SIGWINCH (in any terminal): ask
        # again until the answer comes.
        for attempt in range(5):
            os.write(primary, b"stty size\r")
            try:
                read_until(primary, b"50 132", timeout=2)
                break
            except AssertionError:
                assert attempt < 4, "the new size never reached the one-off"
        os.write(primary, b"sleep 30; echo slept\r")
        time.sleep(1)
        started = time.monotonic()
        os.write(primary, b"\x03")  # Ctrl-C, as a terminal sends it
        os.write(primary, b"echo after-$((40 + 2))\r")
        read_until(primary, b"after-42")
        assert time.monotonic() - started < 5
        os.write(primary, b"exit 4\r")
        assert cli.wait(20) == 4
        assert termios.tcgetattr(secondary) == before  # the local terminal is restored
    finally:
        if cli.poll() is None:
            cli.kill()
        os.close(primary)
        os.close(secondary)


def ps_names(platform: Platform) -> dict[str, dict[str, object]]:
    found = json.loads(platform.run(SLIPWAY, "ps", "-a", "tools", "--json"))
    return {p["name"]: p for p in found}


def test_ps_lists_one_offs_and_a_client_that_goes_stops_its_one_off(platform: Platform) -> None:
    cli = subprocess.Popen(
        [SLIPWAY, "run", "-a", "tools", "while true; do echo tick; sleep 0.5; done"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=platform.env,
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == b"tick\n"
    running = [p for p in ps_names(platform).values() if p["type"] == "run"]
    assert len(running) == 1 and running[0]["state"] == "up"
    pid = running[0]["pid"]
    assert isinstance(pid, int)
    cli.kill()  # the client disconnects halfway
    cli.wait()
    wait_until(
        lambda: not any(p["type"] == "run" for p in ps_names(platform).values()),
        20,
        "the one-off to leave ps",
    )
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, "the one-off's process to end")


def test_a_detached_one_off_logs_as_run_n(platform: Platform) -> None:
    started = time.monotonic()
    result = run(platform, "--detached", "--", "echo detached-hello; sleep 2; exit 5")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    name = result.stderr.decode().split()[0]
    assert name.startswith("run.")
    assert name in ps_names(platform)
    line = platform.wait_for_log("tools", "detached-hello")
    assert line["i"] == name
    platform.wait_for_log("tools", f"{name} exited with status 5")
    wait_until(lambda: name not in ps_names(platform), 10, "the detached one-off to leave ps")


def test_files_are_uploaded_into_tmp_uploads(platform: Platform, tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    data = directory / "data.bin"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    notes = directory / "notes.txt"
    notes.write_text("hello\n")
    result = run(
        platform,
        "-f",
        str(data),
        "--file",
        str(notes),
        "--",
        "sha256sum /tmp/uploads/data.bin; cat $UPLOADS/notes.txt; "
        "stat -c %U /tmp/uploads/notes.txt",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].split()[0] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert lines[1] == "hello"
    if os.geteuid() == 0:
        assert lines[2] != "root"
        assert not os.path.exists("/tmp/uploads/data.bin")  # a mount of the one-off's own
    missing = run(platform, "-f", str(directory / "missing"), "--", "true")
    assert missing.returncode != 0
    assert b"missing" in missing.stderr


def test_a_silent_one_off_is_stopped_after_the_idle_timeout(platform: Platform) -> None:
    started = time.monotonic()
    result = run(platform, "sleep 60")
    assert result.returncode == 255
    assert f"no input or output for {IDLE_TIMEOUT} s".encode() in result.stderr
    assert time.monotonic() - started < IDLE_TIMEOUT + 10


def test_a_one_off_reaches_the_postgresql_addon(platform: Platform) -> None:
    added = platform.run(SLIPWAY, "addons", "add", "postgresql", "-a", "tools", "--json")
    version = json.loads(added)["release_version"]
    wait_until(
        lambda: platform.releases("tools")[0]["version"] == version, 30, "the add-on's release"
    )
    script = (
        "import os, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL']) as c:\n"
        "    c.execute('CREATE TABLE IF NOT EXISTS notes (body text)')\n"
        "    c.execute(\"INSERT INTO notes VALUES ('from a one-off')\")\n"
        "    print(c.execute('SELECT count(*) FROM notes').fetchone()[0])\n"
    )
    result = run(platform, "--", "python", "-c", script)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"1"


def test_bad_run_requests_are_refused_clearly(platform: Platform) -> None:
    for argv, message in [
        (("-e", "NOEQUALS", "--", "true"), b"use NAME=VALUE"),
        (("-e", "1BAD=x", "--", "true"), b"invalid variable name"),
        (("-s", "XXL", "--", "true"), b"size"),
    ]:
        result = run(platform, *argv)
        assert result.returncode == 1, (argv, result)
        assert message in result.stderr, (argv, result.stderr)
    nope = subprocess.run(
        [SLIPWAY, "run", "-a", "nope", "true"], env=platform.env, capture_output=True, timeout=60
    )
    assert nope.returncode == 1 and b"no app named 'nope'" in nope.stderr
    platform.run(SLIPWAY, "apps", "create", "empty")
    empty = subprocess.run(
        [SLIPWAY, "run", "-a", "empty", "true"], env=platform.env, capture_output=True, timeout=60
    )
    assert empty.returncode == 1 and b"no release yet" in empty.stderr
    logged_out = {
        **platform.env,
        "SLIPWAY_API_TOKEN": "slp_wrong",
        "SLIPWAY_API_URL": platform.api_url,
    }
    wrong = subprocess.run(
        [SLIPWAY, "run", "-a", "tools", "true"], env=logged_out, capture_output=True, timeout=60
    )
    assert wrong.returncode == 1 and b"invalid or revoked API token" in wrong.stderr


def test_a_one_off_runs_on_through_an_upgrade_of_the_platform(platform: Platform) -> None:
    """HUP upgrades the API and the runner the session goes through: it is not cut, and
    the next one-off goes to the new runner."""
    cli = subprocess.Popen(
        [SLIPWAY, "run", "-a", "tools", "for i in $(seq 1 16); do echo tick $i; sleep 0.5; done"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=platform.env,
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == b"tick 1\n"
    platform.upgrade()
    rest, _ = cli.communicate(timeout=60)
    assert cli.returncode == 0
    assert rest.decode().split("\n")[-2] == "tick 16"
    assert run(platform, "echo again").stdout == b"again\n"
