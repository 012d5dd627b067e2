"""git push builds: each sample app of tests/apps ends in a release whose slug holds what it
should, and each kind of broken push is rejected with its reason, leaving the previous
release current and the branch where it was. Pushed with OpenSSH's git through the gateway
of a real `slipwayd up`."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from collections.abc import Iterator

import pytest

from slipway.host.appuser import user_name
from tests.builds_support import SLIPWAY, Platform
from tests.services import wait_until

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("builds"),
        settings={"SLIPWAY_KEEP_RELEASES": "2", "SLIPWAY_SLUG_MAX_MB": "3"},
    )
    platform.start()
    yield platform
    platform.stop()


def rejected_with(pushed: subprocess.CompletedProcess[str], reason: str) -> None:
    assert pushed.returncode != 0, pushed.stderr
    assert f"remote:  !     Push rejected: {reason}" in pushed.stderr, pushed.stderr
    assert "(pre-receive hook declined)" in pushed.stderr


def test_a_python_app_builds_a_release_with_its_virtualenv(platform: Platform) -> None:
    app = platform.new_app("py-sample", "python")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    for line in (
        "remote: -----> Python app detected",
        "remote: -----> Installing dependencies from requirements.txt",
        "remote:         + flask==",
        "remote:         + gunicorn==",
        "remote:        Procfile declares types -> web",
        'remote:        Release command: python -c "print(1)"',
        "remote: -----> Released v1",
    ):
        assert line in pushed.stderr, pushed.stderr
    assert "done in" in pushed.stderr  # each step's time
    [release] = platform.releases("py-sample")
    assert release["version"] == 1
    assert release["process_types"] == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}
    assert release["release_command"] == 'python -c "print(1)"'
    assert release["created_by"] == "alice"
    assert release["commit"] == platform.remote_head(app)
    files = platform.slug_of("py-sample", 1)
    assert "app.py" in files
    assert ".profile.d/python.sh" in files
    assert any(f.endswith("site-packages/flask/__init__.py") for f in files), files
    assert ".venv/bin/gunicorn" in files
    [deployment] = platform.deployments("py-sample")
    assert platform.wait_for_status("py-sample", deployment["id"]) == "success"  # it started
    assert deployment["buildpack"] == "Python"
    assert deployment["release_version"] == 1


def test_a_second_build_reuses_the_dependency_cache(platform: Platform) -> None:
    app = platform.new_app("py-cache", "python")
    first = platform.push(app)
    assert first.returncode == 0, first.stderr
    platform.commit(app, {"app.py": (app / "app.py").read_text() + "\n# changed\n"})
    second = platform.push(app)
    assert second.returncode == 0, second.stderr
    # uv says "Prepared N packages" only for what it had to download or build.
    assert "Prepared" in first.stderr
    assert "Reusing the last build's virtualenv (requirements.txt unchanged)" in second.stderr
    assert "Prepared" not in second.stderr, second.stderr
    assert any(
        f.endswith("site-packages/flask/__init__.py") for f in platform.slug_of("py-cache", 2)
    )
    # New requirements: a new virtualenv, from uv's cache for what it already has.
    platform.commit(app, {"requirements.txt": "flask>=3.0,<4\n"})
    third = platform.push(app)
    assert third.returncode == 0, third.stderr
    assert "Installing dependencies from requirements.txt" in third.stderr
    assert "Prepared" not in third.stderr, third.stderr
    assert not any("gunicorn" in f for f in platform.slug_of("py-cache", 3))
    assert "remote: -----> Released v2" in second.stderr


def test_a_dependency_that_fails_to_install_shows_uvs_error_and_keeps_the_release(
    platform: Platform,
) -> None:
    app = platform.new_app("py-broken", "python")
    assert platform.push(app).returncode == 0
    good = platform.remote_head(app)
    platform.commit(app, {"requirements.txt": "slipway-no-such-package-anywhere==1.0\n"})
    pushed = platform.push(app)
    rejected_with(pushed, "the Python build failed (see the output above)")
    assert "slipway-no-such-package-anywhere" in pushed.stderr  # uv's own words
    assert platform.remote_head(app) == good  # the branch did not move
    assert [r["version"] for r in platform.releases("py-broken")] == [1]
    latest = platform.deployments("py-broken")[0]
    assert latest["status"] == "build-error"
    assert "the Python build failed" in latest["error"]


def test_a_python_version_the_host_lacks_is_named(platform: Platform) -> None:
    app = platform.new_app("py-version", "python", {".python-version": "# old\n3.9\n"})
    pushed = platform.push(app)
    # Downloads are on by default, and this host cannot reach python-build-standalone.
    rejected_with(pushed, "Python 3.9 (.python-version) is not on this host (it has 3.")
    assert "-----> Installing Python 3.9 (asked for by .python-version)" in pushed.stderr
    assert "could not be installed" in pushed.stderr
    assert "Traceback" not in pushed.stderr


def test_a_node_app_installs_with_npm_ci_and_runs_its_build_script(platform: Platform) -> None:
    app = platform.new_app("node-sample", "node")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Node.js app detected" in pushed.stderr
    assert "remote: -----> Installing dependencies with npm ci" in pushed.stderr
    assert "build script ran" in pushed.stderr
    [release] = platform.releases("node-sample")
    assert release["process_types"] == {"web": "npm start"}  # the buildpack's default
    files = platform.slug_of("node-sample", 1)
    assert "node_modules/is-number/package.json" in files
    assert "built.txt" in files


def test_a_broken_node_app_is_rejected(platform: Platform) -> None:
    app = platform.new_app("node-broken", "node")
    assert platform.push(app).returncode == 0
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = "node -e 'process.exit(3)'"
    platform.commit(app, {"package.json": json.dumps(package)})
    pushed = platform.push(app)
    rejected_with(pushed, "the Node.js build failed (see the output above)")
    assert [r["version"] for r in platform.releases("node-broken")] == [1]


def test_a_static_site_needs_no_procfile(platform: Platform) -> None:
    app = platform.new_app("static-sample", "static")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Static app detected" in pushed.stderr
    [release] = platform.releases("static-sample")
    assert release["process_types"]["web"].startswith("exec python3 -m http.server")
    assert "index.html" in platform.slug_of("static-sample", 1)


def test_a_broken_static_json_is_rejected(platform: Platform) -> None:
    app = platform.new_app("static-broken", "static")
    assert platform.push(app).returncode == 0
    platform.commit(app, {"static.json": '{"root": "../../etc"}'})
    pushed = platform.push(app)
    # The buildpack's own one-line reason is the push's.
    rejected_with(
        pushed,
        "static.json: root must be a relative path inside the app (letters, digits, . _ / -)",
    )
    assert [r["version"] for r in platform.releases("static-broken")] == [1]


def test_a_procfile_of_host_commands_is_enough(platform: Platform) -> None:
    app = platform.new_app("procfile-sample", "procfile")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Procfile app detected" in pushed.stderr
    [release] = platform.releases("procfile-sample")
    assert release["process_types"] == {
        "web": "python3 -m http.server $PORT",
        "worker": "sleep infinity",
    }


def test_a_procfile_command_missing_from_the_host_is_rejected(platform: Platform) -> None:
    app = platform.new_app("procfile-broken", "procfile")
    assert platform.push(app).returncode == 0
    platform.commit(app, {"Procfile": "web: slipway-no-such-server --port $PORT\n"})
    pushed = platform.push(app)
    rejected_with(pushed, "the Procfile build failed (see the output above)")
    assert "'slipway-no-such-server' is neither on this host" in pushed.stderr
    assert [r["version"] for r in platform.releases("procfile-broken")] == [1]


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"README.md": "no code\n"}, "no buildpack matches this app"),
        (
            {"Procfile": "web: python3 -m http.server $PORT\nthis line is wrong\n"},
            "Procfile line 2 is not `TYPE: command`: 'this line is wrong'",
        ),
        ({"Procfile": "worker: sleep 60\n"}, "no web process type"),
        (
            {"Procfile": "web: sleep 1\nweb: sleep 2\n"},
            "Procfile line 2: the process type 'web' is repeated",
        ),
    ],
    ids=["no-buildpack", "procfile-syntax", "no-web", "procfile-repeated-type"],
)
def test_bad_apps_are_rejected_with_the_reason(
    platform: Platform, files: dict[str, str], reason: str, request: pytest.FixtureRequest
) -> None:
    name = "bad-" + request.node.callspec.id
    app = platform.new_app(name, None, files)
    pushed = platform.push(app)
    rejected_with(pushed, reason)
    assert platform.remote_head(app) is None  # nothing stored: the push was refused whole
    assert platform.releases(name) == []
    assert platform.deployments(name)[0]["status"] == "build-error"


def test_a_procfile_that_is_a_symlink_is_not_read_through(platform: Platform) -> None:
    app = platform.new_app("symlinked-procfile", "procfile")
    (app / "Procfile").unlink()
    (app / "Procfile").symlink_to("/etc/shadow")
    platform.commit(app, {})
    pushed = platform.push(app)
    assert pushed.returncode != 0
    assert "root:" not in pushed.stderr


def test_submodules_are_refused_with_a_clear_message(platform: Platform) -> None:
    app = platform.new_app("with-submodule", "procfile")
    head = platform.run("git", "rev-parse", "HEAD", cwd=app).strip()
    platform.run(
        "git", "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib", cwd=app
    )
    platform.commit(
        app, {".gitmodules": '[submodule "lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n'}
    )
    pushed = platform.push(app)
    rejected_with(pushed, "git submodules are not supported: vendor the code into the app")


def test_only_the_deploy_branch_builds(platform: Platform) -> None:
    app = platform.new_app("branches", "procfile")
    platform.run("git", "checkout", "-q", "-b", "feature", cwd=app)
    first = platform.push(app, "feature")
    assert first.returncode == 0, first.stderr
    assert "refs/heads/feature stored, not deployed: push main (or master) to deploy" in (
        first.stderr
    )
    assert platform.deployments("branches") == []
    assert platform.push(app, "feature:main").returncode == 0
    platform.commit(app, {"notes.txt": "more\n"})
    later = platform.push(app, "feature")
    assert "refs/heads/feature stored, not deployed: only main deploys" in later.stderr
    assert len(platform.deployments("branches")) == 1
    # The app may name another branch.
    platform.run(SLIPWAY, "apps", "deploy-branch", "feature", cwd=app)
    platform.commit(app, {"notes.txt": "even more\n"})
    third = platform.push(app, "feature")
    assert "remote: -----> Released v2" in third.stderr, third.stderr
    assert platform.run(SLIPWAY, "apps", "deploy-branch", cwd=app).strip() == "feature"


def test_master_deploys_when_it_is_what_the_app_uses(platform: Platform) -> None:
    app = platform.new_app("on-master", "procfile")
    platform.run("git", "branch", "-m", "main", "master", cwd=app)
    pushed = platform.push(app, "master")
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Released v1" in pushed.stderr
    assert platform.get("/v1/apps/on-master")["deploy_branch"] == "master"


def test_a_force_push_builds_the_new_history(platform: Platform) -> None:
    app = platform.new_app("forced", "procfile")
    assert platform.push(app).returncode == 0
    platform.run("git", "checkout", "-q", "--orphan", "other", cwd=app)
    new = platform.commit(app, {"Procfile": "web: python3 -m http.server $PORT\n"}, "rewritten")
    pushed = platform.push(app, "--force", "other:main")
    assert pushed.returncode == 0, pushed.stderr
    assert platform.releases("forced")[0]["commit"] == new


def test_old_slugs_are_pruned_and_config_changes_make_releases(platform: Platform) -> None:
    app = platform.new_app("pruned", "procfile")
    for number in range(3):
        platform.commit(app, {"n.txt": str(number)})
        assert platform.push(app).returncode == 0
    assert [r["version"] for r in platform.releases("pruned")] == [3, 2, 1]
    assert len(platform.slugs("pruned")) == 2  # SLIPWAY_KEEP_RELEASES=2
    platform.run(SLIPWAY, "env", "set", "GREETING=hi", "-a", "pruned", cwd=app)
    latest = platform.releases("pruned")[0]
    assert latest["version"] == 4
    assert latest["description"] == "Set GREETING config var"
    assert latest["commit"] == platform.releases("pruned")[1]["commit"]  # the same slug


def test_a_slug_over_the_limit_is_rejected(platform: Platform) -> None:
    # A build script that writes 4 MB of incompressible bytes; the limit here is 3 MB.
    app = platform.new_app("too-big", "node")
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = (
        "node -e \"require('fs').writeFileSync('blob', require('crypto').randomBytes(4<<20))\""
    )
    platform.commit(app, {"package.json": json.dumps(package)})
    pushed = platform.push(app)
    rejected_with(pushed, "the slug is over the 3.0 MB limit (SLIPWAY_SLUG_MAX_MB)")
    assert platform.slugs("too-big") == []


def test_the_build_log_is_kept_and_shown(platform: Platform) -> None:
    app = platform.new_app("logged", "procfile")
    pushed = platform.push(app)
    assert pushed.returncode == 0
    [deployment] = platform.deployments("logged")
    shown = platform.run(SLIPWAY, "deployment-logs", str(deployment["id"]), cwd=app)
    assert "-----> Procfile app detected" in shown
    listed = platform.run(SLIPWAY, "deployments", cwd=app)
    assert "success" in listed and "v1" in listed


def test_build_output_reaches_the_pusher_as_it_comes(platform: Platform) -> None:
    app = platform.new_app("live", "node")
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = (
        "node -e \"console.log('before the pause'); "
        "setTimeout(() => console.log('after the pause'), 3000)\""
    )
    platform.commit(app, {"package.json": json.dumps(package)})
    push = subprocess.Popen(
        ["git", "push", "--progress", "slipway", "main"],
        cwd=app,
        env=platform.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert push.stderr is not None
    seen: dict[str, float] = {}
    for line in push.stderr:
        text = line.removeprefix("remote:").strip()  # not npm's echo of the command
        if text in ("before the pause", "after the pause"):
            seen[text] = time.monotonic()
    assert push.wait(60) == 0
    assert seen["after the pause"] - seen["before the pause"] >= 2.5, seen


def test_destroying_an_app_removes_its_slugs_cache_and_user(platform: Platform) -> None:
    app = platform.new_app("short-lived", "python")
    assert platform.push(app).returncode == 0
    uid = platform.uid("short-lived")
    slugs = platform.data / "slugs" / uid
    cache = platform.apps_dir / "caches" / uid
    assert any(slugs.iterdir())
    assert any(cache.iterdir())
    platform.run(SLIPWAY, "apps", "destroy", "--yes", cwd=app)
    wait_until(lambda: not slugs.exists() and not cache.exists(), 30, "the app's files to go")
    if os.geteuid() == 0:
        # Once the runner has stopped its instances (the deletion is retried until then).
        wait_until(lambda: not user_exists(user_name(uid)), 90, "the app's user to go")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_builds_run_as_the_apps_user_with_a_clean_environment(platform: Platform) -> None:
    app = platform.new_app("who-builds", "node")
    platform.run(SLIPWAY, "env", "set", "SECRET_TOKEN=s3cret", cwd=app)
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = (
        "node -e \"const e = process.env; console.log('uid=' + process.getuid() + "
        "' token=' + (e.SECRET_TOKEN || 'unset') + ' ssh=' + (e.SSH_AUTH_SOCK || 'unset'))\""
    )
    platform.commit(app, {"package.json": json.dumps(package)})
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    expected = (
        pwd.getpwnam(user_name(platform.uid("who-builds"))).pw_uid
        if os.geteuid() == 0
        else os.geteuid()
    )
    assert f"uid={expected} token=unset ssh=unset" in pushed.stderr
    if os.geteuid() == 0:
        assert expected != 0
    # The config vars are in the release, not in the build's environment.
    assert platform.releases("who-builds")[0]["version"] == 1
