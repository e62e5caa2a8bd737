"""Talking to vLLM: sending a request with retries while no response has started, and the
health probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from .context import RequestContext
from .errors import UpstreamUnavailable
from .pool import UpstreamResponse, UpstreamTransport

# Failures that mean "no response was started": refused, reset, or a pooled keep-alive
# connection the server had already closed (llama.cpp's server does that after a stream).
RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


async def open_upstream(
    transport: UpstreamTransport,
    target: Target,
    *,
    retry_until: float,
    ctx: RequestContext,
) -> UpstreamResponse:
    """Send the request and return the response with its body unread. Connection failures
    are retried, first at once (a stale keep-alive connection) then with doubling backoff,
    until `retry_until` (loop time); then UpstreamUnavailable (503). Callers bound the whole
    call with their first-byte budget."""
    loop = asyncio.get_running_loop()
    delay = 0.0
    while True:
        try:
            return await transport.open(
                target.host, target.port, target.head, target.body, head_only=target.head_only
            )
        except RETRYABLE as exc:
            if loop.time() + delay > retry_until:
                raise UpstreamUnavailable(
                    f"vLLM at {target.host}:{target.port} is unreachable "
                    f"({type(exc).__name__}); it may be starting or restarting, retry shortly."
                ) from exc
            ctx.retries += 1
            if delay:
                await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF, max(FIRST_BACKOFF, delay * 2))


@dataclass(slots=True)
class Target:
    """One request for vLLM, ready for the wire. `body` is dropped once vLLM answered."""

    host: str
    port: int
    head: bytes
    body: bytes | bytearray
    head_only: bool


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str
    models: tuple[str, ...] = ()


class UpstreamProbe:
    """vLLM's /health and /v1/models, each answer cached for `ttl` seconds so that a
    flood of unauthenticated /health calls cannot become a flood on vLLM."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, *, timeout: float, ttl: float = 1.0
    ) -> None:
        self._client = client
        self._base = base_url
        self._timeout = timeout
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ProbeResult]] = {}
        self._locks: dict[str, asyncio.Lock] = {"health": asyncio.Lock(), "ready": asyncio.Lock()}

    async def health(self) -> ProbeResult:
        return await self._cached("health", self._health)

    async def ready(self) -> ProbeResult:
        return await self._cached("ready", self._ready)

    async def _cached(self, name: str, probe: Callable[[], Awaitable[ProbeResult]]) -> ProbeResult:
        async with self._locks[name]:
            hit = self._cache.get(name)
            if hit and time.monotonic() - hit[0] < self._ttl:
                return hit[1]
            result = await probe()
            self._cache[name] = (time.monotonic(), result)
            return result

    async def _get(self, path: str) -> httpx.Response:
        return await self._client.get(self._base + path, timeout=self._timeout)

    async def _health(self) -> ProbeResult:
        try:
            response = await self._get("/health")
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            return ProbeResult(False, f"vLLM /health answered {response.status_code}")
        return ProbeResult(True, "ok")

    async def _ready(self) -> ProbeResult:
        try:
            response = await self._get("/v1/models")
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            return ProbeResult(False, f"vLLM /v1/models answered {response.status_code}")
        try:
            data = response.json()["data"]
            models = tuple(str(m["id"]) for m in data)
        except (ValueError, KeyError, TypeError):
            return ProbeResult(False, "vLLM /v1/models answered an unexpected body")
        if not models:
            return ProbeResult(False, "vLLM serves no model yet")
        return ProbeResult(True, "ok", models)
