"""The only commands the gateway runs: one table of git verbs, one parser, one validator.

Like gitlab-shell: every accepted command has the same shape (verb + one repository), and
nothing outside the table reaches an upstream. The upstream gets a canonical command built
from the parsed parts, never the client's string.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from slipway.builder.gitshell import GIT_PROTOCOL
from slipway.store.names import APP_NAME, APP_NAME_RULE

# verb -> the access it needs
VERBS = {
    "git-receive-pack": "push",
    "git-upload-pack": "fetch",
    "git-upload-archive": "fetch",
}
MAX_COMMAND = 1024

NOT_GIT = "slipway: only git push and fetch are allowed here"


class Refused(Exception):
    """A command the gateway will not run; the message is shown to the client as is."""


@dataclass(frozen=True)
class GitCommand:
    verb: str  # one of VERBS
    app: str
    user: str | None = None  # who runs it, once authenticated: a push's deployment names them

    @property
    def action(self) -> str:
        return VERBS[self.verb]

    def argv(self, repository: str) -> list[str]:
        """The canonical form: what an upstream's git-shell receives (the repository is the
        app's uid, from the API), and for a push who pushed."""
        pusher = [self.user] if self.user and self.verb == "git-receive-pack" else []
        return [self.verb, repository, self.app, *pusher]


def parse_command(command: str | None) -> GitCommand:
    """A client's exec string as a GitCommand, or Refused with the line to show."""
    if not command or len(command) > MAX_COMMAND:
        raise Refused(NOT_GIT)
    if any(ord(char) < 32 or ord(char) == 127 for char in command):  # \n, \r, NUL, ESC...
        raise Refused(NOT_GIT)
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes, a trailing backslash
        raise Refused(NOT_GIT) from None
    if len(words) >= 2 and words[0] == "git" and f"git-{words[1]}" in VERBS:
        words = [f"git-{words[1]}", *words[2:]]  # `git upload-pack` (Git for Windows)
    if not words or words[0] not in VERBS:
        raise Refused(NOT_GIT)
    if len(words) != 2:
        raise Refused(f"slipway: {words[0]} takes exactly one repository")
    return GitCommand(words[0], parse_repository(words[1]))


def parse_repository(path: str) -> str:
    """``app``, ``app.git``, ``/app`` or ``/app.git`` to the app name; nothing else."""
    name = path.removeprefix("/")
    name = name.removesuffix(".git")
    if not APP_NAME.fullmatch(name):
        raise Refused(
            f"slipway: {path!r} is not a repository here: no app can be named {name[:60]!r} "
            f"(app names are {APP_NAME_RULE}); use APP.git"
        )
    return name


def git_protocol(value: str | None) -> str | None:
    """The client's GIT_PROTOCOL, if it is a plain ``version=N``; else dropped."""
    if value is not None and GIT_PROTOCOL.fullmatch(value):
        return value
    return None
