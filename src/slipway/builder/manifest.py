"""app.json: the parts of Heroku's app manifest (and Scalingo's) that mean something on one
platform, checked.

- ``env``: config var defaults, each a string (the value) or an object with ``value``,
  ``generator: "secret"`` (the API makes 64 random hex characters), ``required`` (Heroku's
  default: true; a required var with no value must be set with ``slipway env set`` first)
  and ``description``;
- ``formation``: instances per process type, ``{"web": {"quantity": 2}}`` (Scalingo's
  ``amount`` too); ``size`` is accepted and ignored (one instance size per platform);
- ``scripts.postdeploy`` (Heroku) or ``scripts.first-deploy`` (Scalingo): a command run once,
  after the release command of the app's first release.

They apply at the app's first deploy only (the API decides, and never overrides a config
var already set). Everything else (name, addons, buildpacks, stack, environments...) is
ignored. Each problem is one line that names the field:
``app.json: env.SECRET_KEY.generator must be "secret"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slipway.store.errors import Invalid
from slipway.store.names import check_env_name, check_env_value

FILE = "app.json"
GENERATOR = "secret"  # the one generator: a random secret
MAX_QUANTITY = 20  # per process type, as the formation API allows
MAX_COMMAND = 10_000  # characters, as the API takes a release command
FIRST_DEPLOY_KEYS = ("postdeploy", "first-deploy")  # Heroku's, Scalingo's: the same meaning


class ManifestError(Exception):
    """What is wrong with app.json, in one line that starts with ``app.json:``."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{FILE}: {problem}")


@dataclass(frozen=True)
class ConfigDefault:
    """One ``env`` entry: a value, or a generated secret, or (required) neither."""

    value: str | None = None
    generator: str | None = None
    required: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Manifest:
    env: dict[str, ConfigDefault]
    formation: dict[str, int]
    sizes: bool  # some formation entry gave a size (ignored)
    first_deploy: str | None  # scripts.postdeploy / scripts.first-deploy

    @property
    def applies(self) -> bool:
        """Does it ask anything of the first deploy?"""
        return bool(self.env or self.formation or self.first_deploy)

    def check_required(self, config: dict[str, str]) -> None:
        """A required variable with no value must be set (``config``) before the first
        deploy."""
        for name, default in self.env.items():
            if default.required and name not in config:
                raise ManifestError(required_reason(name))

    def check_process_types(self, process_types: list[str]) -> None:
        known = ", ".join(sorted(process_types))
        for kind in self.formation:
            if kind not in process_types:
                raise ManifestError(
                    f"formation.{kind}: no process type {kind} (the release has {known})"
                )

    def summary(self, config: dict[str, str]) -> str:
        """What it brings to a first deploy whose config is ``config`` (never a value)."""
        added = [n for n, d in self.env.items() if n not in config and _has_value(d)]
        generated = sum(1 for n in added if self.env[n].generator == GENERATOR)
        kept = sum(1 for n in self.env if n in config)
        parts = []
        if added:
            plural = "s" if len(added) > 1 else ""
            parts.append(f"{len(added)} config var{plural}")
            if generated:
                parts[-1] += f" ({generated} generated)"
        if kept:
            parts.append(f"{kept} already set")
        if self.formation:
            counts = " ".join(f"{kind}={n}" for kind, n in sorted(self.formation.items()))
            parts.append(f"formation {counts}")
        if self.first_deploy:
            parts.append("postdeploy")
        return ", ".join(parts) or "nothing to apply"

    def for_release(self) -> dict[str, Any]:
        """What the API needs to apply it (descriptions stay here)."""
        return {
            "env": {
                name: {"value": d.value, "generator": d.generator, "required": d.required}
                for name, d in self.env.items()
            },
            "formation": dict(self.formation),
            "first_deploy_command": self.first_deploy,
        }


def required_reason(name: str) -> str:
    return (
        f"{name} is required and has no value: set it with `slipway env set {name}=...`, "
        "then push again"
    )


def parse_manifest(text: str) -> Manifest:
    """The checked manifest; ManifestError names the first problem."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(document, dict):
        raise ManifestError(f"must be a JSON object, not {_kind(document)}")
    formation, sizes = _formation(document.get("formation"))
    return Manifest(
        env=_env(document.get("env")),
        formation=formation,
        sizes=sizes,
        first_deploy=_first_deploy(document.get("scripts")),
    )


def _env(found: Any) -> dict[str, ConfigDefault]:
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ManifestError(f"env must be an object, not {_kind(found)}")
    env = {}
    for name, entry in found.items():
        try:
            check_env_name(name)
        except Invalid as error:
            raise ManifestError(f"env: {error.message}") from None
        env[name] = _config_default(name, entry)
    return env


def _config_default(name: str, entry: Any) -> ConfigDefault:
    where = f"env.{name}"
    if isinstance(entry, str):
        return ConfigDefault(value=_value(name, entry))
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} must be a string or an object, not {_kind(entry)}")
    value = entry.get("value")
    if value is not None and not isinstance(value, str):
        raise ManifestError(f"{where}.value must be a string, not {_kind(value)}")
    generator = entry.get("generator")
    if generator is not None and generator != GENERATOR:
        raise ManifestError(f'{where}.generator must be "{GENERATOR}"')
    if value is not None and generator is not None:
        raise ManifestError(f"{where} has both a value and a generator: keep one")
    required = entry.get("required", True)
    if not isinstance(required, bool):
        raise ManifestError(f"{where}.required must be true or false, not {_kind(required)}")
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        raise ManifestError(f"{where}.description must be a string, not {_kind(description)}")
    return ConfigDefault(
        value=None if value is None else _value(name, value),
        generator=generator,
        required=required and value is None and generator is None,
        description=description,
    )


def _value(name: str, value: str) -> str:
    try:
        return check_env_value(name, value)
    except Invalid as error:
        raise ManifestError(f"env: {error.message}") from None


def _formation(found: Any) -> tuple[dict[str, int], bool]:
    if found is None:
        return {}, False
    if not isinstance(found, dict):
        raise ManifestError(f"formation must be an object, not {_kind(found)}")
    formation, sizes = {}, False
    for kind, entry in found.items():
        where = f"formation.{kind}"
        if not isinstance(entry, dict):
            raise ManifestError(f'{where} must be an object such as {{"quantity": 1}}')
        given = [key for key in ("quantity", "amount") if key in entry]
        if len(given) > 1:
            raise ManifestError(f"{where} has both quantity and amount: keep one")
        if given:
            quantity = entry[given[0]]
            if (
                not isinstance(quantity, int)
                or isinstance(quantity, bool)
                or not 0 <= quantity <= MAX_QUANTITY
            ):
                raise ManifestError(
                    f"{where}.{given[0]} must be a whole number from 0 to {MAX_QUANTITY}, "
                    f"not {json.dumps(quantity)}"
                )
            formation[kind] = quantity
        sizes = sizes or "size" in entry
    return formation, sizes


def _first_deploy(found: Any) -> str | None:
    if found is None:
        return None
    if not isinstance(found, dict):
        raise ManifestError(f"scripts must be an object, not {_kind(found)}")
    given = [key for key in FIRST_DEPLOY_KEYS if key in found]
    if len(given) > 1:
        raise ManifestError(
            "scripts has both postdeploy and first-deploy (the same thing: keep one)"
        )
    if not given:
        return None
    where = f"scripts.{given[0]}"
    script = found[given[0]]
    if isinstance(script, dict):  # Heroku's {"command": "...", "size": "..."}
        where += ".command"
        script = script.get("command")
    if not isinstance(script, str):
        raise ManifestError(f"{where} must be a string (a command), not {_kind(script)}")
    command = script.strip()
    if not command:
        raise ManifestError(f"{where} is empty")
    if len(command) > MAX_COMMAND:
        raise ManifestError(f"{where} is longer than {MAX_COMMAND} characters")
    if "\x00" in command:
        raise ManifestError(f"{where} contains a NUL character")
    return command


def _has_value(default: ConfigDefault) -> bool:
    return default.value is not None or default.generator is not None


def _kind(value: Any) -> str:
    """The JSON name of a value's type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
