"""`python -m slipway.daemon`: how `slipwayd up` starts its children."""

from slipway.daemon import app

app()
