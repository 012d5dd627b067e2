"""Which Python an app gets: the version files as pyenv, uv and Heroku read them, and the
choice among the interpreters a host has (real ones from uv, and lists made up to cover
versions this host lacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import uv

from slipway.builder.pythons import (
    Interpreter,
    PythonHost,
    PythonUnavailable,
    Request,
    parse_request,
)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("# The Python version to use for the project.\n3.14\n", (3, 14)),
        ("\n\n  3.11.6  \n3.12\n", (3, 11, 6)),
        ("3.12 # the newest\n", (3, 12)),
        ("python-3.10.6\n", (3, 10, 6)),
        ("cpython-3.11\n", (3, 11)),
        ("3\n", (3,)),
    ],
)
def test_the_first_setting_line_is_the_version(text: str, parts: tuple[int, ...]) -> None:
    request = parse_request(text, ".python-version")
    assert request == Request(parts, ".python-version")


def test_a_file_of_comments_and_blanks_asks_for_nothing() -> None:
    assert parse_request("# nothing pinned\n\n", ".python-version") is None
    assert parse_request("", "runtime.txt") is None


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        (
            "#ThePythonversion\nlatest\n",
            ".python-version",
            ".python-version asks for Python 'latest', which is not a version: write e.g. "
            "3.11 or 3.11.6",
        ),
        (
            "pypy3.10-7.3.12",
            "runtime.txt",
            "runtime.txt asks for Python 'pypy3.10-7.3.12', which is not a version: write e.g. "
            "python-3.11.6",
        ),
        ("3.11.6.1", ".python-version", "'3.11.6.1', which is not a version"),
    ],
)
def test_what_is_not_a_version_is_named(text: str, source: str, message: str) -> None:
    with pytest.raises(PythonUnavailable, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_request(text, source)


class Listed(PythonHost):
    """A host whose interpreters are the given versions (downloads off)."""

    def __init__(self, versions: list[tuple[int, int, int]], exact_pin: bool = False) -> None:
        super().__init__("uv", Path("/nowhere"), downloads=False, exact_pin=exact_pin)
        self.versions = versions

    def installed(self) -> list[Interpreter]:
        found = [Interpreter(v, Path(f"/py/{v}")) for v in self.versions]
        return sorted(found, key=lambda i: i.version, reverse=True)


HOST = [(3, 11, 2), (3, 11, 9), (3, 12, 1), (3, 12, 8)]


@pytest.mark.parametrize(
    ("asked", "chosen", "note"),
    [
        ((3, 12), (3, 12, 8), False),  # the newest patch of the minor
        ((3,), (3, 12, 8), False),
        ((3, 11, 9), (3, 11, 9), False),  # exactly
        ((3, 11, 6), (3, 11, 9), True),  # 3 away from 9, 4 away from 2
        ((3, 11, 5), (3, 11, 2), True),  # 3 away from 2 and 4 from 9
        ((3, 12, 0), (3, 12, 1), True),
    ],
)
def test_the_version_asked_or_the_closest_patch(
    asked: tuple[int, ...], chosen: tuple[int, int, int], note: bool
) -> None:
    said: list[str] = []
    interpreter = Listed(HOST).choose(Request(asked, "runtime.txt"), said.append)
    assert interpreter.version == chosen
    assert bool(said) == note
    if note:
        version = ".".join(map(str, asked))
        assert f"Python {version} is not on this host: using {interpreter.dotted}" in said[-1]


def test_ties_go_to_the_newer_patch() -> None:
    chosen = Listed([(3, 11, 2), (3, 11, 6)]).choose(Request((3, 11, 4), "x"), lambda _: None)
    assert chosen.version == (3, 11, 6)


def test_a_minor_the_host_lacks_is_refused_naming_what_it_has() -> None:
    with pytest.raises(PythonUnavailable) as refused:
        Listed(HOST).choose(Request((3, 10, 6), "runtime.txt"), lambda _: None)
    assert str(refused.value) == (
        "Python 3.10.6 (runtime.txt) is not on this host (it has 3.12.8, 3.12.1, 3.11.9, "
        "3.11.2) and could not be installed (downloads are off): pin one it has; the operator "
        "can set SLIPWAY_PYTHON_DOWNLOADS=automatic"
    )


def test_the_exact_pin_refuses_another_patch() -> None:
    with pytest.raises(PythonUnavailable, match="SLIPWAY_PYTHON_EXACT_PIN on"):
        Listed(HOST, exact_pin=True).choose(Request((3, 11, 6), "runtime.txt"), lambda _: None)
    exact = Listed(HOST, exact_pin=True).choose(Request((3, 11, 9), "x"), lambda _: None)
    assert exact.version == (3, 11, 9)


def test_this_hosts_own_interpreters_are_found_by_uv(tmp_path: Path) -> None:
    host = PythonHost(uv.find_uv_bin(), tmp_path, downloads=False, exact_pin=False)
    found = host.installed()
    assert found, "uv finds no Python on PATH"
    newest = host.choose(None, lambda _: None)
    assert newest == found[0]
    assert newest.path.exists()
    assert newest.version[0] == 3
