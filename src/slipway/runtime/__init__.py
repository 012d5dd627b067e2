"""The runner: releases become running processes, behind the router.

A Deploy job (slipway.runtime.jobs) unpacks a release's slug, starts its web instances as
the app's Unix user, waits until each takes TCP connections on its PORT, switches the router
to them, and only then stops the previous release's instances. Crashed instances restart
with exponential back-off.

Only ``slipwayd`` imports it: ``runner``, and ``up`` to stop what runners leave when the
platform stops. It reports through ``slipway.fleet``
and ``slipway.applog``, routes through ``slipway.router``, and reaches the API over HTTP.
"""
