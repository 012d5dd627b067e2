"""Formats shared by the API, the builders, the runners and the CLI: the states of a
deployment (``deployment_states``) and the frames of a `slipway run` WebSocket
(``oneoff_frames``).

Standard library only, so any part (the CLI included) imports it without pulling in a
server's dependencies; a change here is a change of wire format.
"""
