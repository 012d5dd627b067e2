"""The SSH gateway: our own SSH server for git push/fetch and database tunnels.

It authenticates keys against the control plane, accepts only git commands, asks the API
whether each one is allowed, and forwards the session to the host holding the repository.
"""
