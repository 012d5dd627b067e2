"""Ordering a certificate from an ACME directory (RFC 8555) with certbot's ``acme`` library,
validated by HTTP-01: the router answers the challenge itself.

An order is saved (its URL and the key of its CSR) as soon as it exists, so that a worker
that crashes halfway resumes it instead of ordering again; an order the server has ended
(invalid, or gone) is replaced by a new one.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC

from slipway import __version__
from slipway.certs.pem import new_private_key

ORDER_TIMEOUT = datetime.timedelta(seconds=90)  # validation and finalization, per order
USER_AGENT = f"slipway/{__version__}"
RESUMABLE = (
    messages.STATUS_PENDING,
    messages.STATUS_READY,
    messages.STATUS_PROCESSING,
    messages.STATUS_VALID,
)


class OrderFailed(Exception):
    """The ACME server refused or could not validate; the message is its reason."""


@dataclass
class Account:
    key: str  # JWK, JSON
    registration: str | None  # the account as registered (JSON, with its URL), once it is


@dataclass
class Challenges:
    """Where HTTP-01 key authorizations are published (the router's challenge map)."""

    publish: Callable[[str, str], None]  # token, key authorization
    withdraw: Callable[[str], None]


def new_account_key() -> str:
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    return str(key.json_dumps())


class AcmeDirectory:
    def __init__(
        self, url: str, account: Account, email: str | None, ca_bundle: str | None
    ) -> None:
        self.account = account
        key = JWK.json_loads(account.key)
        # A CA bundle's path works as for requests, though the stub says bool.
        verify: Any = ca_bundle or True
        self.net = client.ClientNetwork(key, alg=ES256, user_agent=USER_AGENT, verify_ssl=verify)
        try:
            self.client = client.ClientV2(client.ClientV2.get_directory(url, self.net), self.net)
            if account.registration is None:
                registration = messages.NewRegistration.from_data(
                    email=email, terms_of_service_agreed=True
                )
                try:
                    found = self.client.new_account(registration)
                except errors.ConflictError as conflict:  # the key is registered already
                    found = self.client.query_registration(
                        messages.RegistrationResource(
                            uri=conflict.location, body=messages.Registration()
                        )
                    )
                account.registration = found.json_dumps()
            else:
                self.net.account = messages.RegistrationResource.json_loads(account.registration)
        except (errors.Error, messages.Error) as error:
            raise OrderFailed(_reason(error)) from None
        except OSError as error:  # requests' ConnectionError is one
            raise OrderFailed(f"the ACME directory {url} cannot be reached: {error}") from None

    def certificate(
        self,
        hostname: str,
        order_url: str | None,
        order_key: str | None,
        save_order: Callable[[str, str], None],
        answers: Challenges,
    ) -> tuple[str, str]:
        """The full chain and its key for ``hostname``: the saved order resumed when the
        server still has it, else a new one (saved at once)."""
        try:
            order = (
                self._resume(order_url, order_key, hostname) if order_url and order_key else None
            )
            if order is None:
                order_key = new_private_key()
                csr = crypto_util.make_csr(order_key.encode(), [hostname])
                order = self.client.new_order(csr)
                save_order(order.uri, order_key)
            assert order_key is not None
            published = self._answer(order, answers)
            try:
                deadline = datetime.datetime.now() + ORDER_TIMEOUT  # the library's: naive, local
                done = self.client.poll_and_finalize(order, deadline)
            finally:
                for token in published:
                    answers.withdraw(token)
        except (errors.Error, messages.Error) as error:
            raise OrderFailed(_reason(error)) from None
        except OSError as error:
            raise OrderFailed(f"the ACME directory cannot be reached: {error}") from None
        return str(done.fullchain_pem), order_key

    def _resume(self, url: str, key: str, hostname: str) -> messages.OrderResource | None:
        """The order as the server has it now; None when it cannot go on (ended, or unknown)."""
        try:
            body = messages.Order.from_json(self.client._post_as_get(url).json())
        except (errors.Error, messages.Error, ValueError):
            return None
        if body.status not in RESUMABLE:
            return None  # invalid, or expired
        authorizations = [
            messages.AuthorizationResource(
                body=messages.Authorization.from_json(self.client._post_as_get(u).json()), uri=u
            )
            for u in body.authorizations
        ]
        csr = crypto_util.make_csr(key.encode(), [hostname])
        return messages.OrderResource(
            body=body, uri=url, authorizations=authorizations, csr_pem=csr
        )

    def _answer(self, order: messages.OrderResource, answers: Challenges) -> list[str]:
        """Publish and answer the HTTP-01 challenge of each authorization still pending."""
        published = []
        for authorization in order.authorizations:
            if authorization.body.status != messages.STATUS_PENDING:
                continue  # valid already (reused), or the order will fail with its reason
            challenge = _http01(authorization)
            response, validation = challenge.response_and_validation(self.net.key)
            token = challenge.chall.encode("token")
            answers.publish(token, validation)
            published.append(token)
            if challenge.status == messages.STATUS_PENDING:
                self.client.answer_challenge(challenge, response)
        return published


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise OrderFailed("the ACME server offers no http-01 challenge for this name")


def _reason(error: Exception) -> str:
    """What the ACME server said, in one line."""
    if isinstance(error, errors.ValidationError):
        found = []
        for authorization in error.failed_authzrs:
            for challenge in authorization.body.challenges:
                if challenge.error is not None:
                    found.append(_problem(challenge.error))
        return "; ".join(found) or "the ACME server could not validate the name"
    if isinstance(error, errors.IssuanceError):
        return _problem(error.error)
    if isinstance(error, messages.Error):
        return _problem(error)
    if isinstance(error, errors.TimeoutError):
        return f"the ACME server did not finish the order within {ORDER_TIMEOUT.seconds} s"
    return f"{type(error).__name__}: {error}"


def _problem(problem: messages.Error) -> str:
    detail: Any = problem.detail or problem.description or problem.typ
    return " ".join(str(detail).split())[:500] + (f" ({problem.code})" if problem.code else "")


def account_from(record: dict[str, Any] | None) -> Account:
    if record is None:
        return Account(new_account_key(), None)
    return Account(str(record["key"]), record.get("registration"))
