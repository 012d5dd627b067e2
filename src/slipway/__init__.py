"""Slipway: a self-hosted git-push Platform-as-a-Service."""

__version__ = "0.1.0"
