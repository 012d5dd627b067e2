"""Key challenges: accepted for their user until they expire, refused when altered, foreign or
malformed, always with a StoreError (a 4xx from the API)."""

from __future__ import annotations

import time

import pytest

from slipway.api import keychallenge
from slipway.store.errors import Forbidden, Invalid

SECRET = "internal-secret"


def test_a_challenge_is_good_for_its_user_until_it_expires() -> None:
    challenge, expires = keychallenge.issue(SECRET, 7)
    assert time.time() + keychallenge.LIFETIME - 60 < expires <= time.time() + keychallenge.LIFETIME
    keychallenge.check(SECRET, 7, challenge)
    assert keychallenge.issue(SECRET, 7)[0] != challenge  # never the same twice
    old, _ = keychallenge.issue(SECRET, 7, now=time.time() - keychallenge.LIFETIME - 1)
    with pytest.raises(Forbidden, match="expired"):
        keychallenge.check(SECRET, 7, old)


def test_another_users_or_another_servers_challenge_is_refused() -> None:
    challenge, _ = keychallenge.issue(SECRET, 7)
    with pytest.raises(Forbidden, match="issued to another user"):
        keychallenge.check(SECRET, 8, challenge)
    with pytest.raises(Forbidden, match="not issued by this server"):
        keychallenge.check("another secret", 7, challenge)


def test_every_altered_field_is_refused() -> None:
    challenge, _ = keychallenge.issue(SECRET, 7)
    fields = challenge.split(":")
    for position in range(1, len(fields)):
        altered = list(fields)
        altered[position] = "8" if position == 1 else altered[position][::-1] + "0"
        with pytest.raises(Forbidden, match="not issued by this server"):
            keychallenge.check(SECRET, 8 if position == 1 else 7, ":".join(altered))


@pytest.mark.parametrize(
    "challenge",
    [
        "",
        "x",
        "a:b:c:d:e",
        "slipway-key-challenge-v1:7:1:n",
        "slipway-key-challenge-v1:7:1:n:\u00e9",
    ],
)
def test_what_is_not_a_challenge_is_invalid(challenge: str) -> None:
    with pytest.raises(Invalid, match="not a key challenge"):
        keychallenge.check(SECRET, 7, challenge)
