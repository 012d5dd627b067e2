"""``/internal`` for the router's host: the domains it routes with their certificates, and
the steps of an ACME order, each recorded in the store as it happens (slipway.certs.issuer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.api.auth import Db, edge_service
from slipway.api.schemas import (
    AcmeAccountIn,
    DueDomainsOut,
    FailedIn,
    IssuedIn,
    OrderOut,
    OrderSavedIn,
    RoutedDomainOut,
    RoutedDomainsOut,
)
from slipway.certs.pem import check_pair
from slipway.store import domains
from slipway.store.errors import NotFound
from slipway.store.models import AcmeAccount, App, Domain, utcnow

router = APIRouter(prefix="/internal", dependencies=[Depends(edge_service)], tags=["internal"])

Hostname = Annotated[str, Path(max_length=253)]


def _domain(session: Session, hostname: str) -> Domain:
    found = domains.by_hostname(session, hostname)
    if found is None:
        raise NotFound(f"no app has the domain {hostname} (it was removed)")
    return found


@router.post("/router/domains")
def routed_domains(request: Request, db: Db) -> RoutedDomainsOut:
    """Every domain, with its certificate when it has one."""
    apps_domain = request.app.state.settings.apps_domain
    with db.session() as session:
        found = [
            RoutedDomainOut(
                hostname=d.hostname,
                app_host=f"{d.app.name}.{apps_domain}",
                force_https=d.app.force_https,
                certificate=d.certificate,
                private_key=d.private_key,
            )
            for d in session.scalars(select(Domain).order_by(Domain.hostname))
        ]
        forcing = session.scalars(select(App.name).where(App.force_https).order_by(App.name))
        hosts = [f"{name}.{apps_domain}" for name in forcing]
    return RoutedDomainsOut(domains=found, force_https_hosts=hosts)


@router.post("/domains/due")
def due_domains(request: Request, db: Db) -> DueDomainsOut:
    """The names to order a certificate for now (new, retrying, or close to expiry)."""
    renew_before = timedelta(days=request.app.state.settings.acme_renew_days)
    with db.session() as session:
        due = domains.due(session, utcnow(), renew_before)
        return DueDomainsOut(hostnames=[d.hostname for d in due])


@router.post("/domains/{hostname}/order")
def start_order(request: Request, db: Db, hostname: Hostname) -> OrderOut:
    """The domain is ``issuing`` from now; its order in flight and the account to use."""
    directory = request.app.state.settings.acme_directory
    with db.session() as session:
        domain = _domain(session, hostname)
        domains.issuing(domain)
        account = domains.account(session, directory) if directory else None
        return OrderOut(
            hostname=domain.hostname,
            order_url=domain.order_url,
            order_key=domain.order_key,
            account=(
                {"key": account.key, "registration": account.registration} if account else None
            ),
        )


@router.post("/domains/{hostname}/order-saved", status_code=204)
def order_saved(db: Db, hostname: Hostname, body: OrderSavedIn) -> None:
    with db.session() as session:
        domain = _domain(session, hostname)
        domain.order_url, domain.order_key = body.order_url, body.order_key


@router.post("/domains/{hostname}/issued", status_code=204)
def issued(db: Db, hostname: Hostname, body: IssuedIn) -> None:
    """The certificate is checked as a brought one would be before it serves."""
    with db.session() as session:
        domain = _domain(session, hostname)
        info = check_pair(body.certificate, body.private_key, domain.hostname)
        domains.issued(domain, body.certificate, body.private_key, info.not_after, info.issuer)


@router.post("/domains/{hostname}/failed", status_code=204)
def failed(request: Request, db: Db, hostname: Hostname, body: FailedIn) -> None:
    first = timedelta(seconds=request.app.state.settings.acme_retry_seconds)
    with db.session() as session:
        domains.failed(_domain(session, hostname), body.reason, dns=body.dns, first_retry=first)


@router.post("/acme/account", status_code=204)
def save_account(db: Db, body: AcmeAccountIn) -> None:
    with db.session() as session:
        account = domains.account(session, body.directory)
        if account is None:
            session.add(
                AcmeAccount(directory=body.directory, key=body.key, registration=body.registration)
            )
        else:
            account.key, account.registration = body.key, body.registration
