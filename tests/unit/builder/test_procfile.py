"""The Procfile rule (honcho's): `TYPE: command` per line, errors named by line number."""

from __future__ import annotations

import pytest

from slipway.builder.procfile import ProcfileError, parse_procfile, split_release_command


def test_types_in_order_with_comments_and_blank_lines_skipped() -> None:
    text = "# processes\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python w.py\n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python w.py",
    }


def test_windows_line_endings_and_trailing_spaces() -> None:
    assert parse_procfile("web: a b  \r\nclock: c\r\n") == {"web": "a b", "clock": "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: ok\nnot a process\n", "Procfile line 2 is not `TYPE: command`: 'not a process'"),
        ("web:\n", "Procfile line 1 is not `TYPE: command`"),
        ("we b: x\n", "Procfile line 1 is not `TYPE: command`"),
        ("wéb: x\n", "Procfile line 1 is not `TYPE: command`"),
        ("web: a\nweb: b\n", "Procfile line 2: the process type 'web' is repeated"),
        ("web: " + "x" * 70_000, "the Procfile is over 64 KB"),
    ],
    ids=["no-colon", "empty-command", "space-in-type", "non-ascii-type", "repeated", "huge"],
)
def test_bad_procfiles_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ProcfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_procfile(text)


def test_release_and_postdeploy_are_not_process_types() -> None:
    types, command = split_release_command({"web": "a", "release": "migrate"})
    assert types == {"web": "a"}
    assert command == "migrate"
    assert split_release_command({"web": "a", "postdeploy": "m"}) == ({"web": "a"}, "m")
    assert split_release_command({"web": "a"}) == ({"web": "a"}, None)
    with pytest.raises(ProcfileError, match="both release: and postdeploy:"):
        split_release_command({"release": "a", "postdeploy": "b"})
