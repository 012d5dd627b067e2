"""The runner: releases become running processes, behind the router.

A Deploy job (slipway.runtime.jobs) unpacks a release's slug, starts its web instances as
the app's Unix user, waits until each takes TCP connections on its PORT, switches the router
to them, and only then stops the previous release's instances. Crashed instances restart
with exponential back-off.
"""
