"""One exchange with vLLM and the relay of its answer: the request sent (with retries
while no response has started), headers held back until the first body chunk (so a
timeout or failure before it can still be a clean 504/502/503), then every chunk sent on
as it arrives, never merged or buffered. Usage is read on the way (usage.py); a client
that goes away closes the upstream connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from .asgi import Receive, Send
from .context import RequestContext
from .errors import (
    ClientGone,
    ProxyError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    sse_error_event,
)
from .pool import UpstreamResponse, UpstreamTransport
from .request import LargeBodies
from .timeouts import Budget
from .upstream import Target, open_upstream
from .usage import InjectedUsageFilter, UsageScanner

_RESPONSE_DROP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"x-request-id", b"trailer", b"upgrade"}
)
_PHASE_WORDS = {"first_byte": "start answering", "idle": "send the next chunk", "total": "finish"}


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], *, keep_length: bool
) -> list[tuple[bytes, bytes]]:
    drop = _RESPONSE_DROP if keep_length else _RESPONSE_DROP | {b"content-length"}
    return [(k, v) for k, v in headers if k.lower() not in drop]


class DisconnectWatcher:
    """Waits on `receive()` for http.disconnect while the response is produced and cancels
    the handling task when it comes: whether the task is waiting for vLLM's headers, for
    the first token or between chunks. Started after the request body was read."""

    def __init__(self, receive: Receive, task: asyncio.Task[object]) -> None:
        self.client_gone = False
        self._done = False
        self._task = task
        self._watch = asyncio.create_task(self._run(receive))

    async def _run(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._done:
            self.client_gone = True
            self._task.cancel()

    def response_complete(self) -> None:
        """Called before the last send: from here on a disconnect is the normal end."""
        self._done = True

    def stop(self) -> None:
        self._done = True
        if not self._watch.done():
            self._watch.cancel()


@dataclass(slots=True)
class Exchange:
    target: Target
    budget: Budget
    retry_window: float
    hide_usage: bool = False  # the proxy asked for the stream's usage: remove that event
    models: frozenset[str] | None = None  # filter a /v1/models answer to these
    large: LargeBodies | None = None  # the large-body slot the body holds, if any

    def drop_body(self) -> None:
        self.target.body = b""
        if self.large is not None:
            self.large.release()
            self.large = None


async def exchange(
    transport: UpstreamTransport,
    ex: Exchange,
    ctx: RequestContext,
    receive: Receive,
    send: Send,
) -> None:
    """Forward `ex` and relay the answer; records outcome, phase, usage in `ctx`. Raises
    ClientGone when the client went away."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    watcher = DisconnectWatcher(receive, task)
    budget = ex.budget
    start = loop.time()
    total_deadline = None if budget.total is None else start + budget.total
    response: UpstreamResponse | None = None
    started = False
    sse = False
    phase = "first_byte"
    scanner = UsageScanner()
    chunks_relayed = 0
    try:
        async with asyncio.timeout_at(start + budget.first_byte) as timer:
            response = await open_upstream(
                transport,
                ex.target,
                retry_until=min(start + budget.first_byte, start + ex.retry_window),
                ctx=ctx,
            )
            ex.drop_body()  # sent and answered: no retry will need it
            sse = (response.header(b"content-type") or b"").startswith(b"text/event-stream")
            if ex.models is not None and response.status == 200 and not sse:
                await _send_models(response, ex.models, send)
                watcher.response_complete()
                return
            chunks = aiter(response.stream)
            first = await anext(chunks, b"")
            idle = budget.idle
            phase = "total" if idle is None else "idle"
            timer.reschedule(total_deadline if idle is None else loop.time() + idle)
            hide = InjectedUsageFilter(scanner) if ex.hide_usage and sse else None
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    # An SSE stream may get an error event appended: drop its length.
                    "headers": response_headers(response.headers, keep_length=not sse),
                }
            )
            started = True
            if hide is not None:
                first = hide.feed(first)
            else:
                scanner.feed(first)
            if first:
                chunks_relayed = 1
                await send({"type": "http.response.body", "body": first, "more_body": True})
            # Moving the deadline on every chunk costs a timer per token; moving it only
            # once it lags `now + idle` by more than `slack` cuts a silent stream after
            # between idle - slack and idle seconds.
            slack = 0.0 if idle is None else min(1.0, idle / 20)
            deadline = 0.0 if idle is None else loop.time() + idle
            async for chunk in chunks:
                if hide is not None:
                    chunk = hide.feed(chunk)
                    if not chunk:
                        continue
                else:
                    scanner.feed(chunk)
                chunks_relayed += 1
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if idle is not None:
                    now = loop.time()
                    if now + idle - deadline > slack:
                        deadline = now + idle
                        timer.reschedule(deadline)
            if hide is not None and (rest := hide.flush()):
                await send({"type": "http.response.body", "body": rest, "more_body": True})
            watcher.response_complete()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.client_gone:
            raise  # shutdown past its grace period: not ours to swallow
        task.uncancel()
        raise ClientGone from None
    except TimeoutError:
        ctx.outcome, ctx.timeout_phase = "timeout", phase
        seconds = budget.first_byte if phase == "first_byte" else (budget.idle or budget.total)
        timeout = UpstreamTimeout(
            f"vLLM did not {_PHASE_WORDS[phase]} within {seconds:.1f} s, this request's budget "
            "(it grows with max_tokens, prompt and model size; see PROXY_MAX_TIMEOUT)."
        )
        await _fail(timeout, started=started, sse=sse, send=send, watcher=watcher)
    except UpstreamUnavailable as unreachable:
        ctx.outcome, ctx.upstream_error = "upstream_error", "unreachable"
        await _fail(unreachable, started=started, sse=sse, send=send, watcher=watcher)
    except httpx.HTTPError as exc:
        ctx.outcome, ctx.upstream_error = "upstream_error", "broken"
        broken = UpstreamError(
            f"vLLM broke off its response ({type(exc).__name__}); retry the request."
        )
        await _fail(broken, started=started, sse=sse, send=send, watcher=watcher)
    finally:
        watcher.stop()
        ex.drop_body()
        ctx.prompt_tokens, ctx.completion_tokens = scanner.counts()
        ctx.chunks_relayed = chunks_relayed
        if response is not None:
            # Unread body left: the pool closes the connection instead of reusing it, so
            # vLLM sees the disconnect and aborts the generation.
            await response.aclose()


async def _send_models(response: UpstreamResponse, models: frozenset[str], send: Send) -> None:
    """vLLM's model list with only the models this key may use."""
    raw = b"".join([chunk async for chunk in response.stream])
    try:
        listing = json.loads(raw)
        listing["data"] = [m for m in listing["data"] if m.get("id") in models]
        body = json.dumps(listing, separators=(",", ":")).encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise httpx.RemoteProtocolError("vLLM's /v1/models answer is not a model list") from None
    headers = response_headers(response.headers, keep_length=False)
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _fail(
    error: ProxyError, *, started: bool, sse: bool, send: Send, watcher: DisconnectWatcher
) -> None:
    watcher.response_complete()
    if not started:
        await error.send_to(send)
    elif sse:
        await send(
            {"type": "http.response.body", "body": sse_error_event(error), "more_body": True}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    # Otherwise a plain body was cut mid-way: returning without completing it makes the
    # server close the connection, which is the only honest signal left.
