"""Load over raw HTTP/1.1 keep-alive connections (asyncio streams, no client library in
the way): closed-loop non-streaming clients and concurrent SSE streams, with the counts
a benchmark reports. One `Target` per path under test."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOKEN = re.compile(rb'"t\d+ "')  # one token event of testkit/fake_vllm.py


@dataclass
class Target:
    """One path under test and what the load measured on it."""

    name: str
    port: int
    headers: bytes = b""  # extra request header lines, each ending in \r\n
    model: str = "fake-org/Fake-Model-8B-Instruct"
    nonstream_latency: list[float] = field(default_factory=list)
    nonstream_count: int = 0
    nonstream_total: int = 0  # including the warm-up second
    nonstream_seconds: float = 0.0
    nonstream_errors: int = 0
    ttft: list[float] = field(default_factory=list)
    stream_errors: int = 0
    streams_done: int = 0
    token_reads: int = 0
    merged_reads: int = 0
    token_chunks: int = 0
    merged_chunks: int = 0
    tokens_expected: int = 0
    tokens_seen: int = 0


def request_bytes(target: Target, *, stream: bool, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": target.model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": tokens,
            "stream": stream,
        }
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
        b"Content-Type: application/json\r\n"
        + target.headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class BadResponse(Exception):
    """A status other than 200, or a connection closed mid-response."""


async def read_response(
    reader: asyncio.StreamReader, on_data: Callable[[bytes], None] | None = None
) -> bytes:
    """One HTTP/1.1 response (content-length or chunked); returns the raw body bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            data = await reader.read(65536)
            if not data:
                raise BadResponse("connection closed mid-stream")
            if on_data is not None:
                on_data(data)
            body += data
            if body.endswith(b"0\r\n\r\n"):
                break
    else:
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        body = await reader.readexactly(length)
    if status != 200:
        raise BadResponse(f"status {status}: {body[:200]!r}")
    return body


def http_chunks(body: bytes) -> list[bytes]:
    """The payloads of a chunked transfer-encoded body."""
    out: list[bytes] = []
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return out
        out.append(body[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


FAILURES = (BadResponse, asyncio.IncompleteReadError, ConnectionError, ValueError)


async def nonstream_segment(target: Target, concurrency: int, seconds: float) -> None:
    """`concurrency` closed-loop clients for `seconds`; the first second is a warm-up
    (served and counted in `nonstream_total`, not in latencies or `nonstream_count`)."""
    payload = request_bytes(target, stream=False, tokens=1)
    stop = time.monotonic() + seconds
    warm = time.monotonic() + 1.0

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while time.monotonic() < stop:
                started = time.perf_counter()
                writer.write(payload)
                try:
                    await read_response(reader)
                except FAILURES:
                    target.nonstream_errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
                    continue
                target.nonstream_total += 1
                if time.monotonic() > warm:
                    target.nonstream_latency.append(time.perf_counter() - started)
                    target.nonstream_count += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    target.nonstream_seconds += time.monotonic() - warm


async def stream_segment(target: Target, concurrency: int, seconds: float, tokens: int) -> None:
    """`concurrency` clients each streaming `tokens`-token completions back to back."""
    payload = request_bytes(target, stream=True, tokens=tokens)
    stop = time.monotonic() + seconds
    ramp = 1.0  # stagger the starts so the first TTFTs are not a connect storm
    measure_from = time.monotonic() + ramp + 0.5

    async def worker(index: int) -> None:
        await asyncio.sleep(ramp * index / concurrency)
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while time.monotonic() < stop:
                first: list[float] = []
                started = time.perf_counter()

                def on_data(data: bytes, first: list[float] = first) -> None:
                    found = len(TOKEN.findall(data))
                    if found:
                        if not first:
                            first.append(time.perf_counter())
                        target.token_reads += 1
                        if found > 1:
                            target.merged_reads += 1

                writer.write(payload)
                try:
                    body = await read_response(reader, on_data)
                except FAILURES:
                    target.stream_errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
                    continue
                target.streams_done += 1
                target.tokens_expected += tokens
                target.tokens_seen += len(TOKEN.findall(body))
                for chunk in http_chunks(body):
                    found = len(TOKEN.findall(chunk))
                    if found:
                        target.token_chunks += 1
                        target.merged_chunks += found > 1
                if first and time.monotonic() > measure_from:
                    target.ttft.append(first[0] - started)
        finally:
            writer.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
