"""Pure ASGI middleware, outermost first: access (request id, metrics, access log), auth,
request limits, concurrency. Pure ASGI because Starlette's BaseHTTPMiddleware runs the app
in a separate task and hides client disconnects from it."""

from __future__ import annotations

import logging
import time

from .accesslog import ACCESS_LOGGER, log_access
from .asgi import ASGIApp, Message, Receive, Scope, Send, header
from .auth import KeyChecker
from .context import CONTEXT_KEY, RequestContext
from .errors import HeadersTooLarge, OverCapacity, PayloadTooLarge, Unauthorized
from .metrics import Metrics
from .routes import PUBLIC_PATHS


class ClientDisconnected(Exception):
    """A write to the client failed because its connection is gone."""


class AccessMiddleware:
    """Gives every request its X-Request-ID (kept or made) and, at the end, one access log
    line and its metrics. Counts status, response bytes and time to the first body byte."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext.start(scope)
        scope[CONTEXT_KEY] = ctx
        request_id_header = (b"x-request-id", ctx.request_id.encode())

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.body":
                size = len(message.get("body", b""))
                if size:
                    if ctx.first_byte_at is None:
                        ctx.first_byte_at = time.perf_counter()
                    ctx.bytes_sent += size
            elif message["type"] == "http.response.start":
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            try:
                await send(message)
            except (OSError, RuntimeError) as exc:
                # The server closed the socket under us (uvicorn on uvloop raises instead
                # of ignoring the write when it dropped the connection itself, e.g. after
                # a malformed pipelined request): the client is gone, nothing is broken.
                raise ClientDisconnected from exc

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_counted)
        except ClientDisconnected:
            ctx.outcome = "client_gone"
        finally:
            ctx.finished = time.perf_counter()
            self.metrics.in_flight.dec()
            self._record(ctx)

    def _record(self, ctx: RequestContext) -> None:
        m = self.metrics
        status = ctx.status or (499 if ctx.outcome == "client_gone" else 0)
        m.count(ctx.route, status)
        m.duration_of(ctx.route).observe(ctx.duration)
        if ctx.stream and ctx.ttft is not None:
            m.ttft.labels(ctx.route).observe(ctx.ttft)
        if ctx.outcome == "client_gone":
            m.disconnects.labels(ctx.route).inc()
        log_access(self.logger, ctx.log_fields())


class AuthMiddleware:
    """Every route but /health, /ready and /metrics needs `Authorization: Bearer <key>`."""

    def __init__(self, app: ASGIApp, *, keys: KeyChecker) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.keys.enabled
            and scope["path"] not in PUBLIC_PATHS
            and not self.keys.check(header(scope, b"authorization"))
        ):
            await Unauthorized(
                "Missing or invalid API key: send `Authorization: Bearer <key>` with a key "
                "from PROXY_API_KEYS."
            ).send_to(send)
            return
        await self.app(scope, receive, send)


class RequestLimitsMiddleware:
    """Refuses oversized headers (431) and a Content-Length above the body limit (413)
    before a byte of the body is read. Bodies without a length are counted as they are
    read (see forwarding.read_body)."""

    def __init__(self, app: ASGIApp, *, max_header_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
            if size > self.max_header_bytes:
                await HeadersTooLarge(
                    f"Request headers are {size} bytes; the limit is {self.max_header_bytes}."
                ).send_to(send)
                return
            length = header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await PayloadTooLarge(
                    f"Request body is {int(length)} bytes; the limit is {self.max_body_bytes} "
                    "(PROXY_MAX_BODY_BYTES)."
                ).send_to(send)
                return
        await self.app(scope, receive, send)


class ConcurrencyLimitMiddleware:
    """At most `limit` forwarded requests in flight; the next one gets 429 + Retry-After at
    once. No queue: memory stays bounded however many clients push."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await OverCapacity(
                f"The server is at its limit of {self.limit} concurrent requests; retry after "
                "the Retry-After delay."
            ).send_to(send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
