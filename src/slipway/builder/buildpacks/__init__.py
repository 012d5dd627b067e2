"""Slipway's own buildpacks, with the classic contract: ``bin/detect BUILD_DIR`` (exit 0 and
print a name), ``bin/compile BUILD_DIR CACHE_DIR ENV_DIR``, ``bin/release BUILD_DIR``
(YAML ``default_process_types``). Tried in this order; the first that detects builds."""

from __future__ import annotations

from pathlib import Path

BUILDPACKS_DIR = Path(__file__).parent
ORDER = ("python", "node", "static", "procfile")
