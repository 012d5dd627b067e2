"""An app's log, one path from the processes that write it to `slipway logs`.

- ``stream``: the format, one capped Redis stream per app (``slipway:logs:APP_UID``);
- ``ship``: a runner tails its instances' and one-offs' output files into that stream;
- ``routerlog``: a runner turns HAProxy's request log into the app's ``router`` lines;
- ``reader``: the API reads the stream back, filtered and followed, for ``GET .../logs``
  (``slipway.api.logs``), which `slipway logs` (``slipway.cli.logs``) prints.

The runner imports ``ship`` and ``routerlog``, the API ``reader``; this package imports only
redis-py and the standard library.
"""
