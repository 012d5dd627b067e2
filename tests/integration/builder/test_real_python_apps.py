"""Python apps in the shape real ones have, pushed as a Heroku or Scalingo user would push
them: made at test time by the frameworks' own tools (``django-admin startproject``,
``uv lock``, ``poetry lock``, ``pipenv lock``), with the conventions their platforms read
(runtime.txt, a commented .python-version, a Procfile ``release:`` line, whitenoise and
collectstatic, a web and a worker process on a Redis add-on). Each answers through the
router with its own page, or is refused with one line naming what this host lacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builds_support import SLIPWAY, Platform

pytestmark = pytest.mark.timeout(600)

UV = str(Path(sys.executable).parent / "uv")
HOST_PYTHON = subprocess.run(
    ["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:3])"],
    capture_output=True,
    text=True,
    check=True,
).stdout.split()
# A patch of the host's own minor that it lacks: the build takes the closest one it has.
MISSING_PATCH = f"{HOST_PYTHON[0]}.{HOST_PYTHON[1]}.{int(HOST_PYTHON[2]) + 4}"
HOST_VERSION = ".".join(HOST_PYTHON)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("real-python"))
    platform.start()
    yield platform
    platform.stop()


def tool(platform: Platform, cwd: Path, *argv: str) -> None:
    """A project tool (django-admin, uv, poetry, pipenv) run through uv, as a developer
    runs it on their machine before pushing."""
    done = subprocess.run(
        [UV, *argv], cwd=cwd, env=platform.env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{argv}: {done.stderr}"


def cli(platform: Platform, *argv: str) -> str:
    return platform.run(SLIPWAY, *argv)


DJANGO_SETTINGS = """
import os

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY", SECRET_KEY)
DEBUG = False
ALLOWED_HOSTS = ["*"]
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
STATIC_ROOT = BASE_DIR / "staticfiles"
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
ROOT_URLCONF = "mysite.pages"
"""

DJANGO_PAGES = """
import os

from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpResponse
from django.urls import path


def home(request):
    return HttpResponse(f"django on {os.environ['DYNO']} says hello")


def database(request):
    return HttpResponse(f"{connection.vendor} has {User.objects.count()} users")


urlpatterns = [path("", home), path("db/", database), path("admin/", admin.site.urls)]
"""


def django_project(platform: Platform, name: str, files: dict[str, str]) -> Path:
    """``django-admin startproject mysite`` with the changes Heroku's Django guide makes
    (whitenoise, STATIC_ROOT, dj-database-url, gunicorn), committed as app ``name``."""
    directory = platform.home / name
    directory.mkdir()
    tool(platform, directory, "tool", "run", "--from", "django>=5.2,<6", "django-admin",
         "startproject", "mysite", ".")  # fmt: skip
    settings = directory / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + DJANGO_SETTINGS)
    (directory / "mysite" / "pages.py").write_text(DJANGO_PAGES)
    files = {
        "requirements.txt": "django>=5.2,<6\ngunicorn\nwhitenoise\ndj-database-url\n"
        "psycopg[binary]\n",
        "Procfile": "web: gunicorn mysite.wsgi --bind 127.0.0.1:$PORT\n"
        "release: ./manage.py migrate --no-input\n",
        **files,
    }
    platform.run("git", "init", "-q", "--initial-branch=main", cwd=directory)
    platform.commit(directory, files, "startproject")
    platform.run(SLIPWAY, "apps", "create", name, cwd=directory)
    return directory


def test_django_with_a_patch_version_the_host_lacks_and_a_postgresql_addon(
    platform: Platform,
) -> None:
    app = django_project(platform, "dj-postgres", {"runtime.txt": f"python-{MISSING_PATCH}\n"})
    cli(platform, "addons", "add", "postgresql", "-a", "dj-postgres")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    out = pushed.stderr
    assert f"Python {MISSING_PATCH} is not on this host: using {HOST_VERSION}" in out
    assert f"Creating the virtualenv with Python {HOST_VERSION}" in out
    assert "-----> Running python manage.py collectstatic --noinput" in out
    assert "static files copied" in out
    assert "Release command: ./manage.py migrate --no-input" in out
    # The release phase migrated the add-on's database before the web process started.
    assert "postgresql has 0 users" in platform.answers("dj-postgres", "users", 90, "/db/")
    assert platform.visit("dj-postgres").text == "django on web.1 says hello"
    # whitenoise serves what collectstatic gathered at build time.
    css = platform.visit("dj-postgres", "/static/admin/css/base.css")
    assert css.status_code == 200 and "Admin styles" in css.text
    assert platform.wait_for_log("dj-postgres", "Apply all migrations")["i"] == "release.1"


def test_django_with_a_commented_python_version_file(platform: Platform) -> None:
    app = django_project(
        platform,
        "dj-sqlite",
        {".python-version": f"# The Python version to use for the project.\n\n"
         f"{HOST_PYTHON[0]}.{HOST_PYTHON[1]}\n"},
    )  # fmt: skip
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert f"Creating the virtualenv with Python {HOST_VERSION}" in pushed.stderr
    assert "sqlite has 0 users" in platform.answers("dj-sqlite", "users", 90, "/db/")


def test_collectstatic_failing_fails_the_build_with_djangos_words(platform: Platform) -> None:
    """The classic: a stylesheet naming an image that is not there, under whitenoise's
    manifest storage."""
    app = django_project(platform, "dj-broken-static", {})
    settings = (app / "mysite" / "settings.py").read_text() + (
        'STATICFILES_DIRS = [BASE_DIR / "assets"]\n'
        'STORAGES = {"staticfiles": {"BACKEND": '
        '"whitenoise.storage.CompressedManifestStaticFilesStorage"}}\n'
    )
    platform.commit(
        app,
        {
            "mysite/settings.py": settings,
            "assets/site.css": 'body { background: url("missing.png"); }\n',
        },
    )
    pushed = platform.push(app)
    assert pushed.returncode != 0
    assert re.search(
        r"Push rejected: collectstatic failed: .*The file 'missing.png' could not be found",
        pushed.stderr,
    ), pushed.stderr
    assert "(the config var DISABLE_COLLECTSTATIC=1 skips it)" in pushed.stderr
    assert platform.releases("dj-broken-static") == []
    # The config var that Heroku users know skips it: the build then passes.
    cli(platform, "env", "set", "DISABLE_COLLECTSTATIC=1", "-a", "dj-broken-static")
    skipped = platform.push(app)
    assert skipped.returncode == 0, skipped.stderr
    assert "collectstatic" not in skipped.stderr


def test_a_python_minor_the_host_cannot_have_is_named_in_one_line(platform: Platform) -> None:
    app = django_project(platform, "dj-old-python", {"runtime.txt": "python-3.10.6\n"})
    pushed = platform.push(app)
    assert pushed.returncode != 0
    [reason] = [line for line in pushed.stderr.splitlines() if "Push rejected" in line]
    assert reason.startswith(
        "remote:  !     Push rejected: Python 3.10.6 (runtime.txt) is not on this host (it "
        f"has {HOST_VERSION}"
    ), reason
    assert "could not be installed" in reason
    assert "Traceback" not in pushed.stderr


FLASK_CELERY = """
import os

from celery import Celery
from flask import Flask

celery = Celery(__name__, broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app = Flask(__name__)


@celery.task
def add(a, b):
    return f"{a} + {b} = {a + b} on {os.environ['DYNO']}"


@app.route("/")
def home():
    return "celery says " + add.delay(2, 3).get(timeout=30)
"""


def test_flask_and_celery_on_a_redis_addon(platform: Platform) -> None:
    app = platform.new_app(
        "flask-celery",
        None,
        {
            "requirements.txt": "flask\ngunicorn\ncelery[redis]\n",
            "app.py": FLASK_CELERY,
            "Procfile": "web: gunicorn app:app --bind 127.0.0.1:$PORT\n"
            "worker: celery -A app.celery worker --loglevel=info --concurrency=1\n",
        },
    )
    cli(platform, "addons", "add", "redis", "-a", "flask-celery")
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    cli(platform, "scale", "worker=1", "-a", "flask-celery")
    body = platform.answers("flask-celery", "celery says", timeout=90)
    assert body == "celery says 2 + 3 = 5 on worker.1"


FASTAPI_MAIN = """
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def home():
    return {"framework": "fastapi", "dyno": os.environ["DYNO"], "app": os.environ["APP"]}
"""


def test_fastapi_with_a_uv_lock(platform: Platform) -> None:
    directory = platform.home / "fastapi-uv"
    directory.mkdir()
    tool(platform, directory, "init", "--bare", "--name", "fastapi-uv", "--python", HOST_VERSION)
    tool(platform, directory, "add", "--no-sync", "fastapi", "uvicorn")
    assert (directory / "uv.lock").is_file()
    platform.run("git", "init", "-q", "--initial-branch=main", cwd=directory)
    platform.commit(
        directory,
        {
            "main.py": FASTAPI_MAIN,
            "Procfile": "web: uvicorn main:app --host 127.0.0.1 --port $PORT\n",
        },
    )
    platform.run(SLIPWAY, "apps", "create", "fastapi-uv", cwd=directory)
    pushed = platform.push(directory)
    assert pushed.returncode == 0, pushed.stderr
    assert "Installing dependencies from uv.lock" in pushed.stderr
    answer = platform.answers("fastapi-uv", "fastapi")
    assert json.loads(answer) == {"framework": "fastapi", "dyno": "web.1", "app": "fastapi-uv"}


FLASK_APP = """
import os

import flask
from greeting import GREETING

app = flask.Flask(__name__)


@app.route("/")
def home():
    return f"{GREETING} from {os.environ['APP']}"
"""


def flask_app_files(greeting: str) -> dict[str, str]:
    return {
        "app.py": FLASK_APP,
        "greeting.py": f"GREETING = {greeting!r}\n",
        "Procfile": "web: gunicorn app:app --bind 127.0.0.1:$PORT\n",
    }


def locked_app(platform: Platform, name: str, files: dict[str, str], *lock: list[str]) -> Path:
    """An app whose lock is made by its own tool before the first commit."""
    directory = platform.home / name
    directory.mkdir()
    for path, text in files.items():
        (directory / path).write_text(text)
    for argv in lock:
        tool(platform, directory, *argv)
    platform.run("git", "init", "-q", "--initial-branch=main", cwd=directory)
    platform.commit(directory, {})
    platform.run(SLIPWAY, "apps", "create", name, cwd=directory)
    return directory


def test_a_poetry_project_installs_its_locked_main_dependencies(platform: Platform) -> None:
    pyproject = (
        '[tool.poetry]\nname = "poetry-app"\nversion = "0.1.0"\ndescription = ""\n'
        'authors = ["a <a@a>"]\npackage-mode = false\n\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\nflask = "^3.0"\ngunicorn = "*"\n\n'
        '[tool.poetry.group.dev.dependencies]\npytest = "*"\n'
    )
    app = locked_app(
        platform,
        "poetry-app",
        {"pyproject.toml": pyproject, **flask_app_files("poetry")},
        ["tool", "run", "--from", "poetry", "poetry", "lock", "--no-interaction"],
    )
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "Exporting the locked requirements with Poetry" in pushed.stderr
    assert "Installing dependencies from poetry.lock" in pushed.stderr
    assert "+ flask==" in pushed.stderr
    assert "pytest" not in pushed.stderr  # the dev group stays out
    assert platform.answers("poetry-app", "poetry from poetry-app")


def test_a_pipenv_project_installs_from_its_pipfile_lock(platform: Platform) -> None:
    pipfile = (
        '[[source]]\nurl = "https://pypi.org/simple"\nverify_ssl = true\nname = "pypi"\n\n'
        '[packages]\nflask = "*"\ngunicorn = "*"\n\n[dev-packages]\npytest = "*"\n'
    )
    app = locked_app(
        platform,
        "pipenv-app",
        {"Pipfile": pipfile, **flask_app_files("pipenv")},
        ["tool", "run", "--from", "pipenv", "pipenv", "lock"],
    )
    assert (app / "Pipfile.lock").is_file()
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "Installing dependencies from Pipfile.lock" in pushed.stderr
    assert "pytest" not in pushed.stderr
    assert platform.answers("pipenv-app", "pipenv from pipenv-app")


def test_a_pipfile_without_its_lock_is_refused_with_the_fix(platform: Platform) -> None:
    app = platform.new_app("pipfile-only", None, {"Pipfile": '[packages]\nflask = "*"\n'})
    pushed = platform.push(app)
    assert "Push rejected: a Pipfile without its Pipfile.lock: run `pipenv lock`" in pushed.stderr


def test_requirements_with_an_editable_local_package_then_with_hashes(
    platform: Platform,
) -> None:
    """`-e ./lib` becomes a regular install (the slug runs from another directory than the
    build's), and a `--hash` file is checked (pip's rule: all hashed or none, so apart)."""
    library = {
        "lib/pyproject.toml": '[project]\nname = "greeting"\nversion = "1.0"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        "lib/src/greeting/__init__.py": 'GREETING = "editable"\n',
    }
    files = {**flask_app_files("unused"), **library}
    del files["greeting.py"]
    files["requirements.txt"] = "-e ./lib\nflask\ngunicorn\n"
    app = platform.new_app("editable-app", None, files)
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert "+ greeting==1.0 (from file://" in pushed.stderr
    assert platform.answers("editable-app", "editable from editable-app")

    (app / "in.txt").write_text("flask==3.1.1\ngunicorn==23.0.0\n")
    tool(platform, app, "pip", "compile", "--quiet", "--generate-hashes", "--python-version",
         f"{HOST_PYTHON[0]}.{HOST_PYTHON[1]}", "in.txt", "-o", "requirements.txt")  # fmt: skip
    hashed = (app / "requirements.txt").read_text()
    assert "--hash=sha256:" in hashed
    platform.commit(app, {"greeting.py": 'GREETING = "hashed"\n'})
    pushed = platform.push(app)
    assert pushed.returncode == 0, pushed.stderr
    assert platform.answers("editable-app", "hashed from editable-app")
    # Hashes that do not match are refused by uv, naming the package.
    lines, skipping = [], False
    for line in hashed.splitlines():
        if skipping and line.lstrip().startswith("--hash"):
            continue
        skipping = line.startswith("flask==")
        lines.append(f"flask==3.1.1 --hash=sha256:{'0' * 64}" if skipping else line)
    tampered = "\n".join(lines) + "\n"
    assert tampered != hashed
    platform.commit(app, {"requirements.txt": tampered})
    refused = platform.push(app)
    assert refused.returncode != 0
    assert "hash mismatch" in refused.stderr.lower(), refused.stderr
