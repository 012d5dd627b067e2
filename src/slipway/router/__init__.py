"""The HTTP router: a private HAProxy, and the host → instances table kept in it.

HAProxy runs in master-worker mode with its files in ``DATA_DIR/router``. Its configuration
never changes while it runs: apps get one of a fixed pool of backends ("slots") through a
host → slot map, and their instances are servers added to and removed from that slot, all
through HAProxy's runtime API. No reload, so no connection is ever refused or cut.

The runner and ``slipwayd`` import it; it uses only ``slipway.embedded`` and ``slipway.host``.
"""

# The router's line per request goes through HAProxy's ring to the runner's reader
# (slipway.applog.routerlog), at most this long; the ring holds this much while it reads.
LOG_LINE_MAX = 8192
LOG_RING = "requests"
LOG_RING_BYTES = 8 << 20
