"""What store operations refuse, each with a stable code for the API and a human message."""

from __future__ import annotations


class StoreError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(StoreError):
    code = "invalid"
    status = 422


class NotFound(StoreError):
    code = "not_found"
    status = 404


class Conflict(StoreError):
    code = "conflict"
    status = 409


class Forbidden(StoreError):
    code = "forbidden"
    status = 403
