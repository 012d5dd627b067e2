"""Domains' states in the store: what is due for an order, and the waits after failures."""

from __future__ import annotations

from datetime import timedelta

from slipway.store import accounts, apps, domains
from slipway.store.models import utcnow
from tests.control_support import ApiServer


def test_failures_wait_longer_each_time_and_keep_the_certificate(api: ApiServer) -> None:
    with api.database.session() as session:
        shop = apps.create_app(session, accounts.create_user(session, "alice"), "shop")
        new = domains.attach(session, shop, "www.shop.test", acme=True)
        renewing = domains.attach(session, shop, "api.shop.test", acme=True)
        domains.issued(renewing, "CHAIN", "KEY", utcnow() + timedelta(days=10), "Test CA")
        later = domains.attach(session, shop, "old.shop.test", acme=True)
        domains.issued(later, "CHAIN", "KEY", utcnow() + timedelta(days=60), "Test CA")
        plain = domains.attach(session, shop, "http.shop.test", acme=False)
        due = domains.due(session, utcnow(), timedelta(days=30))
        assert [d.hostname for d in due] == ["www.shop.test", "api.shop.test"]
        assert plain.state == domains.HTTP_ONLY

        domains.failed(new, "no such host", dns=True)
        assert (new.state, new.attempts) == (domains.PENDING_DNS, 1)
        assert new.retry_at is not None
        first = new.retry_at - utcnow()
        domains.failed(new, "still no such host", dns=True)
        assert new.retry_at - utcnow() > first * 1.9  # doubled
        assert new not in domains.due(session, utcnow(), timedelta(days=30))

        domains.failed(renewing, "refused")
        assert renewing.state == domains.FAILED  # its certificate keeps serving
        assert renewing.certificate == "CHAIN" and renewing.reason == "refused"
        domains.issued(renewing, "CHAIN2", "KEY2", utcnow() + timedelta(days=90), "Test CA")
        assert (renewing.state, renewing.attempts) == (domains.ACTIVE, 0)
        assert renewing.reason is None


def test_the_longest_wait_is_a_day() -> None:
    assert domains.retry_delay(1) == timedelta(minutes=5)
    assert domains.retry_delay(3) == timedelta(minutes=20)
    assert domains.retry_delay(30) == timedelta(days=1)
