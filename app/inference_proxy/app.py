"""The app factory: Starlette routes, the pure ASGI middleware stack, and one shared
httpx.AsyncClient created in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

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
from .upstream import UpstreamProbe

PROBE_TIMEOUT = 5.0


class State(TypedDict):
    http_client: httpx.AsyncClient
    probe: UpstreamProbe


def create_app(settings: Settings, metrics: Metrics | None = None) -> Starlette:
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # No httpx timeouts: every request carries its own budget (timeouts.py), enforced
        # around the whole exchange. trust_env=False: HTTP(S)_PROXY must not reroute a
        # loopback vLLM. Keep-alive connections: as many as the concurrency limit
        # (pool.py says why not httpx's default pool).
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(None),
            transport=UpstreamTransport(max_idle=settings.max_concurrency),
            trust_env=False,
            follow_redirects=False,
        ) as client:
            probe = UpstreamProbe(
                client, settings.upstream_url, timeout=min(PROBE_TIMEOUT, settings.default_timeout)
            )
            yield {"http_client": client, "probe": probe}

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
            Route("/{path:path}", Forwarder(settings, metrics)),
        ],
        middleware=[
            Middleware(AccessMiddleware, metrics=metrics),
            Middleware(AuthMiddleware, keys=KeyChecker(settings.api_keys)),
            Middleware(
                RequestLimitsMiddleware,
                max_header_bytes=settings.max_header_bytes,
                max_body_bytes=settings.max_body_bytes,
            ),
            Middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrency),
        ],
        lifespan=lifespan,
    )
