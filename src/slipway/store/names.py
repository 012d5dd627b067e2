"""Allowlists for the names users choose: apps, users, env variables, key and token names,
domains."""

from __future__ import annotations

import re

from slipway.store.errors import Invalid

APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,46}[a-z0-9]")
USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,38}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@ -]{0,99}")  # key and token names
ENV_NAME_MAX = 255
ENV_VALUE_MAX = 64 * 1024

# Names that would be confusing or collide with the platform's own hosts and paths.
RESERVED_APP_NAMES = frozenset(
    {
        "admin",
        "api",
        "app",
        "apps",
        "assets",
        "auth",
        "git",
        "gateway",
        "healthz",
        "internal",
        "login",
        "logout",
        "metrics",
        "new",
        "platform",
        "root",
        "router",
        "slipway",
        "ssh",
        "static",
        "status",
        "system",
        "www",
    }
)


APP_NAME_RULE = (
    "3 to 48 lowercase letters, digits and dashes, starting with a letter and not ending "
    "with a dash"
)


def check_app_name(name: str) -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name):
        raise Invalid(f"invalid app name {name!r}: use {APP_NAME_RULE}")
    if name in RESERVED_APP_NAMES:
        raise Invalid(f"the app name {name!r} is reserved")
    return name


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise Invalid(
            f"invalid user name {name!r}: use up to 39 lowercase letters, digits, "
            "dashes and underscores, starting with a letter"
        )
    return name


def check_env_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > ENV_NAME_MAX or not ENV_NAME.fullmatch(name):
        raise Invalid(
            f"invalid variable name {name!r}: use uppercase letters, digits and "
            "underscores, not starting with a digit"
        )
    return name


def check_env_value(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"the value of {name} must be a string")
    if len(value) > ENV_VALUE_MAX:
        raise Invalid(f"the value of {name} is longer than {ENV_VALUE_MAX} characters")
    if "\x00" in value:
        raise Invalid(f"the value of {name} contains a NUL character")
    return value


def check_label(kind: str, name: str) -> str:
    if not isinstance(name, str) or not LABEL.fullmatch(name):
        raise Invalid(
            f"invalid {kind} name {name!r}: use up to 100 letters, digits, spaces "
            "and . _ @ -, starting with a letter or digit"
        )
    return name


BRANCH_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")


def check_branch_name(name: str) -> str:
    """A branch name git would accept (a subset of git check-ref-format's rules)."""
    if (
        not isinstance(name, str)
        or not BRANCH_NAME.fullmatch(name)
        or ".." in name
        or "//" in name
        or name.endswith(("/", ".", ".lock"))
        or "/." in name
    ):
        raise Invalid(
            f"invalid branch name {name!r}: use letters, digits and . _ / - "
            "(as git allows), e.g. main or production"
        )
    return name


HOSTNAME_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
HOSTNAME_MAX = 253


def check_hostname(name: str) -> str:
    """A domain an app may answer at, lowercased: DNS labels (RFC 1123), at least two, not an
    address, and no wildcard (a certificate from ACME's HTTP-01 covers one name)."""
    if not isinstance(name, str):
        raise Invalid("a domain must be a string")
    hostname = name.strip().lower().removesuffix(".")
    if hostname.startswith("*."):
        raise Invalid(
            f"wildcard domains are not allowed ({name!r}): add each name, e.g. "
            f"www.{hostname[2:]} and api.{hostname[2:]}"
        )
    labels = hostname.split(".")
    if (
        len(hostname) > HOSTNAME_MAX
        or len(labels) < 2
        or not all(HOSTNAME_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise Invalid(
            f"invalid domain {name!r}: use a full DNS name such as www.example.com "
            "(letters, digits and dashes in dot-separated labels)"
        )
    return hostname
