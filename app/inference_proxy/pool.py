"""Keep-alive HTTP/1.1 connections to vLLM, as an httpx transport.

The proxy talks to one vLLM on a loopback or VPC address, over and over, mostly in
streams of small chunks. httpx's default transport is built for the general case and
costs more than relaying the tokens: httpcore's pool rescans every connection
(quadratically) whenever a request starts or ends, every socket read goes through anyio's
cancel scopes, and every chunk through h11's pure-Python parser. Here:

* a connection is an asyncio Protocol with httptools' C parser (the one uvicorn uses on
  the client side); each body chunk vLLM sends is handed on as it was parsed;
* the pool is a stack of idle connections per origin: O(1) per request; a connection
  that vLLM closed while idle marks itself dead (event-driven, no socket polling);
* a response closed before its end (client gone, timeout) closes its connection: it is
  never reused, and vLLM sees the disconnect and aborts the generation.

It raises httpx's exceptions (the retry rules are written against httpx.ConnectError and
friends) and serves httpx.AsyncClient as a transport (the health probes). The forwarding
path calls `open()` directly: building httpx URL, Request and Response objects and going
through the client's auth, redirect and cookie steps costs more per request than all the
rest of the proxy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import httptools
import httpx

_HIGH_WATER = 1 << 20  # stop reading from vLLM while this much is parsed but not relayed


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.closed = False
        self._reset()
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._reading_paused = False

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: Exception | None = None

    # asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # nothing was asked: a stray byte makes the connection unusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"invalid HTTP from vLLM: {exc}")
            self.close()
        if self.buffered > _HIGH_WATER and self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete and self.error is None:
            if not self.headers_done:
                self.error = httpx.RemoteProtocolError(
                    "vLLM closed the connection without sending a response"
                )
            else:
                self.error = httpx.ReadError(
                    f"vLLM closed the connection mid-response ({exc or 'end of stream'})"
                )
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks --------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # used by the transport ----------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, seconds: float | None) -> None:
        """Until the parser or the socket has news."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            if seconds is None:
                await self._waiter
            else:
                async with asyncio.timeout(seconds):
                    await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout(f"vLLM sent nothing for {seconds} s") from None
        finally:
            self._waiter = None

    async def send_request(self, head: bytes, body: bytes | bytearray) -> None:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise httpx.RemoteProtocolError("the connection to vLLM was closed")
        self._reset()
        self.busy = True
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        if self._writing_paused:
            self._drain = asyncio.get_running_loop().create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.closed and self.error is None:
            raise httpx.WriteError("vLLM closed the connection while the request was sent")

    def next_chunk(self) -> bytes | None:
        """A parsed body chunk, or None when there is none yet."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self._reading_paused and self.buffered < _HIGH_WATER // 2 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return not self.closed and self.complete and self.keep_alive and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_idle: int) -> None:
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self.connections_opened = 0

    async def _checkout(self, host: str, port: int, seconds: float | None) -> _Connection:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()  # the warmest one
            if not connection.closed:
                return connection
            self._all.discard(connection)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {host}:{port} took over {seconds} s"
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.connections_opened += 1
        self._all.add(connection)
        return connection

    def _release(self, key: tuple[str, int], connection: _Connection) -> None:
        connection.busy = False
        idle = self._idle.setdefault(key, [])
        if connection.reusable() and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            self._discard(connection)

    def _discard(self, connection: _Connection) -> None:
        self._all.discard(connection)
        connection.close()

    async def open(
        self,
        host: str,
        port: int,
        head: bytes,
        body: bytes | bytearray,
        *,
        head_only: bool = False,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request (`head` = request line and headers) and return once vLLM's
        response headers are in; the body is read from the returned stream."""
        connection = await self._checkout(host, port, connect_timeout)
        try:
            await connection.send_request(head, body)
            while not connection.headers_done:
                if connection.error is not None:
                    raise connection.error
                await connection.wait(read_timeout)
        except BaseException:
            # Includes cancellation (client gone, budget spent): closing the socket is
            # what tells vLLM to stop.
            self._discard(connection)
            raise
        if head_only:
            connection.complete, connection.keep_alive = True, False
        stream = _BodyStream(self, (host, port), connection, read_timeout)
        return UpstreamResponse(connection.status, connection.headers, stream)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The httpx interface (the probes use it through httpx.AsyncClient)."""
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// upstreams are supported, not {url}")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        head = request_head(request.method.encode(), url.raw_path, request.headers.raw)
        response = await self.open(
            url.host,
            url.port or 80,
            head,
            body,
            head_only=request.method == "HEAD",
            connect_timeout=timeouts.get("connect"),
            read_timeout=timeouts.get("read"),
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=response.stream,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close every connection, idle or still streaming (at shutdown)."""
        self._idle.clear()
        for connection in list(self._all):
            self._discard(connection)


def request_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Request line and header block of an HTTP/1.1 request."""
    lines = b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, lines)


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    stream: _BodyStream

    def header(self, name: bytes) -> bytes | None:
        """First value of response header `name` (lower-case)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def aclose(self) -> None:
        await self.stream.aclose()


class _BodyStream(httpx.AsyncByteStream):
    def __init__(
        self,
        pool: UpstreamTransport,
        key: tuple[str, int],
        connection: _Connection,
        read_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._connection = connection
        self._read_timeout = read_timeout
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            chunk = connection.next_chunk()
            if chunk is not None:
                yield chunk
            elif connection.complete:
                return
            elif connection.error is not None:
                raise connection.error
            else:
                await connection.wait(self._read_timeout)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Read to the end: reused. Not: closed, so vLLM aborts what it was doing.
            self._pool._release(self._key, self._connection)

    def __repr__(self) -> str:
        return f"<_BodyStream {self._key} complete={self._connection.complete}>"
