"""SSH transport pieces shared by both ends of Slipway's SSH: the gateway and the CLI's
`slipway db-tunnel` relay bytes between a TCP socket and a ``direct-tcpip`` channel
(``tcp_relay``), and skip asyncssh's per-packet ``MSG_IGNORE`` (``msg_ignore``).

It imports asyncssh and nothing else from Slipway.
"""
