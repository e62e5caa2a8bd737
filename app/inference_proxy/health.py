"""Routes that need no API key: /health, /ready and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .metrics import Metrics
from .upstream import UpstreamProbe

RETRY_AFTER = {"Retry-After": "5"}


async def health(request: Request) -> Response:
    """200 when the proxy runs and vLLM's /health answers 200, else 503."""
    probe: UpstreamProbe = request.state.probe
    result = await probe.health()
    body = {
        "status": "ok" if result.ok else "unavailable",
        "proxy": "ok",
        "upstream": result.detail,
    }
    return JSONResponse(
        body, status_code=200 if result.ok else 503, headers=None if result.ok else RETRY_AFTER
    )


async def ready(request: Request) -> Response:
    """200 when vLLM lists at least one model on /v1/models, else 503."""
    probe: UpstreamProbe = request.state.probe
    result = await probe.ready()
    if result.ok:
        return JSONResponse({"status": "ready", "models": list(result.models)})
    return JSONResponse(
        {"status": "not_ready", "upstream": result.detail}, status_code=503, headers=RETRY_AFTER
    )


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return endpoint
