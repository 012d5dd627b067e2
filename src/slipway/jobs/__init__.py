"""slipway.jobs: a Sidekiq-compatible job system (same Redis layout, same semantics).

Enqueue from Python for Ruby or Python workers, run Ruby-enqueued jobs in Python, and see
every process in Sidekiq's own API and Web UI. It imports nothing else from Slipway.
"""

from slipway.jobs.client import AsyncClient, Client
from slipway.jobs.periodic import periodic
from slipway.jobs.registry import DISCARD, KILL, JobFunction, configure, job

__all__ = [
    "DISCARD",
    "KILL",
    "AsyncClient",
    "Client",
    "JobFunction",
    "configure",
    "job",
    "periodic",
]
