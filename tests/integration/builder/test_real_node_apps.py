"""Node.js apps of the shapes real ones have, made at test time by their own package managers
(Yarn 4 with its release checked in and Plug'n'Play, Yarn 4 through corepack, pnpm, Yarn 1),
pushed to a real `slipwayd up`: each builds with the manager it declares, and its Express
server answers through the router, started by that manager at run time. An engines.node the
host's Node.js does not satisfy rejects the push, naming both versions."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builds_support import Platform

pytestmark = pytest.mark.timeout(600)

YARN_BERRY = "4.9.4"
YARN_CLASSIC = "1.22.22"
PNPM = "10.15.0"
EXPRESS = "5.1.0"
NODE = subprocess.run(
    ["node", "-p", "process.versions.node"], capture_output=True, text=True, check=True
).stdout.strip()
# What `yarn init`-made apps ignore (Yarn's own advice without zero-installs), and the rest.
YARN_BERRY_GITIGNORE = """\
.pnp.*
.yarn/*
!.yarn/patches
!.yarn/plugins
!.yarn/releases
!.yarn/sdks
!.yarn/versions
node_modules/
"""


def express_app(says: str, **package: object) -> dict[str, str]:
    """package.json (express, a devDependency, a start and a build script, and ``package``)
    and an Express server that answers ``says`` on PORT."""
    manifest = {
        "name": "real-node-app",
        "version": "1.0.0",
        "private": True,
        "scripts": {"start": "node server.js", "build": "node -e \"console.log('bundled')\""},
        "dependencies": {"express": EXPRESS},
        "devDependencies": {"is-number": "7.0.0"},
        **package,
    }
    server = (
        'const express = require("express");\n'
        "const app = express();\n"
        f'app.get("/", (request, response) => response.send("{says}\\n"));\n'
        "app.listen(Number(process.env.PORT));\n"
    )
    return {
        "package.json": json.dumps(manifest, indent=2) + "\n",
        "server.js": server,
        ".gitignore": "node_modules/\n",
    }


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # This host's npm registry serves no signatures: corepack checks the hashes only.
    platform = Platform(
        tmp_path_factory.mktemp("node-apps"),
        settings={"COREPACK_INTEGRITY_KEYS": "0", "SLIPWAY_BUILD_TIMEOUT": "90"},
    )
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment a developer's machine runs yarn and pnpm in (through corepack): not
    CI's, where Yarn 2+ and pnpm refuse to write the lockfile a first install makes."""
    home = tmp_path_factory.mktemp("developer")
    registry = subprocess.run(
        ["npm", "config", "get", "registry"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        **{name: value for name, value in os.environ.items() if name != "CI"},
        "HOME": str(home),
        "COREPACK_HOME": str(home / "corepack"),
        "COREPACK_NPM_REGISTRY": registry.rstrip("/"),
        "COREPACK_INTEGRITY_KEYS": "0",
        "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
    }


def develop(tools: dict[str, str], app: Path, *argv: str) -> None:
    """Run a package manager's command in the app, as its developer does."""
    done = subprocess.run(argv, cwd=app, env=tools, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"


def built(pushed: subprocess.CompletedProcess[str], *lines: str) -> None:
    assert pushed.returncode == 0, pushed.stderr
    for line in lines:
        assert f"remote: {line}" in pushed.stderr, pushed.stderr


def test_a_yarn_4_app_with_its_release_checked_in_runs_with_plug_n_play(
    platform: Platform, tools: dict[str, str]
) -> None:
    files = express_app("express on yarn berry")
    files[".gitignore"] = YARN_BERRY_GITIGNORE
    app = platform.new_app("yarn-berry", None, files)
    # .yarn/releases/yarn-4.9.4.cjs and .yarnrc.yml's yarnPath, then yarn.lock, by Yarn.
    develop(tools, app, "corepack", f"yarn@{YARN_BERRY}", "set", "version", "self", "--yarn-path")
    develop(tools, app, "node", f".yarn/releases/yarn-{YARN_BERRY}.cjs", "install")
    platform.commit(app, {}, "yarn 4")
    assert "yarnPath: .yarn/releases/" in (app / ".yarnrc.yml").read_text()

    pushed = platform.push(app)
    built(
        pushed,
        f"-----> Using Node.js v{NODE} and yarn {YARN_BERRY} "
        "(packageManager in package.json, yarnPath in .yarnrc.yml)",
        "-----> Installing dependencies with yarn install --immutable",
        "-----> Running the build script (yarn run build)",
        "       bundled",
    )
    assert "were added to the project" in pushed.stderr  # fetched into the app's cache
    [release] = platform.releases("yarn-berry")
    assert release["process_types"] == {"web": "yarn start"}
    files_in_slug = platform.slug_of("yarn-berry", 1)
    assert ".pnp.cjs" in files_in_slug
    assert any(f.startswith(".yarn/cache/express-npm-") for f in files_in_slug), files_in_slug
    assert not any(f.startswith("node_modules/") for f in files_in_slug)
    platform.answers("yarn-berry", "express on yarn berry")

    # The next build takes its packages from the app's cache: nothing is fetched.
    platform.commit(app, {"server.js": (app / "server.js").read_text().replace("berry", "v2")})
    again = platform.push(app)
    built(again, "-----> Installing dependencies with yarn install --immutable")
    assert "were added to the project" not in again.stderr, again.stderr
    platform.answers("yarn-berry", "express on yarn v2")


def test_a_yarn_4_app_without_its_release_gets_it_from_corepack(
    platform: Platform, tools: dict[str, str]
) -> None:
    app = platform.new_app("yarn-modules", None, express_app("express on yarn node_modules"))
    develop(tools, app, "corepack", f"yarn@{YARN_BERRY}", "set", "version", YARN_BERRY)
    develop(tools, app, "corepack", "yarn", "config", "set", "nodeLinker", "node-modules")
    develop(tools, app, "corepack", "yarn", "install")
    platform.commit(app, {}, "yarn 4 with node_modules")
    assert json.loads((app / "package.json").read_text())["packageManager"].startswith("yarn@4")

    pushed = platform.push(app)
    built(
        pushed,
        f"-----> Using Node.js v{NODE} and yarn {YARN_BERRY} (packageManager in package.json)",
        "-----> Installing dependencies with yarn install --immutable",
        "-----> Pruning devDependencies",
    )
    files_in_slug = platform.slug_of("yarn-modules", 1)
    assert "node_modules/express/package.json" in files_in_slug
    assert "node_modules/is-number/package.json" not in files_in_slug  # a devDependency
    assert not any(f.startswith(".yarn/cache/") for f in files_in_slug)  # not needed to run
    platform.answers("yarn-modules", "express on yarn node_modules")


def test_a_pnpm_app_builds_with_pnpm_and_its_procfile_runs_pnpm(
    platform: Platform, tools: dict[str, str]
) -> None:
    files = express_app("express on pnpm")
    files["Procfile"] = "web: pnpm run serve\n"
    app = platform.new_app("pnpm-express", None, files)
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["serve"] = "node server.js"
    platform.commit(app, {"package.json": json.dumps(package, indent=2) + "\n"})
    # packageManager (with its hash) and pnpm-lock.yaml, by corepack and pnpm.
    develop(tools, app, "corepack", "use", f"pnpm@{PNPM}")
    platform.commit(app, {}, "pnpm")
    assert json.loads((app / "package.json").read_text())["packageManager"].startswith(
        f"pnpm@{PNPM}+sha"
    )

    pushed = platform.push(app)
    built(
        pushed,
        f"-----> Using Node.js v{NODE} and pnpm {PNPM} (packageManager in package.json)",
        "-----> Installing dependencies with pnpm install --frozen-lockfile",
        f"       + express {EXPRESS}",
        "-----> Running the build script (pnpm run build)",
    )
    [release] = platform.releases("pnpm-express")
    assert release["process_types"] == {"web": "pnpm run serve"}
    files_in_slug = platform.slug_of("pnpm-express", 1)
    assert "node_modules/express" in files_in_slug  # pnpm's link into node_modules/.pnpm
    assert not any("is-number" in f for f in files_in_slug)  # a devDependency
    platform.answers("pnpm-express", "express on pnpm")


def test_a_yarn_lock_alone_builds_with_yarn_1(platform: Platform, tools: dict[str, str]) -> None:
    app = platform.new_app("yarn-classic", None, express_app("express on yarn classic"))
    develop(tools, app, "corepack", f"yarn@{YARN_CLASSIC}", "install")
    platform.commit(app, {}, "yarn.lock")
    assert "packageManager" not in json.loads((app / "package.json").read_text())

    pushed = platform.push(app)
    built(
        pushed,
        f"-----> Using Node.js v{NODE} and yarn {YARN_CLASSIC} (yarn.lock)",
        "-----> Installing dependencies with yarn install --frozen-lockfile",
        "-----> Running the build script (yarn run build)",
    )
    [release] = platform.releases("yarn-classic")
    assert release["process_types"] == {"web": "yarn start"}
    files_in_slug = platform.slug_of("yarn-classic", 1)
    assert "node_modules/express/package.json" in files_in_slug
    assert "node_modules/is-number/package.json" not in files_in_slug
    platform.answers("yarn-classic", "express on yarn classic")


def test_an_engines_node_the_host_lacks_rejects_the_push(platform: Platform) -> None:
    app = platform.new_app("node-engines", None, express_app("never", engines={"node": ">=99"}))
    pushed = platform.push(app)
    reason = f"package.json asks for Node.js >=99 (engines.node); this host has {NODE}"
    assert pushed.returncode != 0, pushed.stderr
    assert f"remote:  !     Push rejected: {reason}" in pushed.stderr, pushed.stderr
    assert platform.releases("node-engines") == []


def test_lockfiles_of_two_package_managers_reject_the_push(platform: Platform) -> None:
    files = {**express_app("never"), "yarn.lock": "", "pnpm-lock.yaml": ""}
    app = platform.new_app("two-lockfiles", None, files)
    pushed = platform.push(app)
    assert pushed.returncode != 0, pushed.stderr
    assert (
        "remote:  !     Push rejected: lockfiles of two package managers (yarn.lock "
        "pnpm-lock.yaml): keep the one the app uses, or name it in package.json's packageManager"
    ) in pushed.stderr, pushed.stderr
