"""The embedded platform `slipwayd up` runs: its private servers and their supervisor."""
