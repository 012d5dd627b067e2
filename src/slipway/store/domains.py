"""An app's domains as the store keeps them, and the states their certificates go through.

A domain whose certificate comes from ACME starts ``pending-dns`` (the platform waits until
the name resolves), is ``issuing`` while an order runs, then ``active`` until it expires; an
attempt that fails leaves it ``failed`` with the reason and the time of the next attempt,
and a certificate it had keeps serving. Without ACME on the platform a domain is
``http-only``. A certificate the user brought is ``active`` from the start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from slipway.store.db import flush_or_conflict
from slipway.store.errors import Conflict, Invalid, NotFound
from slipway.store.models import AcmeAccount, App, Domain, utcnow
from slipway.store.names import check_hostname

PENDING_DNS = "pending-dns"
ISSUING = "issuing"
ACTIVE = "active"
FAILED = "failed"
HTTP_ONLY = "http-only"
ACME = "acme"
CUSTOM = "custom"

FIRST_RETRY = timedelta(minutes=5)
LAST_RETRY = timedelta(days=1)  # the longest wait between attempts


def retry_delay(attempts: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """Doubling from ``first`` with each failure in a row, up to a day."""
    delay: timedelta = first * 2 ** max(attempts - 1, 0)
    return min(delay, LAST_RETRY)


def of_app(session: Session, app: App) -> list[Domain]:
    query = select(Domain).where(Domain.app_id == app.id).order_by(Domain.hostname)
    return list(session.scalars(query))


def by_hostname(session: Session, hostname: str) -> Domain | None:
    return session.scalar(select(Domain).where(Domain.hostname == hostname))


def find(session: Session, app: App, name: str) -> Domain:
    domain = by_hostname(session, name.strip().lower().removesuffix("."))
    if domain is None or domain.app_id != app.id:
        raise NotFound(f"{app.name} has no domain {name!r} (see `slipway domains`)")
    return domain


def check_new(session: Session, name: str, apps_domain: str) -> str:
    """The hostname, if no app has it and it is not one of the platform's own names."""
    hostname = check_hostname(name)
    platform = apps_domain.lower()
    if hostname == platform or hostname.endswith(f".{platform}"):
        raise Invalid(
            f"{hostname} is under the platform's domain {platform}: every app answers at "
            f"APP.{platform} already"
        )
    if by_hostname(session, hostname) is not None:
        raise Conflict(_taken(hostname))
    return hostname


def _taken(hostname: str) -> str:
    # The same words whoever has it, so that the answer tells nothing about other apps.
    return f"{hostname} is already attached to an app"


def attach(session: Session, app: App, hostname: str, *, acme: bool) -> Domain:
    """A domain certified by ACME when the platform has it, else served over HTTP only."""
    domain = Domain(
        app=app,
        hostname=hostname,
        source=ACME,
        state=PENDING_DNS if acme else HTTP_ONLY,
        attempts=0,
    )
    session.add(domain)
    flush_or_conflict(session, _taken(hostname))
    return domain


def attach_custom(
    session: Session,
    app: App,
    hostname: str,
    certificate: str,
    private_key: str,
    not_after: datetime,
    issuer: str,
) -> Domain:
    domain = Domain(app=app, hostname=hostname, source=CUSTOM, state=ACTIVE, attempts=0)
    domain.certificate, domain.private_key = certificate, private_key
    domain.not_after, domain.issuer = not_after, issuer
    session.add(domain)
    flush_or_conflict(session, _taken(hostname))
    return domain


def due(session: Session, now: datetime, renew_before: timedelta) -> list[Domain]:
    """ACME domains to work on now: never certified and due for an attempt, failed ones
    whose retry time has come, and certificates that expire within ``renew_before``."""
    query = select(Domain).where(
        Domain.source == ACME,
        Domain.state != HTTP_ONLY,
        or_(
            Domain.retry_at.is_(None) & Domain.certificate.is_(None),
            Domain.retry_at <= now,
            Domain.not_after <= now + renew_before,
        ),
    )
    return list(session.scalars(query.order_by(Domain.id)))  # issuing: perhaps a crashed order


def issuing(domain: Domain) -> None:
    domain.state = ISSUING


def issued(
    domain: Domain, certificate: str, private_key: str, not_after: datetime, issuer: str
) -> None:
    domain.certificate, domain.private_key = certificate, private_key
    domain.not_after, domain.issuer = not_after, issuer
    domain.state, domain.reason, domain.retry_at, domain.attempts = ACTIVE, None, None, 0
    domain.order_url = domain.order_key = None


def failed(
    domain: Domain, reason: str, *, dns: bool = False, first_retry: timedelta = FIRST_RETRY
) -> None:
    """The attempt failed: the next one waits longer; a certificate it had keeps serving."""
    domain.attempts += 1
    domain.reason = reason[:2000]
    domain.retry_at = utcnow() + retry_delay(domain.attempts, first_retry)
    domain.state = PENDING_DNS if dns and domain.certificate is None else FAILED


def account(session: Session, directory: str) -> AcmeAccount | None:
    return session.scalar(select(AcmeAccount).where(AcmeAccount.directory == directory))
