"""This machine, as every part that runs on it sees it: the Unix users apps run as and the
directories their files live in (``appuser``), exclusive locks between processes
(``filelock``), and TCP ports for servers to listen on (``ports``).

Builder, runtime, add-ons and the embedded servers import it; it imports nothing else from
Slipway, and ``filelock`` only the standard library (git-shell and the hooks use it).
"""
