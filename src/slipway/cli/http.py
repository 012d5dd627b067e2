"""Calls to the Slipway API, with its JSON errors turned into one readable line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slipway import __version__
from slipway.cli import config
from slipway.cli.errors import CliError

if TYPE_CHECKING:
    import httpx

TIMEOUT = 30.0  # seconds; 5 to connect


class ApiError(CliError):
    """What the API refused, with its HTTP status for the callers that act on it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, api_url: str, token: str | None) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"User-Agent": f"slipway-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        import httpx  # 0.2 s to import: not for the commands that do not call the API

        timeout = httpx.Timeout(TIMEOUT, connect=5.0)
        self.http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)

    @classmethod
    def logged_in(cls) -> Api:
        login = config.effective()
        if not login.api_url or not login.token:
            raise CliError(
                "not logged in: run `slipway login --api-url URL --token TOKEN` "
                "(or set SLIPWAY_API_URL and SLIPWAY_API_TOKEN)"
            )
        return cls(login.api_url, login.token)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach the Slipway API at {self.api_url}: {error}") from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        self.raise_for(response, path)

    def raise_for(self, response: httpx.Response, path: str) -> None:
        """The API's error as an ApiError, with its message."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        message = message or f"HTTP {response.status_code} from {self.api_url}{path}"
        if response.status_code == 401:
            message += " (slipway login)" if "slipway login" not in message else ""
        raise ApiError(message, response.status_code)

    def pages(self, path: str) -> list[Any]:
        """Every item of a paginated listing."""
        items: list[Any] = []
        page = 1
        while True:
            body = self.call("GET", path, params={"page": page, "per_page": 100})
            items += body["items"]
            if len(items) >= body["total"] or not body["items"]:
                return items
            page += 1

    def lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """A streamed plain-text response, line by line as it comes (no read timeout: a
        followed build log may stay silent for a while)."""
        import httpx

        try:
            with self.http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(None, connect=5.0)
            ) as response:
                if not response.is_success:
                    response.read()
                    self.raise_for(response, path)
                yield from response.iter_lines()
        except httpx.TransportError as error:
            raise CliError(f"cannot reach the Slipway API at {self.api_url}: {error}") from None
