"""``GET /v1/apps/{app}/logs``: the app's log (its instances' output, the router's lines,
the platform's events) as NDJSON, one JSON object per line; with ``follow`` the response
goes on as lines come, with an empty line every 15 s of silence (a keep-alive), until the
client goes away. Each line has its ``id``: a follower that lost its connection asks
again with ``after=ID`` and misses nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import redis
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from slipway.api.auth import CurrentCaller, Db
from slipway.api.errors import ApiError
from slipway.applog import reader
from slipway.jobs import Client
from slipway.store import apps
from slipway.store.apps import Action

router = APIRouter(prefix="/v1/apps/{app}", tags=["logs"])

KEEPALIVE = 15.0  # seconds of silence before an empty line
SOURCES = ("app", "router", "slipway")


@router.get("/logs", response_class=StreamingResponse)
def app_logs(
    request: Request,
    db: Db,
    caller: CurrentCaller,
    app: str,
    lines: Annotated[int, Query(ge=0, le=100_000, description="The last lines.")] = 100,
    follow: Annotated[bool, Query(description="Go on with new lines as they come.")] = False,
    filter: Annotated[
        str | None,
        Query(max_length=200, description="Process types or instances: web, web.1, worker|clock"),
    ] = None,
    source: Annotated[list[str] | None, Query(description="app, router or slipway.")] = None,
    since: Annotated[datetime | None, Query(description="Lines from this time on.")] = None,
    after: Annotated[
        str | None, Query(pattern=r"^[0-9]+-[0-9]+$", description="Lines after this id.")
    ] = None,
) -> StreamingResponse:
    """The app's log as NDJSON: ``id``, ``time``, ``source``, ``instance``, ``release``,
    ``stream``, ``message``."""
    with db.session() as session:
        uid = apps.app_for(session, caller.user(session), app, Action.READ).uid
    unknown = sorted(set(source or []) - set(SOURCES))
    if unknown:
        raise ApiError(422, "invalid", f"no log source {', '.join(unknown)} ({', '.join(SOURCES)})")
    try:
        match = reader.Match.parse(filter, source)
    except ValueError as error:
        raise ApiError(422, "invalid", str(error)) from None
    jobs: Client | None = request.app.state.jobs
    if jobs is None:
        raise ApiError(503, "unavailable", "no Redis is configured: there are no app logs")
    try:
        found, position = reader.backlog(
            jobs.redis,
            uid,
            match,
            lines,
            since=since.timestamp() if since is not None else None,
            after=after,
        )
    except redis.RedisError as error:
        raise ApiError(503, "unavailable", f"the logs cannot be read: {error}") from None
    return StreamingResponse(
        _stream(jobs, uid, match, found, position, follow), media_type="application/x-ndjson"
    )


def _stream(
    jobs: Client,
    uid: str,
    match: reader.Match,
    found: list[reader.Entry],
    position: str,
    follow: bool,
) -> Iterator[str]:
    for start in range(0, len(found), reader.PAGE):  # big chunks: a yield is a thread hop
        yield "".join(json.dumps(e.as_json()) + "\n" for e in found[start : start + reader.PAGE])
    if not follow:
        return
    silent = 0.0
    try:
        for batch in reader.follow(jobs.redis, uid, match, position):
            if batch:
                silent = 0.0
                yield "".join(json.dumps(e.as_json()) + "\n" for e in batch)
                continue
            silent += reader.MAX_BLOCK
            if silent >= KEEPALIVE:
                silent = 0.0
                yield "\n"
    except redis.RedisError:
        return  # the client reconnects with after=ID
