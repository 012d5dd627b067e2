"""`slipway env list` on a terminal: a collaborator's value cannot drive the reader's terminal
(escape sequences show as text); piped and --json output stay exact."""

from __future__ import annotations

import json
import subprocess

from tests.control_support import SLIPWAY, ApiServer, Cli
from tests.terminal import on_terminal

VALUES = {
    "COLOUR": "\x1b[31mred\nFAKE=1",  # ESC, and a newline that would forge a line
    "OTHERS": "bell\x07 del\x7f csi\x9b2J nul-less tab\t cr\r!",  # C0, DEL, C1
    "PLAIN": "été: a b=c \\x1b",  # printable text, backslashes included, stays as it is
}
ESCAPED = (
    "COLOUR=\\x1b[31mred\\nFAKE=1\n"
    "OTHERS=bell\\x07 del\\x7f csi\\x9b2J nul-less tab\\t cr\\r!\n"
    "PLAIN=été: a b=c \\x1b\n"
)


def test_env_list_escapes_control_characters_only_on_a_terminal(
    cli: Cli, sqlite_api: ApiServer
) -> None:
    token = sqlite_api.create_user("alice")
    cli.ok("login", "--api-url", sqlite_api.url, "--token", token)
    api = sqlite_api.client(token)
    assert api.post("/v1/apps", json={"name": "shop"}).status_code == 201
    assert api.patch("/v1/apps/shop/env", json={"env": VALUES}).status_code == 200

    status, shown = on_terminal([str(SLIPWAY), "env", "list", "-a", "shop"], cli.env())
    assert status == 0, shown
    assert shown == ESCAPED
    # In bytes: text mode would turn the \r into a newline.
    piped = subprocess.run(
        [str(SLIPWAY), "env", "list", "-a", "shop"], capture_output=True, env=cli.env(), check=True
    )
    assert piped.stdout.decode() == "".join(f"{k}={v}\n" for k, v in VALUES.items())
    assert json.loads(cli.ok("env", "list", "-a", "shop", "--json")) == VALUES
