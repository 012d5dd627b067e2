"""The `slipway` user CLI: talks to the control plane over HTTP only.

Nothing imports it; it imports only the formats (``slipway.wire``), the store's name rules
(``slipway.store.names``, ``errors``) and the SSH pieces (``slipway.ssh``), never a server.
"""
