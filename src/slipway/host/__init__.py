"""This machine, as every part that runs on it sees it: the Unix users apps run as and the
directories their files live in (``appuser``), and exclusive locks between processes
(``filelock``).

Builder, runtime, add-ons and the embedded servers import it; it imports nothing else from
Slipway, and ``filelock`` only the standard library (git-shell and the hooks use it).
"""
