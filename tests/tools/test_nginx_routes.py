"""NGINX's locations against the proxy's route table: the site Terraform renders for the
instance (testkit/render.py), run by real NGINX in front of a recording upstream, must
forward every route the proxy forwards, with the generation budget exactly on the
generation routes, and keep the rest (/metrics, unknown paths) on the box. A vLLM route
added to inference_proxy.routes that NGINX does not forward fails here."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from inference_proxy import routes

from testkit import nginx
from testkit.ports import free_port
from testkit.processes import StackError, wait_until
from testkit.support import need_tool

GENERATION_ROUTES = routes.GENERATION_ROUTES

# The site's budgets for this render (the root's defaults): the proxy's timeouts plus
# NGINX's 30 s margin (modules/ec2/main.tf, nginx_timeout_margin).
DEFAULT_READ_TIMEOUT = "120s"  # default_proxy_timeout 90 + 30
GENERATION_READ_TIMEOUT = "630s"  # max_proxy_timeout 600 + 30
KEPT_ON_THE_BOX = {"/metrics"}  # public in the proxy, scraped on 127.0.0.1 only


class Recorder(BaseHTTPRequestHandler):
    """The upstream: answers 200 to anything and records the path it was asked for."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Recorder.seen.append(self.path)
        body = b"upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Site:
    port: int
    text: str
    error_log: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need_tool("nginx")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    text = nginx.local_site(http_port=port, proxy_port=upstream.server_address[1])
    prefix = tmp_path_factory.mktemp("nginx-routes")
    service = nginx.start_nginx(prefix, text, f"http://127.0.0.1:{port}", log_level="debug")
    try:
        wait_until(service, lambda: _answers(port), timeout=30)
        yield Site(port, text, prefix / "logs" / "error.log")
    finally:
        service.stop()
        upstream.shutdown()
        upstream.server_close()


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class Outcome:
    status: int
    forwarded: bool
    location: str  # the location NGINX used, as its debug log names it


def request(site: Site, path: str) -> Outcome:
    Recorder.seen.clear()
    logged = site.error_log.stat().st_size
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    connection.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    with site.error_log.open("rb") as log:
        log.seek(logged)
        used = re.findall(rb'using configuration "([^"]*)"', log.read())
    if not used:
        raise StackError(f"NGINX's debug log names no location for {path}")
    return Outcome(response.status, Recorder.seen == [path], used[-1].decode())


def location_block(site: str, name: str) -> str:
    """The body of the location whose debug-log name is `name` ("=/metrics", "/", a regex)."""
    for modifier, pattern, body in re.findall(
            r"location (?:(=|~\*?|\^~) )?(\S+) \{(.*?)\n    \}", site, re.S):
        if (f"={pattern}" if modifier == "=" else pattern) == name:
            return str(body)
    raise AssertionError(f"no location {name!r} in the rendered site")


def directive(block: str, name: str) -> str | None:
    found = re.search(rf"^\s*{name} ([^;]+);", block, re.M)
    return found[1] if found else None


FORWARDED = sorted(
    {p for p in routes.PUBLIC_PATHS if p not in KEPT_ON_THE_BOX}
    | set(routes.NON_V1_ROUTES)
    | set(GENERATION_ROUTES)
    | {p for p in routes.LABELLED_ROUTES if routes.is_forwarded(p)}
    # Any /v1/ path is the proxy's (routes.is_forwarded), also one vLLM adds tomorrow.
    | {"/v1/a/route/added/later"}
)


def test_the_route_table_is_what_this_test_reads() -> None:
    # Guards the parametrization below: an empty or renamed table would test nothing.
    assert {"/v1/chat/completions", "/v1/completions"} <= set(GENERATION_ROUTES)
    assert "/tokenize" in routes.NON_V1_ROUTES and "/health" in routes.PUBLIC_PATHS
    assert len(FORWARDED) >= 20


@pytest.mark.parametrize("path", FORWARDED)
def test_nginx_forwards_every_route_the_proxy_serves(site: Site, path: str) -> None:
    outcome = request(site, path)
    assert outcome.forwarded, f"NGINX answered {path} itself ({outcome.status}, location " \
                              f"{outcome.location!r}) instead of forwarding it to the proxy"
    assert outcome.status == 200


@pytest.mark.parametrize("path", sorted(set(routes.NON_V1_ROUTES) | set(GENERATION_ROUTES)
                                        | {p for p in routes.LABELLED_ROUTES
                                           if routes.is_forwarded(p)}))
def test_generation_routes_and_only_they_get_the_long_budget(site: Site, path: str) -> None:
    block = location_block(site.text, request(site, path).location)
    expected = GENERATION_READ_TIMEOUT if path in GENERATION_ROUTES else DEFAULT_READ_TIMEOUT
    assert directive(block, "proxy_read_timeout") == expected, block
    assert directive(block, "proxy_send_timeout") == expected, block
    # Streams and uploads pass through as they come.
    assert directive(block, "proxy_buffering") == "off", block
    assert directive(block, "proxy_request_buffering") == "off", block


@pytest.mark.parametrize("path", sorted(KEPT_ON_THE_BOX | {"/", "/admin", "/v2/models",
                                                            "/tokenize/extra"}))
def test_nginx_keeps_other_paths_to_itself(site: Site, path: str) -> None:
    outcome = request(site, path)
    assert not outcome.forwarded and outcome.status == 404, outcome
    assert not routes.is_forwarded(path) or path in KEPT_ON_THE_BOX
