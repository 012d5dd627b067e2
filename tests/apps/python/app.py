"""A tiny web app that needs a package from PyPI (six)."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from python, six {six.__version__}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    HTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
