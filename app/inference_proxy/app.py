"""The app factory: the pure ASGI middleware stack, the forwarding endpoint, a small
Starlette app for /health, /ready, /metrics, and one shared httpx.AsyncClient created in
the (Starlette) lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from .asgi import ASGIApp, Receive, Scope, Send
from .auth import KeyChecker
from .config import Settings
from .forwarding import Forwarder
from .health import health, metrics_endpoint, ready
from .metrics import Metrics
from .middleware import (
    AccessMiddleware,
    AuthMiddleware,
    ConcurrencyLimitMiddleware,
    RequestLimitsMiddleware,
)
from .pool import UpstreamTransport
from .routes import PUBLIC_PATHS
from .upstream import UpstreamProbe

PROBE_TIMEOUT = 5.0


class State(TypedDict):
    http_client: httpx.AsyncClient
    upstream: UpstreamTransport
    probe: UpstreamProbe


class Dispatch:
    """Forwarded routes go straight to the Forwarder, so the per-chunk path of a stream
    passes no Starlette routing or exception wrappers; the public routes and the lifespan
    go to the Starlette app."""

    def __init__(self, public: ASGIApp, forwarder: ASGIApp) -> None:
        self.public = public
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS:
            await self.forwarder(scope, receive, send)
        else:
            await self.public(scope, receive, send)


def create_app(settings: Settings, metrics: Metrics | None = None) -> ASGIApp:
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # No httpx timeouts: every request carries its own budget (timeouts.py), enforced
        # around the whole exchange. trust_env=False: HTTP(S)_PROXY must not reroute a
        # loopback vLLM. Keep-alive connections: as many as the concurrency limit
        # (pool.py says why not httpx's default pool).
        transport = UpstreamTransport(max_idle=settings.max_concurrency)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(None),
            transport=transport,
            trust_env=False,
            follow_redirects=False,
        ) as client:
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
    app: ASGIApp = Dispatch(public, Forwarder(settings, metrics))
    # Outermost last: access (ids, log, metrics) -> auth -> limits -> concurrency.
    app = ConcurrencyLimitMiddleware(app, limit=settings.max_concurrency)
    app = RequestLimitsMiddleware(
        app, max_header_bytes=settings.max_header_bytes, max_body_bytes=settings.max_body_bytes
    )
    app = AuthMiddleware(app, keys=KeyChecker(settings.api_keys))
    return AccessMiddleware(app, metrics=metrics)
