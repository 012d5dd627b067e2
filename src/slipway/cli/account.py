"""``login``, ``logout``, ``whoami`` and ``keys``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from slipway.cli import config
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import JsonOption
from slipway.cli.output import console, show

DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")


def login(
    api_url: Annotated[
        str, typer.Option("--api-url", help="e.g. http://localhost:8080", envvar="SLIPWAY_API_URL")
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="An API token (slipwayd admin create-user prints one); asked for when not given.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check an API URL and token, then store them for later commands."""
    config.load()  # a damaged file is reported before anything is written over it
    if token is None:
        if not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            token = typer.prompt("API token", hide_input=True)
    if not token:
        raise CliError("no token given")
    user = Api(api_url, token).call("GET", "/v1/user")
    path = config.save(config.StoredLogin(api_url=api_url.rstrip("/"), token=token))
    console.print(f"Logged in to {api_url} as {user['name']} (saved in {path})")


def logout() -> None:
    """Forget the stored token (the token itself stays valid until revoked)."""
    stored = config.load()
    if stored.token:
        config.save(stored.model_copy(update={"token": None}))
        console.print("Logged out.")
    else:
        console.print("Not logged in.")


def whoami(as_json: JsonOption = False) -> None:
    """Show who the stored token belongs to."""
    api = Api.logged_in()
    user = api.call("GET", "/v1/user")
    if as_json:
        show({**user, "api_url": api.api_url}, True)
    else:
        console.print(f"{user['name']} on {api.api_url}" + (" (admin)" if user["is_admin"] else ""))


keys = typer.Typer(
    help="Manage your SSH public keys (they let you git push).", no_args_is_help=True
)


def default_key() -> Path:
    ssh = Path.home() / ".ssh"
    for name in DEFAULT_KEYS:
        if (ssh / name).is_file():
            return ssh / name
    raise CliError(
        f"no public key found in {ssh} ({', '.join(DEFAULT_KEYS)}); give its path, "
        "or create one with ssh-keygen -t ed25519"
    )


@keys.command("add")
def keys_add(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="A .pub file [default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub].",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A name for the key [default: its comment].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an SSH public key to your account."""
    path = path or default_key()
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    if "PRIVATE KEY" in text:  # never send a private key anywhere
        raise CliError(f"{path} is a private key: give its .pub file")
    key = Api.logged_in().call("POST", "/v1/keys", json={"public_key": text, "name": name})
    if as_json:
        show(key, True)
    else:
        console.print(f"Added key {key['name']!r} ({key['fingerprint']}) from {path}")


@keys.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """List your SSH keys."""
    show(
        Api.logged_in().pages("/v1/keys"),
        as_json,
        ["name", "algorithm", "bits", "fingerprint", "created_at"],
        "no keys yet: slipway keys add",
    )


@keys.command("remove")
def keys_remove(
    name: Annotated[str, typer.Argument(help="The key's name (slipway keys list).")],
) -> None:
    """Remove one of your SSH keys."""
    Api.logged_in().call("DELETE", f"/v1/keys/{quote(name, safe='')}")
    console.print(f"Removed key {name!r}")
