"""``domains``: the names an app answers at besides APP.DOMAIN, and their certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from slipway.cli.appname import app_path, detect_app
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, JsonOption, RemoteOption
from slipway.cli.output import console, show

DOMAIN_COLUMNS = ["hostname", "state", "source", "expires_at", "dns_target", "note"]
MAX_PEM = 64 * 1024

domains = typer.Typer(
    help="An app's own domains (www.example.com) and their HTTPS certificates: ordered from "
    "the platform's ACME directory (Let's Encrypt) and renewed, or brought with --cert/--key.",
    invoke_without_command=True,
)


@domains.callback()
def domains_default(
    ctx: typer.Context,
    app: AppOption = None,
    remote: RemoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """Without a subcommand: list the app's domains."""
    if ctx.invoked_subcommand is None:
        domains_list(app, remote, as_json)


def _note(domain: dict[str, Any]) -> str:
    """What the state means for the user, with the ACME server's reason when it failed."""
    state = domain["state"]
    if state == "pending-dns":
        note = f"point its DNS at {domain['dns_target']} (CNAME)"
    elif state == "issuing":
        note = "ordering its certificate"
        if domain.get("reason"):
            note += f" (the last attempt failed: {domain['reason']})"
    elif state == "http-only":
        note = "HTTP only: the platform orders no certificates; bring one with --cert"
    elif state == "failed":
        note = domain.get("reason") or "the last attempt failed"
    else:
        note = f"issued by {domain.get('issuer')}" if domain.get("issuer") else ""
    if domain.get("retry_at") and state in ("failed", "pending-dns"):
        note += f"; next attempt at {domain['retry_at'][:19].replace('T', ' ')} UTC"
    return note


@domains.command("list")
def domains_list(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List the app's domains: their state (pending-dns, issuing, active, failed, http-only),
    when their certificate expires, and where their DNS must point."""
    found = Api.logged_in().call("GET", f"{app_path(detect_app(app, remote))}/domains")
    rows = [{**d, "note": _note(d)} for d in found]
    show(
        found if as_json else rows,
        as_json,
        DOMAIN_COLUMNS,
        "no domains: slipway domains add www.example.com",
    )


def _read_pem(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_PEM:
            raise CliError(f"{path} is too big for a {what} (at most {MAX_PEM // 1024} KB)")
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the {what} {path}: {error}") from None


@domains.command("add")
def domains_add(
    hostname: Annotated[str, typer.Argument(help="A full DNS name, e.g. www.example.com.")],
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="A certificate you bring (PEM: leaf, then its chain)."),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Its private key (PEM).")] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach a domain to the app. Point its DNS at APP.DOMAIN (a CNAME) first: the platform
    then orders its certificate and renews it, or serves the one given with --cert/--key."""
    if (cert is None) != (key is None):
        raise CliError("--cert and --key go together")
    name = detect_app(app, remote)
    body: dict[str, str] = {"hostname": hostname}
    if cert is not None and key is not None:
        body |= {
            "certificate": _read_pem(cert, "certificate"),
            "private_key": _read_pem(key, "key"),
        }
    added = Api.logged_in().call("POST", f"{app_path(name)}/domains", json=body)
    if as_json:
        show(added, True)
        return
    console.print(f"Added {added['hostname']} to {name}: {added['state']}")
    console.print(f"Its DNS must point at {added['dns_target']} (a CNAME record).")
    if added["state"] != "active":
        console.print(f"{_note(added)}. Follow it with: slipway domains")


@domains.command("remove")
def domains_remove(
    hostname: Annotated[str, typer.Argument(help="The domain to detach.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Detach a domain: the app stops answering at it, and its certificate goes."""
    name = detect_app(app, remote)
    Api.logged_in().call("DELETE", f"{app_path(name)}/domains/{quote(hostname, safe='')}")
    console.print(f"Removed {hostname} from {name}")


@domains.command("force-https")
def domains_force_https(
    state: Annotated[str, typer.Argument(metavar="on|off", help="on: HTTP redirects to HTTPS.")],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Redirect HTTP requests to the app's domains that have a certificate to HTTPS (308)."""
    if state not in ("on", "off"):
        raise CliError(f"force-https takes on or off, not {state!r}")
    name = detect_app(app, remote)
    Api.logged_in().call("PUT", f"{app_path(name)}/force-https", json={"enabled": state == "on"})
    console.print(f"HTTPS {'forced' if state == 'on' else 'not forced'} for {name}")
