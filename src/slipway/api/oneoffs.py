"""``/v1/apps/APP/run`` (WebSocket): a one-off process of the app's current release. The
API authenticates the user, checks the app, and relays the session's frames to the runner
the app is placed on (slipway.runtime.oneoffs says why that way round)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import redis
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from slipway.api import runners
from slipway.api.auth import authenticate
from slipway.api.errors import ApiError
from slipway.api.schemas import OneOffIn
from slipway.fleet import registry
from slipway.jobs import Client
from slipway.store import apps, releases
from slipway.store.apps import Action
from slipway.store.db import Database
from slipway.store.errors import StoreError
from slipway.store.names import check_env_name
from slipway.wire import oneoff_frames as frames

router = APIRouter(prefix="/v1/apps/{app}", tags=["one-offs"])

REQUEST_TIMEOUT = 30.0  # seconds the client has to send its request
RUNNER_WAIT = 15.0  # seconds to wait for the app's runner (it may be restarting)


class Refused(Exception):
    """Why the one-off cannot start, for the user."""


@router.websocket("/run")
async def run(websocket: WebSocket, app: str) -> None:
    await websocket.accept()
    try:
        request = await _request(websocket)
        token = websocket.headers.get("authorization", "").removeprefix("Bearer ").strip()
        db: Database = websocket.app.state.database
        job: dict[str, Any] = await asyncio.to_thread(_one_off, db, token, app, request)
        address = await _runner_address(websocket, job.pop("runner"))
        runner = await connect(
            f"ws://{address}/run",
            additional_headers={"Authorization": f"Bearer {websocket.app.state.internal_secret}"},
            max_size=frames.MAX_FRAME,
            open_timeout=10,
            compression=None,  # deflate costs more than it saves on a local network
        )
    except Refused as refusal:
        await _refuse(websocket, str(refusal))
        return
    except (OSError, TimeoutError, InvalidHandshake) as error:
        await _refuse(websocket, f"the app's runner cannot be reached: {error}")
        return
    except WebSocketDisconnect:
        return
    async with runner:
        await runner.send(json.dumps(job))
        await _relay(websocket, runner)


async def _request(websocket: WebSocket) -> OneOffIn:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), REQUEST_TIMEOUT)
        request = OneOffIn.model_validate_json(text)
        for name in request.env:
            check_env_name(name)
    except TimeoutError:
        raise Refused(f"no request within {REQUEST_TIMEOUT:g} s") from None
    except (ValidationError, KeyError) as error:
        raise Refused(f"invalid request: {error}") from None
    except StoreError as error:
        raise Refused(str(error)) from None
    return request


def _one_off(db: Database, token: str, app: str, request: OneOffIn) -> dict[str, Any]:
    """What the runner needs: the request, the current release, who asked."""
    try:
        caller = authenticate(db, token)
        with db.session() as session:
            found = apps.app_for(session, caller.user(session), app, Action.WRITE)
            release = releases.current_release(session, found)
            if release is None:
                raise Refused(f"{app} has no release yet: git push it first")
            return {
                **request.model_dump(mode="json"),
                "user": caller.name,
                "runner": runners.runner_of(found),
                "release": {
                    "app": found.name,
                    "app_uid": found.uid,
                    "version": release.version,
                    "slug_id": release.slug_id,
                    "commit": release.commit,
                    "config": json.loads(release.config),
                },
            }
    except (ApiError, StoreError) as error:
        raise Refused(str(error.detail) if isinstance(error, ApiError) else str(error)) from None


async def _runner_address(websocket: WebSocket, name: str) -> str:
    """host:port of the runner's one-off server, once it beats (a restarting runner takes
    a moment)."""
    jobs: Client | None = websocket.app.state.jobs
    if jobs is None:
        raise Refused("no Redis is configured: no runner takes one-offs here")
    deadline = time.monotonic() + RUNNER_WAIT
    while True:
        try:
            info = (await asyncio.to_thread(registry.runners, jobs.redis)).get(name)
        except redis.RedisError as error:
            raise Refused(f"the runners cannot be found: {error}") from None
        fresh = info is not None and time.time() - info["seen"] < registry.ALIVE_FOR
        if fresh and info and info.get("run_port"):
            return f"{info['address']}:{info['run_port']}"
        if time.monotonic() > deadline:
            raise Refused(f"the app's runner ({name}) is not running; try again later")
        await asyncio.sleep(0.2)


async def _refuse(websocket: WebSocket, message: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_bytes(frames.status(error=message))
        await websocket.close(1008)


async def _relay(websocket: WebSocket, runner: ClientConnection) -> None:
    """Frames both ways until one side ends; then the other ends too."""

    async def from_client() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data:
                await runner.send(data)

    async def to_client() -> None:
        async for data in runner:
            if isinstance(data, bytes):
                await websocket.send_bytes(data)

    tasks = [asyncio.create_task(from_client()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(
                asyncio.CancelledError, ConnectionClosed, WebSocketDisconnect, RuntimeError
            ):
                await task
        await runner.close()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()
