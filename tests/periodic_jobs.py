"""A periodic job for the exactly-once test: every second, it records the second it ran in."""

from __future__ import annotations

import json
import time

from slipway import jobs
from slipway.jobs.registry import default_client


@jobs.periodic("* * * * * *")  # croniter's sixth field: seconds
@jobs.job()
def every_second() -> None:
    default_client().redis.rpush("results", json.dumps(int(time.time())))
