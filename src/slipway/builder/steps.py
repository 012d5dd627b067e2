"""A build's steps on the pushed tree: a buildpack's ``detect``, ``compile`` and ``release``
scripts, and packing the slug, each run as the app's user in a process group of its own,
stopped at the build's deadline or when the pusher has gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from slipway.builder.buildpacks import BUILDPACKS_DIR, ORDER
from slipway.builder.workspace import BuildFailed, Workspace
from slipway.config import Settings
from slipway.host.appuser import AppUser, apps_root, copy_for_app_users, run_as
from slipway.wire.deployment_states import ABORTED, BUILD_ERROR, TIMEOUT_ERROR

DETECT_TIMEOUT = 30.0


@dataclass
class BuildSteps:
    """Runs buildpack scripts as the app's user, in a session of their own (so that the
    whole group can be stopped), with the build's deadline."""

    workspace: Workspace
    user: AppUser | None
    env: dict[str, str]
    settings: Settings
    deadline: float  # time.monotonic()'s, the build's
    still_wanted: Callable[[], bool]  # False once the pusher has gone
    say: Callable[[str], None]  # a line of the build's output

    def dirs(self) -> list[str]:
        return [str(self.workspace.app), str(self.workspace.cache), str(self.workspace.env)]

    def _popen(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            cwd=self.workspace.app,
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,
            **run_as(self.user),
            **options,
        )

    def quick(self, script: Path) -> tuple[int, str, str] | None:
        """A buildpack's quick step (``detect``, ``release``) on the tree: status, output and
        errors, or None when it hangs (stopped after DETECT_TIMEOUT seconds)."""
        process = self._popen(
            [str(script), str(self.workspace.app)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = process.communicate(timeout=DETECT_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            return None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def detect(self) -> tuple[str, Path]:
        buildpacks = copy_for_app_users(
            BUILDPACKS_DIR, apps_root(self.settings.data_dir, self.settings.apps_dir)
        )
        for name in ORDER:
            detected = self.quick(buildpacks / name / "bin" / "detect")
            if detected is not None and detected[0] == 0:
                return detected[1].strip() or name, buildpacks / name
        raise BuildFailed(
            BUILD_ERROR,
            "no buildpack matches this app: Slipway builds Python (requirements.txt, Pipfile or "
            "pyproject.toml), Node.js (package.json), static sites (index.html or "
            "static.json) and apps with a Procfile of host commands",
        )

    def release(self, buildpack: Path) -> dict[str, str]:
        """The buildpack's default process types."""
        released = self.quick(buildpack / "bin" / "release")
        if released is None:
            raise BuildFailed(BUILD_ERROR, "the buildpack's release step hung")
        status, out, err = released
        if status != 0:
            raise BuildFailed(BUILD_ERROR, f"the buildpack's release step failed: {err[:500]}")
        try:
            described = yaml.safe_load(out) or {}
            defaults = described.get("default_process_types") or {}
            return {str(k): str(v) for k, v in dict(defaults).items()}
        except (yaml.YAMLError, AttributeError, TypeError, ValueError):
            raise BuildFailed(BUILD_ERROR, "the buildpack's release step printed no YAML") from None

    def supervise(self, argv: list[str], consume: Callable[[IO[bytes]], None], stderr: Any) -> int:
        """Run ``argv`` while ``consume`` reads its output; its exit status. Stops it at the
        build's deadline, or when the build is no longer wanted; whatever it leaves running
        in its process group is stopped when it ends."""
        process = self._popen(argv, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        reader = threading.Thread(target=consume, args=(process.stdout,), daemon=True)
        reader.start()
        try:
            while True:
                try:
                    return process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() > self.deadline:
                    limit = self.settings.build_timeout
                    words = f"{limit // 60} minutes" if limit % 60 == 0 else f"{limit} seconds"
                    raise BuildFailed(
                        TIMEOUT_ERROR,
                        f"the build took longer than its limit of {words} (SLIPWAY_BUILD_TIMEOUT)",
                    )
                if not self.still_wanted():
                    raise BuildFailed(ABORTED, "the push was interrupted: build cancelled")
        finally:
            _stop_group(process)
            reader.join(timeout=10)

    def stream(self, argv: list[str]) -> int:
        """Run ``argv``, each line of its output said as it comes; its exit status."""

        def relay(output: IO[bytes]) -> None:
            for raw in output:
                self.say(raw.decode(errors="replace").rstrip("\r\n"))

        return self.supervise(argv, relay, subprocess.STDOUT)

    def pack(self, slug: Path, limit: int) -> int:
        """The tree as a gzipped tarball in ``slug``, packed by the app's user (root never
        reads the tree), written by us up to ``limit`` bytes; its size (over ``limit`` when
        cut short)."""
        written = 0

        def copy(output: IO[bytes]) -> None:
            nonlocal written
            with open(os.open(slug, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                while chunk := output.read(1 << 20):
                    written += len(chunk)
                    if written > limit:
                        output.close()  # tar stops on a broken pipe
                        return
                    file.write(chunk)

        with tempfile.TemporaryFile() as errors:
            argv = ["tar", "--create", "--gzip", "--file", "-", "."]
            status = self.supervise(argv, copy, errors)
            if written <= limit and status != 0:
                errors.seek(0)
                detail = errors.read(2000).decode(errors="replace").strip()
                raise BuildFailed(BUILD_ERROR, f"could not pack the slug: {detail}")
        return written


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the build's process group, then KILL what is left after a few seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
