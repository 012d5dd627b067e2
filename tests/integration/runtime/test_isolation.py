"""Instances are fenced: a memory limit per instance (cgroups, where the runner may write
them), and apps that cannot read each other's files or signal each other's processes (a
Unix user per app, when the runner is root)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.runtime.cgroups import Cgroups, remove_ours
from tests.builds_support import Platform, web_app

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("fenced"), settings={"SLIPWAY_INSTANCE_SIZE": "S"})
    platform.start()
    yield platform
    platform.stop()


def test_an_instance_over_its_memory_limit_is_killed_and_reported(
    platform: Platform, tmp_path: Path
) -> None:
    probe = Cgroups.detect(tmp_path)
    if probe is None:
        pytest.skip("this host's cgroups cannot be written: no memory limits")
    remove_ours(tmp_path)
    app = platform.new_app("hog", None, web_app("probe"))
    assert platform.push(app).returncode == 0
    first = platform.answers("hog", "probe pid=")
    assert platform.visit("hog", "/?hog=1").status_code == 502  # killed while answering
    crash = platform.wait_for_log("hog", "web.1 crashed")
    assert crash["m"] == "web.1 crashed: killed: over its memory limit (256 MB)"
    again = platform.answers("hog", "probe pid=", timeout=30)  # restarted
    assert again != first


@pytest.mark.skipif(os.geteuid() != 0, reason="apps get Unix users of their own only as root")
def test_apps_cannot_read_each_others_files_or_signal_each_others_processes(
    platform: Platform,
) -> None:
    assert platform.push(platform.new_app("alpha", None, web_app("probe"))).returncode == 0
    beta = platform.new_app("beta", None, web_app("beta"))
    assert platform.push(beta).returncode == 0
    platform.answers("alpha", "probe pid=")
    beta_pid = int(platform.answers("beta", "hello beta").split("pid=")[1])
    own = platform.apps_dir / "releases" / platform.uid("alpha") / "v1" / "server.py"
    assert platform.visit("alpha", f"/?read={own}").text == "read " + own.read_text()[:20]
    beta_file = platform.apps_dir / "releases" / platform.uid("beta") / "v1" / "server.py"
    assert beta_file.exists()
    for path in (
        beta_file,
        platform.data / "slipway.db",
        platform.data / "gateway" / "ssh_host_ed25519_key",
        next((platform.data / "slugs" / platform.uid("beta")).glob("*.tar.gz")),
    ):
        answer = platform.visit("alpha", f"/?read={path}").text
        assert answer == "refused PermissionError", (path, answer)
    assert platform.visit("alpha", f"/?kill={beta_pid}").text == "refused PermissionError"
    assert f"pid={beta_pid}" in platform.visit("beta").text  # still the same process
