"""The SSH gateway: our own SSH server for git push/fetch and database tunnels.

It authenticates keys against the control plane, accepts only git commands, asks the API
whether each one is allowed, and forwards the session to the host holding the repository.

Only ``slipwayd gateway`` imports it. It uses the builder's repository and git-shell rules,
the store's name rules, ``slipway.graceful`` and ``slipway.ssh``; it reaches the API over HTTP.
"""
