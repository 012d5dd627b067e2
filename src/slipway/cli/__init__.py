"""The `slipway` user CLI: talks to the control plane over HTTP only."""
