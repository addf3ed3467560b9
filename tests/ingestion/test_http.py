"""The API client reads the environment's proxy settings once, for its API's host, and honours them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingestion.http import ApiClient

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server that answers every GET with an empty JSON page and keeps the request
    lines: an origin sees a path, a proxy the whole URL."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = json.dumps({"data": []}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    """An API origin and a proxy."""
    origin, proxy = Recorder(), Recorder()
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in (origin, proxy)]
    for thread in threads:
        thread.start()
    yield origin, proxy
    for server in (origin, proxy):
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _client(base_url: str) -> ApiClient:
    return ApiClient(base_url, service="Test", credential_setting="sources.test.api_key")


def test_requests_go_through_the_proxy_the_environment_names(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # a host that never resolves: only the proxy can answer for it
    response = _client("http://shop.invalid/api").get("/orders")
    assert response.status_code == 200
    assert proxy.requests == ["http://shop.invalid/api/orders"]
    assert origin.requests == []


def test_a_host_no_proxy_names_is_reached_directly(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, proxy = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert _client(origin.url).get("/orders").status_code == 200
    assert origin.requests == ["/orders"]
    assert proxy.requests == []


def test_the_environment_is_read_when_the_client_is_made_not_for_each_request(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests scans the environment again for every request unless told not to (22,748 times in
    one Klaviyo load at size M); a client made without a proxy keeps going direct."""
    origin, proxy = servers
    client = _client(origin.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert client.get("/orders").status_code == 200
    assert client.get("/customers").status_code == 200
    assert origin.requests == ["/orders", "/customers"]
    assert proxy.requests == []


def test_the_environment_ca_bundle_is_the_one_verified_against(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/shop/ca.pem")
    assert _client("https://shop.invalid").session.verify == "/etc/shop/ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl/ca.pem")
    assert _client("https://shop.invalid").session.verify == "/etc/curl/ca.pem"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert _client("https://shop.invalid").session.verify is True
