"""The control plane's HTTP API: public ``/v1`` (bearer tokens) and ``/internal`` (shared
secret, for the gateway and repo hosts)."""
