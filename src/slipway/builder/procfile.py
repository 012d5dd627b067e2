"""The Procfile: ``TYPE: command`` per line, honcho's rule, errors named by line number."""

from __future__ import annotations

import re

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
RELEASE_TYPES = ("release", "postdeploy")  # run before traffic moves, not as processes
MAX_SIZE = 64 * 1024


class ProcfileError(Exception):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    """Process types to commands, in file order; comments and blank lines skipped."""
    if len(text) > MAX_SIZE:
        raise ProcfileError(f"the Procfile is over {MAX_SIZE // 1024} KB")
    types: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            raise ProcfileError(
                f"Procfile line {number} is not `TYPE: command`: {raw.strip()[:200]!r}"
            )
        name, command = match.group(1), match.group(2).strip()
        if name in types:
            raise ProcfileError(f"Procfile line {number}: the process type {name!r} is repeated")
        types[name] = command
    return types


def split_release_command(types: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """The process types, and the ``release:`` (alias ``postdeploy:``) command apart."""
    found = [t for t in RELEASE_TYPES if t in types]
    if len(found) > 1:
        raise ProcfileError("the Procfile has both release: and postdeploy:; keep one")
    command = types.get(found[0]) if found else None
    return {k: v for k, v in types.items() if k not in RELEASE_TYPES}, command
