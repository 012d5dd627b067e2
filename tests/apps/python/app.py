"""A small web app with dependencies from PyPI (Flask, served by gunicorn)."""

import flask

app = flask.Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from python\n"
