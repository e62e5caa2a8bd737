"""The app: one ASGI callable that takes every request down one path, in order.

    route -> (public: /health, /ready, /metrics on a small Starlette app)
          -> (forwarded) key -> limits -> body -> facts and model check -> budget
             -> exchange with vLLM (relay.py) -> response
    then, for every request, once: metrics (Metrics.record) and the access log line.

Keys and limits apply only on the forwarded branch; "the client went away" is one
exception (errors.ClientGone) wherever it is noticed. The shared upstream transport is
created in the (Starlette) lifespan, which also runs the key set's reloading."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from .accesslog import ACCESS_LOGGER, log_access
from .asgi import ASGIApp, Message, Receive, Scope, Send, header
from .config import Settings
from .context import RequestContext, clipped
from .errors import (
    ClientGone,
    HeadersTooLarge,
    ModelNotFound,
    NotFound,
    OverCapacity,
    PayloadTooLarge,
    ProxyError,
    RequestTimeout,
    Unauthorized,
)
from .health import health, metrics_endpoint, ready
from .keys import ApiKey
from .keystore import KeyStore
from .metrics import Metrics
from .pool import UpstreamTransport, request_head
from .relay import Exchange, exchange
from .request import (
    LargeBodies,
    needs_usage_injection,
    parse_facts,
    read_body,
    request_headers,
    upstream_target,
    with_usage_requested,
)
from .routes import PUBLIC_PATHS, is_forwarded, not_found_message
from .timeouts import compute_budget
from .upstream import Target, UpstreamProbe

PROBE_TIMEOUT = 5.0
BYTES_PER_TOKEN = 4  # the estimate charged when a response ended without usage


class State(TypedDict):
    http_client: httpx.AsyncClient
    upstream: UpstreamTransport
    probe: UpstreamProbe


class Proxy:
    def __init__(
        self, settings: Settings, metrics: Metrics, keys: KeyStore, public: ASGIApp
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = keys
        self.public = public
        self.active = 0
        self.large = LargeBodies(settings.large_body_bytes, settings.max_large_bodies)
        self.logger = logging.getLogger(ACCESS_LOGGER)
        url = urlsplit(settings.upstream_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.host_header = url.netloc.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.public(scope, receive, send)  # the lifespan
            return
        ctx = RequestContext.start(scope)

        async def respond(message: Message) -> None:
            if message["type"] == "http.response.body":
                size = len(message.get("body", b""))
                if size:
                    if ctx.first_byte_at is None:
                        ctx.first_byte_at = time.perf_counter()
                    ctx.bytes_sent += size
            elif message["type"] == "http.response.start":
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), *ctx.response_headers]
            try:
                await send(message)
            except (OSError, RuntimeError) as exc:
                # The server closed the socket under us (uvicorn on uvloop raises instead
                # of ignoring the write when it dropped the connection itself, e.g. after
                # a malformed pipelined request).
                raise ClientGone from exc

        self.metrics.in_flight.inc()
        try:
            path: str = scope["path"]
            if path in PUBLIC_PATHS:
                await self.public(scope, receive, respond)
            elif not is_forwarded(path):
                await NotFound(not_found_message(path)).send_to(respond)
            else:
                await self.forward(ctx, scope, receive, respond)
        except ClientGone:
            ctx.outcome = "client_gone"
        finally:
            ctx.finished = time.perf_counter()
            self.metrics.in_flight.dec()
            self.metrics.record(ctx)
            log_access(self.logger, ctx.log_fields())

    async def forward(
        self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        s = self.settings
        key_set = self.keys.current  # this request's key set, whatever a reload does
        key: ApiKey | None = None
        if key_set is not None:
            key = key_set.authenticate(header(scope, b"authorization"))
            if key is None:
                await Unauthorized(
                    "Missing or invalid API key: send `Authorization: Bearer <key>` with a "
                    "key of this server."
                ).send_to(send)
                return
            ctx.key_name = key.name
        ctx.api = True
        limiter = None if key is None else self.keys.limiters.get(key.name)
        admitted = holds_large = False
        announced = _content_length(scope)
        try:
            self._check_head(scope, announced)
            if self.active >= s.max_concurrency:
                raise OverCapacity(
                    f"The server is at its limit of {s.max_concurrency} concurrent requests; "
                    "retry after the Retry-After delay."
                )
            if limiter is not None:
                assert key is not None
                ctx.response_headers += limiter.admit(key.name)
            self.active += 1
            admitted = True
            body, holds_large = await read_body(
                receive,
                max_bytes=s.max_body_bytes,
                seconds=s.default_timeout,
                large=self.large,
                announced=announced,
            )
            facts = parse_facts(body, header(scope, b"content-type"))
            ctx.model, ctx.stream, ctx.body_bytes = facts.model, facts.stream, len(body)
            if facts.stream:
                self.metrics.touch()  # a stream is an API request from start to end
            path: str = scope["path"]
            method: str = scope["method"]
            models = None
            if key is not None and key.models is not None:
                if method == "GET" and path == "/v1/models":
                    models = key.models
                elif not key.allows_model(facts.model):
                    raise ModelNotFound(
                        f"The model `{clipped(facts.model)}` does not exist or you do not have "
                        "access to it."
                        if facts.model
                        else "This API key may use only some models: name one in `model`.",
                        param="model",
                    )
            hide_usage = needs_usage_injection(path, facts)
            if hide_usage:
                body = with_usage_requested(body, facts)
            budget = compute_budget(
                path,
                stream=facts.stream,
                max_tokens=facts.max_tokens,
                model=facts.model,
                prompt_bytes=len(body),
                default_timeout=s.default_timeout,
                max_timeout=s.max_timeout,
            )
            headers = request_headers(scope["headers"], ctx.request_id)
            headers.append((b"host", self.host_header))
            if body or method in {"POST", "PUT", "PATCH"}:
                headers.append((b"content-length", b"%d" % len(body)))
            head = request_head(
                method.encode(), upstream_target(path, scope.get("query_string", b"")), headers
            )
            target = Target(self.host, self.port, head, body, head_only=method == "HEAD")
            del body
            ex = Exchange(target, budget, s.retry_window, hide_usage=hide_usage, models=models)
            if holds_large:  # the exchange lets the slot go with the body, once vLLM answered
                ex.large, holds_large = self.large, False
            await exchange(scope["state"]["upstream"], ex, ctx, receive, send)
        except ProxyError as error:
            if isinstance(error, RequestTimeout):
                ctx.outcome, ctx.timeout_phase = "timeout", "request_body"
            await error.send_to(send)
        finally:
            if holds_large:
                self.large.release()
            if admitted:
                self.active -= 1
                if limiter is not None:
                    limiter.release(charged_tokens(ctx))

    def _check_head(self, scope: Scope, length: int | None) -> None:
        """431 for oversized headers, 413 for a Content-Length above the body limit,
        before a byte of the body is read."""
        size = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        limit = self.settings.max_header_bytes
        if size > limit:
            raise HeadersTooLarge(f"Request headers are {size} bytes; the limit is {limit}.")
        if length is not None and length > self.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"Request body is {length} bytes; the limit is {self.settings.max_body_bytes} "
                "(PROXY_MAX_BODY_BYTES)."
            )


def _content_length(scope: Scope) -> int | None:
    length = header(scope, b"content-length")
    return int(length) if length is not None and length.isdigit() else None


def charged_tokens(ctx: RequestContext) -> int:
    """Tokens a request counts against its key's tokens-per-minute: vLLM's usage, or, for
    a successful response that ended without usage (a stream cut short), an estimate: the
    body at 4 bytes per token and one token per relayed chunk."""
    if ctx.prompt_tokens is None and ctx.completion_tokens is None:
        if ctx.status != 200:
            return 0
        return ctx.body_bytes // BYTES_PER_TOKEN + ctx.chunks_relayed
    return (ctx.prompt_tokens or 0) + (ctx.completion_tokens or 0)


def create_app(settings: Settings, metrics: Metrics | None = None) -> Proxy:
    metrics = metrics or Metrics()
    keys = KeyStore(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # No httpx timeouts: every request carries its own budget (timeouts.py), enforced
        # around the whole exchange. trust_env=False: HTTP(S)_PROXY must not reroute a
        # loopback vLLM. Keep-alive connections: as many as the concurrency limit
        # (pool.py says why not httpx's default pool).
        transport = UpstreamTransport(max_idle=settings.max_concurrency)
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(None),
                transport=transport,
                trust_env=False,
                follow_redirects=False,
            ) as client,
            keys.reloading(),
        ):
            probe = UpstreamProbe(
                client, settings.upstream_url, timeout=min(PROBE_TIMEOUT, settings.default_timeout)
            )
            yield {"http_client": client, "upstream": transport, "probe": probe}

    public = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    return Proxy(settings, metrics, keys, public)
