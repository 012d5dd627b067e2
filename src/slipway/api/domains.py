"""``/v1/apps/APP/domains``: the names an app answers at besides APP.DOMAIN, each with a
certificate from ACME or one its users brought, and whether HTTP redirects to HTTPS.

Every change asks the router's host to apply it (``slipway.sync_domains``) and, for a name
the platform certifies, to order its certificate (``slipway.issue_certificate``).
"""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter, FastAPI, Request, Response

from slipway.api.auth import CurrentCaller, Db
from slipway.api.schemas import DomainIn, DomainOut, ForceHttpsIn, ForceHttpsOut
from slipway.certs.pem import check_pair
from slipway.jobs import Client
from slipway.store import apps, domains
from slipway.store.apps import Action
from slipway.store.errors import Invalid
from slipway.store.models import App, Domain

log = logging.getLogger("slipway.api")

router = APIRouter(prefix="/v1/apps/{app}", tags=["domains"])

# The router host's queue and jobs (slipway.certs.issuer), named without importing them.
ROUTER_QUEUE = "router"
SYNC_DOMAINS = "slipway.sync_domains"
ISSUE_CERTIFICATE = "slipway.issue_certificate"


def domain_out(app: App, domain: Domain, apps_domain: str) -> DomainOut:
    return DomainOut(
        hostname=domain.hostname,
        state=domain.state,
        source=domain.source,
        dns_target=f"{app.name}.{apps_domain}",
        expires_at=domain.not_after,
        issuer=domain.issuer,
        reason=domain.reason,
        retry_at=domain.retry_at,
        created_at=domain.created_at,
    )


@router.get("/domains")
def list_domains(request: Request, db: Db, caller: CurrentCaller, app: str) -> list[DomainOut]:
    apps_domain = request.app.state.settings.apps_domain
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.READ)
        return [domain_out(found, d, apps_domain) for d in domains.of_app(session, found)]


@router.post("/domains", status_code=201)
def add_domain(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: DomainIn
) -> DomainOut:
    """With a certificate and its key, that certificate serves the name at once; without,
    the platform orders one from its ACME directory (when it has one)."""
    settings = request.app.state.settings
    if (body.certificate is None) != (body.private_key is None):
        raise Invalid("a certificate needs its private key, and a key its certificate")
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        hostname = domains.check_new(session, body.hostname, settings.apps_domain)
        if body.certificate is not None and body.private_key is not None:
            info = check_pair(body.certificate, body.private_key, hostname)
            domain = domains.attach_custom(
                session,
                found,
                hostname,
                body.certificate,
                body.private_key,
                info.not_after,
                info.issuer,
            )
        else:
            domain = domains.attach(session, found, hostname, acme=bool(settings.acme_directory))
        answer = domain_out(found, domain, settings.apps_domain)
    ask_router(request.app, SYNC_DOMAINS, [])
    if answer.source == domains.ACME and answer.state != domains.HTTP_ONLY:
        ask_router(request.app, ISSUE_CERTIFICATE, [hostname])
    return answer


@router.delete("/domains/{hostname}", status_code=204)
def remove_domain(
    request: Request, db: Db, caller: CurrentCaller, app: str, hostname: str
) -> Response:
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        session.delete(domains.find(session, found, hostname))
    ask_router(request.app, SYNC_DOMAINS, [])
    return Response(status_code=204)


@router.put("/force-https")
def force_https(
    request: Request, db: Db, caller: CurrentCaller, app: str, body: ForceHttpsIn
) -> ForceHttpsOut:
    """Requests over HTTP to the app's names that have a certificate are redirected (308)."""
    with db.session() as session:
        found = apps.app_for(session, caller.user(session), app, Action.WRITE)
        found.force_https = body.enabled
    ask_router(request.app, SYNC_DOMAINS, [])
    return ForceHttpsOut(force_https=body.enabled)


def ask_router(app: FastAPI, job: str, args: list[object]) -> None:
    """Enqueue a job for the router's host; a failure is logged (the next sync catches up)."""
    jobs: Client | None = app.state.jobs
    if jobs is None:
        log.warning("no Redis configured: %s%s is not asked of the router", job, args)
        return
    try:
        jobs.enqueue(ROUTER_QUEUE, job, args, retry=3)
    except redis.RedisError as error:
        log.error("cannot ask the router for %s%s: %s", job, args, error)
