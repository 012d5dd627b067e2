"""The FastAPI application: routers, error handling, limits, health and metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from slipway import __version__
from slipway.api import (
    addons,
    certificates,
    deployments,
    domains,
    errors,
    internal,
    logs,
    metrics,
    oneoffs,
    processes,
    public,
)
from slipway.api.auth import Db
from slipway.api.limits import BodyLimit
from slipway.config import Settings
from slipway.jobs import Client
from slipway.store.db import Database


def create_app(settings: Settings, database: Database) -> FastAPI:
    app = FastAPI(
        title="Slipway API",
        version=__version__,
        description="The control plane of Slipway, a git-push PaaS. Public endpoints take an "
        "API token (`Authorization: Bearer slp_...`); `/internal` takes the shared secret.",
        openapi_url="/openapi.json" if settings.api_docs else None,  # also /docs and /redoc
    )
    app.state.settings = settings
    app.state.database = database
    app.state.internal_secret = settings.effective_internal_secret()
    # Jobs for repo hosts go to the platform's Redis; none when the API runs without one.
    app.state.jobs = Client(settings.redis_url) if settings.redis_url else None
    errors.install(app)
    metrics.install(app)
    app.include_router(public.router)
    app.include_router(deployments.router)
    app.include_router(processes.router)
    app.include_router(logs.router)
    app.include_router(addons.router)
    app.include_router(domains.router)
    app.include_router(oneoffs.router)
    app.include_router(internal.router)
    app.include_router(certificates.router)

    @app.get("/healthz", tags=["health"])
    def healthz(db: Db) -> JSONResponse:
        try:
            with db.session() as session:
                session.execute(text("SELECT 1"))
        except Exception as error:
            return JSONResponse({"status": "unhealthy", "database": str(error)[:200]}, 503)
        return JSONResponse({"status": "ok"})

    app.add_middleware(BodyLimit)
    return app
