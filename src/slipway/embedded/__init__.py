"""The embedded platform `slipwayd up` runs: its private servers and their supervisor.

``slipwayd up`` runs it; add-ons and the router use its ``Service``. It uses
``slipway.graceful`` and ``slipway.host`` only.
"""
