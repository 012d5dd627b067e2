"""Challenges that a user signs with an SSH key to prove she holds it before adding it.

They are stateless (an HMAC under a key derived from the internal secret), so any API server
behind a load balancer checks what another issued, and nothing is stored; each one names its
user and expires after a few minutes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from slipway.store.errors import Forbidden, Invalid

NAMESPACE = "slipway-key"  # what `ssh-keygen -Y sign -n` must be given
LIFETIME = 300  # seconds
PREFIX = "slipway-key-challenge-v1"


def issue(secret: str, user_id: int, *, now: float | None = None) -> tuple[str, int]:
    """A new challenge for this user, and when it expires (Unix time)."""
    expires = int(time.time() if now is None else now) + LIFETIME
    body = f"{PREFIX}:{user_id}:{expires}:{secrets.token_urlsafe(16)}"
    return f"{body}:{_mac(secret, body)}", expires


def check(secret: str, user_id: int, challenge: str) -> None:
    """Refuse a challenge this server did not issue, issued to someone else, or expired."""
    body, _, mac = challenge.rpartition(":")
    fields = body.split(":")
    if not challenge.isascii() or len(fields) != 4 or fields[0] != PREFIX:
        raise Invalid("not a key challenge: get one from POST /v1/keys/challenge")
    if not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        raise Forbidden("this key challenge was not issued by this server (or was altered)")
    if fields[1] != str(user_id):
        raise Forbidden("this key challenge was issued to another user")
    if int(fields[2]) < time.time():
        raise Forbidden(
            f"this key challenge has expired (they last {LIFETIME // 60} minutes): get a new one"
        )


def _mac(secret: str, body: str) -> str:
    # A key of its own, so that these MACs never equal anything else made with the secret.
    key = hmac.new(secret.encode(), b"slipway key challenge", hashlib.sha256).digest()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
