"""Adding an SSH key takes proof of possession: a challenge signed with the key. mallory, who
has only alice's public key, cannot register it (and so cannot squat it); alice adds hers with
the API, and with the CLI from a key file (its passphrase asked on the terminal) or from her
ssh-agent."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from slipway.api import keychallenge
from slipway.store.models import User
from tests.control_support import INTERNAL_SECRET, SLIPWAY, ApiServer, Cli
from tests.keys import generate, proven_key, sign
from tests.terminal import on_terminal

SLIPWAYD = Path(sys.executable).parent / "slipwayd"


def fingerprint(private: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-lf", f"{private}.pub"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


@dataclass
class People:
    """alice and mallory; mallory has his own key and alice's public key, not her private one."""

    api: ApiServer
    alice: httpx.Client
    mallory: httpx.Client
    mallory_id: int
    alice_key: Path
    mallory_key: Path

    def challenge(self, client: httpx.Client) -> str:
        response = client.post("/v1/keys/challenge")
        assert response.status_code == 200, response.text
        return str(response.json()["challenge"])

    def alice_key_body(self, challenge: str, signature: str) -> dict[str, str]:
        public_key = Path(f"{self.alice_key}.pub").read_text()
        return {"public_key": public_key, "challenge": challenge, "signature": signature}

    def holder_of_alices_key(self) -> str | None:
        """Whom an SSH login with alice's key maps to, as the gateway asks."""
        response = self.api.internal().get(
            "/internal/keys", params={"fingerprint": fingerprint(self.alice_key)}
        )
        assert response.status_code in (200, 404), response.text
        return str(response.json()["user"]) if response.status_code == 200 else None


@pytest.fixture
def people(sqlite_api: ApiServer) -> People:
    alice, mallory = sqlite_api.create_user("alice"), sqlite_api.create_user("mallory")
    with sqlite_api.database.session() as session:
        mallory_id = session.scalar(select(User.id).where(User.name == "mallory"))
    assert mallory_id is not None
    return People(
        sqlite_api,
        sqlite_api.client(alice),
        sqlite_api.client(mallory),
        mallory_id,
        generate("ed25519", comment="alice@laptop"),
        generate("ed25519", comment="mallory@laptop"),
    )


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", None), ("ecdsa", 256), ("rsa", 3072)])
def test_a_user_adds_her_own_key(people: People, kind: str, bits: int | None) -> None:
    response = people.alice.post("/v1/keys/challenge")
    assert response.status_code == 200
    assert response.json()["namespace"] == "slipway-key"
    lifetime = datetime.fromisoformat(response.json()["expires_at"]).timestamp() - time.time()
    assert keychallenge.LIFETIME - 60 < lifetime <= keychallenge.LIFETIME
    private = generate(kind, bits)
    added = people.alice.post("/v1/keys", json=proven_key(people.alice, private, "laptop"))
    assert added.status_code == 201, added.text
    assert added.json()["fingerprint"] == fingerprint(private)
    assert [key["name"] for key in people.alice.get("/v1/keys").json()["items"]] == ["laptop"]


def forged_signature(people: People) -> dict[str, str]:
    """mallory's own signature, with alice's public key written into it in place of his."""
    challenge = people.challenge(people.mallory)
    blob = base64.b64decode("".join(sign(people.mallory_key, challenge).splitlines()[1:-1]))
    his, hers = (
        base64.b64decode(Path(f"{key}.pub").read_text().split()[1])
        for key in (people.mallory_key, people.alice_key)
    )
    assert his in blob and len(his) == len(hers)
    forged = base64.b64encode(blob.replace(his, hers)).decode()
    armored = f"-----BEGIN SSH SIGNATURE-----\n{forged}\n-----END SSH SIGNATURE-----\n"
    return people.alice_key_body(challenge, armored)


def without(field: str) -> Callable[[People], dict[str, str]]:
    def attack(people: People) -> dict[str, str]:
        challenge = people.challenge(people.mallory)
        body = people.alice_key_body(challenge, sign(people.mallory_key, challenge))
        del body[field]
        return body

    return attack


def signed_by_alice(
    challenge: Callable[[People], str], namespace: str = "slipway-key"
) -> Callable[[People], dict[str, str]]:
    """Worse than mallory can do: alice's own signature, over a challenge mallory picks."""

    def attack(people: People) -> dict[str, str]:
        text = challenge(people)
        return people.alice_key_body(text, sign(people.alice_key, text, namespace))

    return attack


def tampered(people: People) -> str:
    """A challenge of alice's, rewritten to name mallory."""
    fields = people.challenge(people.alice).split(":")
    fields[1] = str(people.mallory_id)
    return ":".join(fields)


# attack: (what mallory sends, status, what the message says)
ATTACKS: dict[str, tuple[Callable[[People], dict[str, str]], int, str]] = {
    "a signature by his own key": (
        lambda p: p.alice_key_body(
            challenge := p.challenge(p.mallory), sign(p.mallory_key, challenge)
        ),
        403,
        "made with another key than the one being added",
    ),
    "his own signature with alice's key written in": (forged_signature, 403, "does not match"),
    "no signature": (without("signature"), 422, "body.signature: Field required"),
    "no challenge": (without("challenge"), 422, "body.challenge: Field required"),
    "an empty signature": (
        lambda p: p.alice_key_body(p.challenge(p.mallory), ""),
        422,
        "must be an armored SSH signature",
    ),
    "an expired challenge": (
        signed_by_alice(
            lambda p: keychallenge.issue(
                INTERNAL_SECRET, p.mallory_id, now=time.time() - keychallenge.LIFETIME - 1
            )[0]
        ),
        403,
        "has expired",
    ),
    "alice's own challenge and signature, replayed": (
        signed_by_alice(lambda p: p.challenge(p.alice)),
        403,
        "issued to another user",
    ),
    "a tampered challenge": (signed_by_alice(tampered), 403, "not issued by this server"),
    "another server's challenge": (
        signed_by_alice(lambda p: keychallenge.issue("another secret", p.mallory_id)[0]),
        403,
        "not issued by this server",
    ),
    "a signature alice made for git": (
        signed_by_alice(lambda p: p.challenge(p.mallory), namespace="git"),
        403,
        "for another use ('git')",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_mallory_cannot_add_alices_key(people: People, attack: str) -> None:
    build, status, message = ATTACKS[attack]
    response = people.mallory.post("/v1/keys", json=build(people))
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert people.mallory.get("/v1/keys").json()["items"] == []
    assert people.holder_of_alices_key() is None
    # Nothing stands in alice's way.
    mine = people.alice.post("/v1/keys", json=proven_key(people.alice, people.alice_key))
    assert mine.status_code == 201, mine.text
    assert people.holder_of_alices_key() == "alice"


def test_an_admin_sees_who_holds_a_key(people: People) -> None:
    body = proven_key(people.alice, people.alice_key, "work laptop")
    assert people.alice.post("/v1/keys", json=body).status_code == 201
    settings = people.api.settings
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}

    def key_owner(given: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(SLIPWAYD), "admin", "key-owner", given),
                *("--data-dir", str(settings.data_dir)),
                *("--database-url", settings.effective_database_url),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    known = fingerprint(people.alice_key)
    for given in (known, known.removeprefix("SHA256:")):
        found = key_owner(given)
        assert (found.returncode, found.stdout) == (0, "alice (key 'work laptop')\n"), found.stderr
    missing = key_owner(fingerprint(people.mallory_key))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines()[-1] + "\n" == (
        f"slipwayd admin key-owner: no user holds the key {fingerprint(people.mallory_key)}\n"
    )


# -- the CLI -------------------------------------------------------------------------------


def logged_in(cli: Cli, api: ApiServer) -> None:
    cli.ok("login", "--api-url", api.url, "--token", api.create_user("alice"))


def key_names(cli: Cli) -> list[str]:
    return [key["name"] for key in json.loads(cli.ok("keys", "list", "--json"))]


def test_the_cli_asks_for_the_passphrase_on_the_terminal(
    cli: Cli, sqlite_api: ApiServer, tmp_path: Path
) -> None:
    logged_in(cli, sqlite_api)
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "open sesame", "-C", "locked", "-f", str(key)],
        check=True,
    )
    status, output = on_terminal(
        [str(SLIPWAY), "keys", "add", f"{key}.pub"],
        cli.env(SSH_AUTH_SOCK=""),
        answer=(b"passphrase", b"open sesame\n"),
    )
    assert status == 0, output
    assert "Enter passphrase" in output and "Added key 'locked'" in output
    assert key_names(cli) == ["locked"]


@pytest.fixture
def agent() -> Iterator[str]:
    """A private ssh-agent; returns its socket (in a short path: sockets allow ~100 bytes)."""
    directory = tempfile.mkdtemp(prefix="slipway-agent-")
    socket = f"{directory}/socket"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", socket], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(socket):
            assert process.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.02)
        yield socket
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory)


def test_the_cli_signs_through_the_ssh_agent(
    cli: Cli, sqlite_api: ApiServer, agent: str, tmp_path: Path
) -> None:
    logged_in(cli, sqlite_api)
    held, absent = tmp_path / "held", tmp_path / "absent"
    for key in (held, absent):
        private = generate("ecdsa", 256, comment=key.name)
        shutil.copy(private, key)
        shutil.copy(f"{private}.pub", f"{key}.pub")
    subprocess.run(
        ["ssh-add", "-q", str(held)], env={**os.environ, "SSH_AUTH_SOCK": agent}, check=True
    )
    held.unlink()
    absent.unlink()  # and not in the agent either
    assert "Added key 'held'" in cli.ok("keys", "add", f"{held}.pub", SSH_AUTH_SOCK=agent)
    error = cli.fails("keys", "add", f"{absent}.pub", SSH_AUTH_SOCK=agent)
    assert error.count("\n") == 1 and error.startswith("slipway: ssh-keygen could not sign")
    assert "keep its private key next to" in error and "ssh-agent (ssh-add)" in error
    assert key_names(cli) == ["held"]
