"""Running a command on a pseudo-terminal, as a person at a terminal would, for the code that
behaves differently there (escaping output, asking for a passphrase)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def on_terminal(
    argv: list[str], env: dict[str, str], answer: tuple[bytes, bytes] | None = None
) -> tuple[int, str]:
    """Exit status and everything written to the terminal (newlines as ``\\n``). ``answer``:
    type its second part once its first part shows (e.g. a passphrase prompt). The command
    gets the terminal as its controlling one (``setsid -c``), as ssh-keygen needs for
    /dev/tty."""
    main, side = pty.openpty()
    process = subprocess.Popen(
        ["setsid", "--wait", "--ctty", *argv], stdin=side, stdout=side, stderr=side, env=env
    )
    os.close(side)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while True:
            ready, _, _ = select.select([main], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"{argv}: no end after 60 s; so far: {output!r}"
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: every process holding the terminal is gone
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and answer[0] in output:
                os.write(main, answer[1])
                answer = None
        return process.wait(30), output.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()
