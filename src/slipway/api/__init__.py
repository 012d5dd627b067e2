"""The control plane's HTTP API: public ``/v1`` (bearer tokens) and ``/internal`` (shared
secret, for the gateway and repo hosts).

Only ``slipwayd api`` (``slipway.daemon``) imports it: every other part, the CLI included,
reaches the API over HTTP.
"""
