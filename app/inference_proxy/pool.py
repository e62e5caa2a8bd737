"""Keep-alive connections to vLLM: an httpx transport whose pool costs O(1) per request.

httpcore's own pool re-scans every connection (and, for the keep-alive limit, every
connection again for each one) whenever a request starts or ends, and probes every socket
on the way. At 64 concurrent requests that already costs milliseconds of CPU per request;
at 256 concurrent streams it costs more than relaying the tokens. Here each request takes
the most recently used idle connection (checking only that one), and each response puts
its connection back when it was read to the end. A response closed early (client gone,
timeout) leaves httpcore's connection half-read, so httpcore closes it: it is never
reused, and vLLM sees the disconnect and aborts the generation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpcore
import httpx

# Most specific first: the first match wins.
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones callers catch."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class UpstreamTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_idle: int, keepalive_expiry: float = 30.0) -> None:
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}
        self._all: set[httpcore.AsyncHTTPConnection] = set()
        self.connections_opened = 0

    async def _checkout(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get((origin.scheme, origin.host, origin.port))
        while idle:
            connection = idle.pop()  # the warmest one
            if connection.is_idle() and not connection.has_expired():
                return connection
            await self._close(connection)  # vLLM closed it, or it sat idle too long
        self.connections_opened += 1
        connection = httpcore.AsyncHTTPConnection(
            origin=origin, keepalive_expiry=self._keepalive_expiry, http1=True, http2=False
        )
        self._all.add(connection)
        return connection

    async def _close(self, connection: httpcore.AsyncHTTPConnection) -> None:
        self._all.discard(connection)
        await connection.aclose()

    async def _release(
        self, origin: httpcore.Origin, connection: httpcore.AsyncHTTPConnection
    ) -> None:
        if not connection.is_idle():
            await self._close(connection)  # a no-op when httpcore already closed it
            return
        idle = self._idle.setdefault((origin.scheme, origin.host, origin.port), [])
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            await self._close(connection)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin = httpcore.Origin(url.raw_scheme, url.raw_host, port)
        connection = await self._checkout(origin)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            with _httpx_errors():
                response = await connection.handle_async_request(core_request)
        except BaseException:
            # httpcore closes a failed HTTP/1.1 exchange itself, but not a connection
            # whose setup was cancelled half-way; closing twice is harmless.
            await self._close(connection)
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PooledStream(response, self, origin, connection),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every connection, idle or still streaming (at shutdown)."""
        self._idle.clear()
        for connection in list(self._all):
            await self._close(connection)


class _PooledStream(httpx.AsyncByteStream):
    def __init__(
        self,
        response: httpcore.Response,
        pool: UpstreamTransport,
        origin: httpcore.Origin,
        connection: httpcore.AsyncHTTPConnection,
    ) -> None:
        self._response = response
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._response.aclose()
        finally:
            await self._pool._release(self._origin, self._connection)
