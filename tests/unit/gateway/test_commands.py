"""The exec-string parser: only `VERB APP` in its allowed spellings gets through."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from slipway.gateway.commands import (
    VERBS,
    GitCommand,
    Refused,
    git_protocol,
    parse_command,
)
from slipway.store.names import APP_NAME


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git-upload-pack shop.git", ("git-upload-pack", "shop")),
        ("git-upload-pack '/shop.git'", ("git-upload-pack", "shop")),
        ("git-receive-pack shop", ("git-receive-pack", "shop")),
        ('git-receive-pack "/shop"', ("git-receive-pack", "shop")),
        ("git upload-pack shop.git", ("git-upload-pack", "shop")),
        ("git receive-pack 'my-app.git'", ("git-receive-pack", "my-app")),
        ("git-upload-archive a1-b2.git", ("git-upload-archive", "a1-b2")),
    ],
)
def test_allowed_forms(command: str, expected: tuple[str, str]) -> None:
    parsed = parse_command(command)
    assert (parsed.verb, parsed.app) == expected
    uid = "0123456789abcdef" * 2
    assert parsed.argv(uid) == [expected[0], uid, expected[1]]


@settings(max_examples=3000)
@given(
    st.text(max_size=80)
    | st.lists(
        st.sampled_from(
            [
                "git",
                "git-upload-pack",
                "git-receive-pack",
                "upload-pack",
                "shop",
                "shop.git",
                "/",
                "'",
                '"',
                "\\",
                ";",
                "--help",
                "-c",
                "..",
                " ",
                "\n",
                "\x00",
                "$(",
                "`",
                "é",
                "%2e",
            ]
        ),
        max_size=6,
    ).map("".join)
)
@example("git-upload-pack ../shop.git")
@example("git-upload-pack shop.git\x00")
def test_nothing_but_the_allowed_forms_gets_through(command: str) -> None:
    refusal = None
    try:
        parsed = parse_command(command)
    except Refused as error:
        refusal = str(error)
    if refusal is not None:  # one line for the client, and nothing else happened
        assert refusal.startswith("slipway: ")
        assert "\n" not in refusal
        return
    assert isinstance(parsed, GitCommand)
    assert parsed.verb in VERBS
    assert APP_NAME.fullmatch(parsed.app)
    assert all(ord(char) >= 32 for char in command)
    words = command.replace("'", "").replace('"', "").split()
    assert len(words) in (2, 3)  # VERB REPO, or git VERB REPO


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("version=2", "version=2"),
        ("version=0", "version=0"),
        ("version=22", None),
        ("version=2\n", None),
        ("version=2 x", None),
        ("", None),
        (None, None),
        ("version=2:object-format=sha1", None),
        ("--split-string", None),
    ],
)
def test_git_protocol_is_kept_only_when_plain(value: str | None, kept: str | None) -> None:
    assert git_protocol(value) == kept


@pytest.mark.parametrize(
    ("path", "name"),
    [("/dj.git", "dj"), ("Shop.git", "Shop"), ("/my_app", "my_app"), ("a-.git", "a-")],
)
def test_a_name_no_app_can_have_is_refused_with_the_name_rule(path: str, name: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_command(f"git-receive-pack '{path}'")
    assert str(refused.value) == (
        f"slipway: {path!r} is not a repository here: no app can be named {name!r} (app names "
        "are 3 to 48 lowercase letters, digits and dashes, starting with a letter and not "
        "ending with a dash); use APP.git"
    )
