"""The job payload: Sidekiq's JSON, its timestamps, and what may go in ``args``.

Sidekiq writes ``JSON.generate`` output: compact, UTF-8 left as is. We write the same, and
refuse anything that would not come back unchanged from JSON, naming where it is.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from datetime import datetime
from typing import Any

Job = dict[str, Any]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_decoder = json.JSONDecoder()


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def loads(raw: str | bytes) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return _decoder.decode(raw)


def new_jid() -> str:
    """24 lowercase hex characters, as ``SecureRandom.hex(12)``."""
    return secrets.token_hex(12)


def now() -> float:
    return time.time()


def timestamp_seconds(value: float | int | None) -> float | None:
    """Epoch seconds from a payload timestamp: a float is seconds, an int is ms (Sidekiq 8)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value / 1000
    return float(value)


def epoch(at: float | int | datetime) -> float:
    """Epoch seconds from a number or an aware datetime; naive datetimes are ambiguous."""
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("a datetime given as `at` must carry a time zone")
        return at.timestamp()
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise TypeError(f"`at` must be epoch seconds or an aware datetime, not {at!r}")
    return float(at)


_NATIVE = "use str, int, float, bool, None, list, or dict with str keys"


def _bad_value(value: Any, path: str) -> str | None:
    """The first non-JSON-native value under ``value``, described with its path."""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path} is a str with a lone surrogate, which is not valid UTF-8"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, which JSON cannot hold"
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_value(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r} ({type(key).__name__}); JSON keys are str"
            found = _bad_value(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return f"{path} is a {type(value).__name__}, not a JSON-native type ({_NATIVE})"


def check_native(value: Any, path: str) -> None:
    """A TypeError naming the path of the first value JSON would not give back unchanged."""
    problem = _bad_value(value, path)
    if problem:
        raise TypeError(problem)


def check_args(args: Any) -> list[Any]:
    """``args`` as a list (a tuple is accepted at the top level only), checked."""
    if isinstance(args, tuple):
        args = list(args)
    if not isinstance(args, list):
        raise TypeError(f"args must be a list, not {type(args).__name__}")
    check_native(args, "args")
    return args
