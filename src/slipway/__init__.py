"""Slipway: a self-hosted git-push Platform-as-a-Service."""

import warnings

__version__ = "0.1.0"

# asyncssh still names DSA types at import, and newer `cryptography` warns about each one on
# every command's stderr; Slipway refuses DSA keys anyway (see the gateway).
warnings.filterwarnings("ignore", message="DSA is deprecated")
