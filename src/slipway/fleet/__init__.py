"""The runners as the rest of the platform sees them, through Redis: which are alive
(``registry``), what each app's instances are doing and using (``processes``), and what they
announce to the operator (``announcements``).

Runners write; the API, ``slipwayd up`` and ``slipwayd admin`` read. It imports nothing else
from Slipway but ``slipway.jobs.connection``.
"""
