"""The Python an app asks for, and the interpreter on this host that serves it.

Apps say which Python they want the way Heroku and Scalingo read it: ``.python-version``
(pyenv's and uv's file: the first line that is not blank or a ``#`` comment) or
``runtime.txt`` (``python-3.11.6``). The build worker, not the buildpack, picks the
interpreter: an interpreter it downloads (``SLIPWAY_PYTHON_DOWNLOADS=automatic``, through
uv) goes into a directory shared by every app's builds and instances, where app users may
read but not write, so one app can never change another's Python.

What is picked, in order: an installed interpreter of the exact version asked for (the
newest patch when only ``3.11`` or ``3`` is asked); else one downloaded; else, for a patch
version (``3.11.6``), the closest installed patch of the same minor, said in the build's
output, unless ``SLIPWAY_PYTHON_EXACT_PIN`` is on. Anything else fails the build with one
line naming what was asked, what the host has and how to fix it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slipway.builder.gitshell import SAFE_PATH

# 3, 3.11, 3.11.6; pyenv's and uv's "cpython-"/"python-" prefixes are accepted.
VERSION = re.compile(r"(?:c?python-?)?(\d+(?:\.\d+){0,2})")
DOWNLOAD_TIMEOUT = 600.0  # seconds; the build's own deadline is checked around it too


class PythonUnavailable(Exception):
    """The app asked for a Python this host cannot give it; the message says what to do."""


@dataclass(frozen=True)
class Interpreter:
    version: tuple[int, int, int]
    path: Path

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True)
class Request:
    """A version asked for (``(3, 11)`` or ``(3, 11, 6)``) and the file that asks."""

    parts: tuple[int, ...]
    source: str

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.parts))

    def matches(self, version: tuple[int, int, int]) -> bool:
        return version[: len(self.parts)] == self.parts


def first_setting(text: str) -> str | None:
    """The first line of a version file that is not blank or a ``#`` comment (pyenv's and
    uv's rule), without its spaces."""
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            return value
    return None


def parse_request(text: str, source: str) -> Request | None:
    """The version in ``.python-version`` or ``runtime.txt``; None when the file names none.
    A value that is not a version fails with the file's name and the value."""
    value = first_setting(text)
    if value is None:
        return None
    match = VERSION.fullmatch(value)
    if match is None:
        raise PythonUnavailable(
            f"{source} asks for Python {value[:60]!r}, which is not a version: write e.g. "
            + ("python-3.11.6" if source == "runtime.txt" else "3.11 or 3.11.6")
        )
    return Request(tuple(int(part) for part in match.group(1).split(".")), source)


@dataclass
class PythonHost:
    """This host's Pythons as uv finds them: the system's (on PATH) and those uv installed in
    ``install_dir``."""

    uv: str
    install_dir: Path
    downloads: bool
    exact_pin: bool

    def _env(self) -> dict[str, str]:
        passed = {
            name: value
            for name, value in os.environ.items()
            if name.startswith("UV_PYTHON_INSTALL_MIRROR")
            or name in ("UV_PYTHON_DOWNLOADS_JSON_URL", "UV_HTTP_TIMEOUT")
            or name.lower() in ("http_proxy", "https_proxy", "no_proxy")
            or name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
        }
        return {
            **passed,
            "PATH": SAFE_PATH,
            "HOME": str(self.install_dir),
            "UV_PYTHON_INSTALL_DIR": str(self.install_dir),
            "UV_PYTHON_PREFERENCE": "system",
            "UV_PYTHON_DOWNLOADS": "automatic" if self.downloads else "never",
            "UV_NO_PROGRESS": "1",
            "UV_SYSTEM_CERTS": "1",
            "UV_CACHE_DIR": str(self.install_dir / ".cache"),
        }

    def installed(self) -> list[Interpreter]:
        """CPython interpreters found (no free-threaded builds), newest first, one per
        version."""
        listed = subprocess.run(
            [self.uv, "python", "list", "--only-installed", "--output-format", "json"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found: dict[tuple[int, int, int], Interpreter] = {}
        for entry in json.loads(listed.stdout):
            if entry.get("implementation") != "cpython" or entry.get("variant") != "default":
                continue
            parts = entry["version_parts"]
            version = (int(parts["major"]), int(parts["minor"]), int(parts["patch"]))
            found.setdefault(version, Interpreter(version, Path(entry["path"])))
        return sorted(found.values(), key=lambda i: i.version, reverse=True)

    def download(self, request: Request, say: Callable[[str], None]) -> str | None:
        """Install the version asked for with uv; None when done, else uv's reason."""
        self.install_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.install_dir.chmod(0o755)  # app users read the interpreters they run
        try:
            installed = subprocess.run(
                [self.uv, "python", "install", request.dotted],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=DOWNLOAD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return f"no answer in {DOWNLOAD_TIMEOUT:.0f} s"
        if installed.returncode == 0:
            for line in installed.stderr.splitlines():
                if line.strip():
                    say(f"       {line.strip()}")
            return None
        lines = [line.strip() for line in installed.stderr.splitlines() if line.strip()]
        causes = [line.removeprefix("cause: ") for line in lines if line.startswith("cause:")]
        return (causes[-1] if causes else lines[-1] if lines else "uv failed").removeprefix(
            "error: "
        )

    def choose(self, request: Request | None, say: Callable[[str], None]) -> Interpreter:
        """The interpreter for ``request`` (None: the newest installed), by the module's
        rules; progress and choices are said as build output."""
        installed = self.installed()
        if request is None:
            if not installed:
                raise PythonUnavailable("this host has no Python 3 interpreter")
            return installed[0]
        exact = [i for i in installed if request.matches(i.version)]
        if exact:
            return exact[0]
        failure = "downloads are off"
        if self.downloads:
            say(f"-----> Installing Python {request.dotted} (asked for by {request.source})")
            failure = self.download(request, say) or ""
            if not failure:
                exact = [i for i in self.installed() if request.matches(i.version)]
                if exact:
                    return exact[0]
                failure = "uv installed it, but it is not found afterwards"
            say(f"       could not download it: {failure}")
        closest = self._closest_patch(request, installed)
        if closest is not None:
            say(
                f"       Python {request.dotted} is not on this host: using {closest.dotted}, "
                f"the closest {request.parts[0]}.{request.parts[1]} (SLIPWAY_PYTHON_EXACT_PIN "
                "makes this an error)"
            )
            return closest
        has = ", ".join(i.dotted for i in installed) or "none"
        if self.exact_pin and self._closest_patch(request, installed, ignore_pin=True):
            fix = "the operator has SLIPWAY_PYTHON_EXACT_PIN on"
        elif self.downloads:
            fix = "a host without internet needs UV_PYTHON_INSTALL_MIRROR (see the README)"
        else:
            fix = "the operator can set SLIPWAY_PYTHON_DOWNLOADS=automatic"
        raise PythonUnavailable(
            f"Python {request.dotted} ({request.source}) is not on this host (it has {has}) "
            f"and could not be installed ({failure}): pin one it has; {fix}"
        )

    def _closest_patch(
        self, request: Request, installed: list[Interpreter], ignore_pin: bool = False
    ) -> Interpreter | None:
        """An installed patch of the asked-for minor, nearest to the asked-for patch (the
        newer of two as near); None for a request without a patch, or with the exact pin."""
        if len(request.parts) != 3 or (self.exact_pin and not ignore_pin):
            return None
        same_minor = [i for i in installed if i.version[:2] == request.parts[:2]]
        if not same_minor:
            return None
        return min(same_minor, key=lambda i: (abs(i.version[2] - request.parts[2]), -i.version[2]))
