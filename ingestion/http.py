"""The HTTP client every API source uses: dlt's REST client with retries fit for real shop APIs.

On top of dlt's stock retry (429, 5xx, timeouts, refused connections, exponential backoff) it
- honours ``Retry-After`` given as decimal seconds (Shopify sends ``2.0``; dlt parses only integers
  and would fall back to its own backoff),
- retries a connection dropped in the middle of a response body,
- turns a rejected credential (401/403) into one clear error naming the setting, never the secret,
- parses a JSON body once, with orjson: requests would parse it again on every ``.json()`` call, and
  dlt's data selector, its JSON link paginator and a source reading ``included`` each call it (at
  size M a third of the client's time was spent parsing pages three times),
- compiles a page's data selector (a JSONPath) once: dlt compiles a selector given as text again
  for every page, about 0.5 ms each (jsonpath_ng builds its parser every time),
- reads the proxy and CA bundle settings of the environment once per client, for the API's host:
  requests reads them again for every request (at size M, 22,748 scans of the environment in one
  Klaviyo load).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from typing import Any

import orjson
from dlt.common import jsonpath
from dlt.sources.helpers.requests import Session
from dlt.sources.helpers.requests.retry import (
    DEFAULT_RETRY_EXCEPTIONS,
    Client,
    _make_retry,
    wait_exponential_retry_after,
)
from dlt.sources.helpers.rest_client import RESTClient
from requests import Response
from requests.exceptions import ChunkedEncodingError
from requests.utils import get_environ_proxies


class CredentialRejectedError(RuntimeError):
    """The API refused the configured credential."""


class _WaitDecimalRetryAfter(wait_exponential_retry_after):
    """Waits ``Retry-After`` seconds also when the header is a decimal such as ``2.0``."""

    def _parse_retry_after(self, retry_after: str) -> float | None:
        try:
            seconds = float(retry_after)
        except ValueError:
            return super()._parse_retry_after(retry_after)
        return max(self.min, min(self.max, seconds)) if seconds > 0 else None


class _RetryingClient(Client):
    """dlt's retrying requests client with the decimal Retry-After wait."""

    def _make_session(self) -> Session:
        session = Session(**self._session_kwargs)
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)
        retrying = _make_retry(**self._retry_kwargs)
        retrying.wait = _WaitDecimalRetryAfter(
            multiplier=self._retry_kwargs["backoff_factor"], max=self._retry_kwargs["max_delay"]
        )
        session.send = retrying.wraps(session.send)
        return session


def _parse_json_once(response: Response) -> None:
    """Make ``response.json()`` return the body parsed once (a body orjson cannot parse is left to
    requests, so its error stays the one callers expect)."""
    if "json" not in response.headers.get("content-type", ""):
        return
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return
    response.json = lambda **_: body  # type: ignore[method-assign]


def _read_environment_once(session: Session, base_url: str) -> None:
    """Give ``session`` the environment's proxies for ``base_url`` (none when NO_PROXY names its host)
    and CA bundle, as requests would find them for each request, and stop it looking again. The
    clients send their credentials themselves, so requests' other lookup, ~/.netrc, never applied."""
    session.proxies.update(get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False


class ApiClient(RESTClient):
    """A REST client for one service; ``credential_setting`` names the config key of its secret."""

    def __init__(self, base_url: str, *, service: str, credential_setting: str, **kwargs: Any) -> None:
        session = _RetryingClient(
            raise_for_status=False, exceptions=(*DEFAULT_RETRY_EXCEPTIONS, ChunkedEncodingError)
        ).session
        _read_environment_once(session, base_url)
        super().__init__(base_url, session=session, **kwargs)
        self.service = service
        self.credential_setting = credential_setting

    def _check_response(self, response: Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code in (401, 403):
            raise CredentialRejectedError(
                f"{self.service} rejected the credential in {self.credential_setting} "
                f"(HTTP {response.status_code} on {response.request.path_url.split('?')[0]}): "
                "check that it is current and has read access"
            )
        response.raise_for_status()
        _parse_json_once(response)

    def paginate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        kwargs.setdefault("hooks", {"response": [self._check_response]})
        if isinstance(selector := kwargs.get("data_selector"), str):
            kwargs["data_selector"] = _compiled(selector)
        yield from super().paginate(*args, **kwargs)


@cache
def _compiled(selector: str) -> jsonpath.JSONPath:
    return jsonpath.compile_path(selector)
