"""The jobs of the router's host for apps' domains (queue ``router``, run by the runner of the
host that has the router): applying the domains to the router, and ordering, then renewing,
their certificates; and the check that finds, every SLIPWAY_ACME_CHECK_EVERY seconds, the
certificates due.

Every step is recorded in the store through the API as it happens, so ``slipway domains``
shows it; an order holds a Redis lock on its name, so no two workers order the same
certificate, and a crashed one's order is resumed by the next attempt.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import redis

from slipway import jobs
from slipway.builder.platform import PlatformApi, PlatformError
from slipway.certs.acme_orders import AcmeDirectory, Challenges, OrderFailed, account_from
from slipway.config import Settings
from slipway.jobs.connection import sync_redis
from slipway.router.domains import RoutedDomain, RouterDomains
from slipway.router.haproxy import RouterFiles

log = logging.getLogger("slipway.certs")

ROUTER_QUEUE = "router"
SYNC_DOMAINS = "slipway.sync_domains"
ISSUE_CERTIFICATE = "slipway.issue_certificate"
LOCK_SECONDS = 600  # an order's lock, longer than an order may take (acme_orders.ORDER_TIMEOUT)


def _router(settings: Settings) -> RouterDomains:
    return RouterDomains(RouterFiles(settings.router_dir or settings.data_dir / "router"))


def sync(settings: Settings, api: PlatformApi) -> None:
    found = api.routed_domains()
    domains = [RoutedDomain.from_api(d) for d in found["domains"]]
    problems = _router(settings).apply(domains, found["force_https_hosts"])
    for problem in problems:
        log.error("router: %s", problem)


@jobs.job(SYNC_DOMAINS, retry=3)
def sync_domains() -> None:
    """Make the router serve the domains the store has, with their certificates."""
    settings = Settings()
    sync(settings, PlatformApi.from_settings(settings))


@jobs.job(ISSUE_CERTIFICATE, retry=False)
def issue_certificate(hostname: str) -> None:
    """Order (or resume the order of) the domain's certificate, then serve it. A failure is
    recorded with the ACME server's reason; the next check retries it later."""
    settings = Settings()
    if not settings.acme_directory or settings.redis_url is None:
        return
    connection = sync_redis(settings.redis_url)
    lock = connection.lock(f"slipway:acme:{hostname}", timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return  # another worker has this order
    try:
        _issue(settings, PlatformApi.from_settings(settings), hostname)
    except PlatformError as error:
        if error.status != 404:  # 404: the domain was removed meanwhile
            raise
    finally:
        with contextlib.suppress(redis.RedisError):
            lock.release()
        connection.close()


def _issue(settings: Settings, api: PlatformApi, hostname: str) -> None:
    assert settings.acme_directory is not None
    if settings.acme_dns_check and not resolves(hostname):
        reason = f"{hostname} does not resolve: point it at the app's DNS target (a CNAME)"
        api.order_failed(hostname, reason, dns=True)
        return
    order = api.start_order(hostname)
    account = account_from(order["account"])
    registered = account.registration
    router = _router(settings)
    answers = Challenges(router.publish_challenge, router.withdraw_challenge)
    ca_bundle = str(settings.acme_ca_bundle) if settings.acme_ca_bundle else None
    try:
        directory = AcmeDirectory(settings.acme_directory, account, settings.acme_email, ca_bundle)
        if account.registration != registered:
            api.save_acme_account(settings.acme_directory, account.key, account.registration)
        chain, key = directory.certificate(
            hostname,
            order["order_url"],
            order["order_key"],
            lambda url, order_key: api.order_saved(hostname, url, order_key),
            answers,
        )
    except OrderFailed as failure:
        log.warning("certificate of %s: %s", hostname, failure)
        api.order_failed(hostname, str(failure))
        return
    api.certificate_issued(hostname, chain, key)
    sync(settings, api)
    log.info("certificate of %s issued", hostname)


def resolves(hostname: str) -> bool:
    try:
        return bool(socket.getaddrinfo(hostname, None))
    except OSError:
        return False


def check_due_forever(settings: Settings, client: jobs.Client) -> None:
    """Every SLIPWAY_ACME_CHECK_EVERY seconds: enqueue an order for each certificate due
    (new, to retry, or expiring within SLIPWAY_ACME_RENEW_DAYS)."""
    api = PlatformApi.from_settings(settings)
    while True:
        time.sleep(settings.acme_check_every)
        try:
            for hostname in api.due_domains():
                client.enqueue(ROUTER_QUEUE, ISSUE_CERTIFICATE, [hostname], retry=False)
        except (PlatformError, redis.RedisError) as error:
            log.warning("cannot check the certificates due: %s", error)


def start(settings: Settings) -> None:
    """On the runner of the router's host: bring the router up to date with the store (the
    runner was away), then check for certificates due, if ACME is on."""

    def run() -> None:
        api = PlatformApi.from_settings(settings)
        for _ in range(60):  # the API may still be starting
            try:
                sync(settings, api)
                break
            except PlatformError:
                time.sleep(1.0)
        if settings.acme_directory and settings.redis_url is not None:
            check_due_forever(settings, jobs.Client(settings.redis_url))

    threading.Thread(target=run, name="domains", daemon=True).start()
