"""The embedded platform `slipwayd up` runs: its private servers and their supervisor.

``slipwayd up`` runs it; add-ons, the router and the runner use its ``Service`` and
``free_port``. It uses ``slipway.graceful`` and ``slipway.host`` only.
"""
