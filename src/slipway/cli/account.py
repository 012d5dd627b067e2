"""``login``, ``logout``, ``whoami``, ``keys`` and ``tokens``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from slipway.cli import config
from slipway.cli.errors import CliError
from slipway.cli.http import Api, ApiError
from slipway.cli.options import JsonOption
from slipway.cli.output import console, show

DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
# Fixed here, not taken from the server: a server must not choose what our keys sign for.
KEY_NAMESPACE = "slipway-key"


def login(
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url",
            help="e.g. http://localhost:8080 (without a scheme, http:// is assumed).",
            envvar="SLIPWAY_API_URL",
        ),
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
    from_env = os.environ.get("SLIPWAY_API_URL") == api_url
    api_url = config.normalize_api_url(api_url, "SLIPWAY_API_URL" if from_env else "--api-url")
    if token is None:
        if not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            token = typer.prompt("API token", hide_input=True)
    if not token:
        raise CliError("no token given")
    user = Api(api_url, token).call("GET", "/v1/user")
    path = config.save(config.StoredLogin(api_url=api_url, token=token))
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


def sign_challenge(path: Path, challenge: str) -> str:
    """What `ssh-keygen -Y sign` prints for the challenge: ssh-keygen uses the ssh-agent when
    it holds the key, else the private key file, asking for its passphrase on the terminal."""
    private = path.with_suffix("")
    # With a lone .pub, ssh-keygen signs through the agent (or fails: no private key).
    key = private if path.suffix == ".pub" and private.is_file() else path
    with tempfile.TemporaryDirectory(prefix="slipway-") as tmp:
        # The challenge goes by file, so that stdin stays the terminal for the passphrase.
        message = Path(tmp) / "challenge"
        message.write_bytes(challenge.encode())
        argv = ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", KEY_NAMESPACE, str(message)]
        try:
            result = subprocess.run(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
            )
        except FileNotFoundError:
            raise CliError("ssh-keygen not found: install the OpenSSH client") from None
        if result.returncode != 0:
            said = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            raise CliError(
                f"ssh-keygen could not sign with {key} ({said[-1] if said else 'no reason given'})"
                f"; to prove the key is yours, keep its private key next to {path} (the same "
                "name without .pub) or load it into your ssh-agent (ssh-add)"
            )
        return (Path(tmp) / "challenge.sig").read_text()


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
    """Add an SSH public key to your account, signing a challenge with it to prove it is yours
    (with ssh-keygen: from your ssh-agent, else from the private key next to the .pub)."""
    path = path or default_key()
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    if "PRIVATE KEY" in text:  # never send a private key anywhere
        raise CliError(f"{path} is a private key: give its .pub file")
    api = Api.logged_in()
    challenge = api.call("POST", "/v1/keys/challenge")["challenge"]
    body = {
        "public_key": text,
        "name": name,
        "challenge": challenge,
        "signature": sign_challenge(path, challenge),
    }
    key = api.call("POST", "/v1/keys", json=body)
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


tokens = typer.Typer(
    help="Manage your API tokens (what slipway login stores; one per machine or script).",
    no_args_is_help=True,
)


@tokens.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """List your API tokens, revoked ones included (only their first characters are kept)."""
    show(
        Api.logged_in().pages("/v1/tokens"),
        as_json,
        ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"],
    )


@tokens.command("create")
def tokens_create(
    name: Annotated[
        str, typer.Option("--name", help="What the token is for, e.g. a machine or a CI job.")
    ] = "default",
    as_json: JsonOption = False,
) -> None:
    """Create an API token and print it: only the token on stdout, shown this once."""
    new = Api.logged_in().call("POST", "/v1/tokens", json={"name": name})
    if as_json:
        show(new, True)
        return
    print(f"Created token {new['id']} ({new['name']!r}); it is shown only now:", file=sys.stderr)
    print(new["token"])


@tokens.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
) -> None:
    """Revoke an API token: it stops working at once, everywhere."""
    api = Api.logged_in()
    api.call("DELETE", f"/v1/tokens/{token_id}")
    console.print(f"Revoked token {token_id}")
    try:  # the only exact way to know: the API does not say which token we hold
        api.call("GET", "/v1/user")
    except ApiError as error:
        if error.status != 401:
            raise
        if os.environ.get("SLIPWAY_API_TOKEN"):  # it wins over the stored login
            console.print("That was the token in SLIPWAY_API_TOKEN: it no longer works.")
        else:
            config.save(config.load().model_copy(update={"token": None}))
            console.print(
                "That was the token you were logged in with: you are logged out now "
                "(slipway login to log in again)."
            )
