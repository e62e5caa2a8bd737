"""Relaying vLLM's response: headers held back until the first body chunk (so a timeout
or failure before it can still be a clean 504/502/503), then every chunk sent on as it
arrives, never merged or buffered; the client's disconnect closes the upstream connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from .asgi import Receive, Send
from .context import RequestContext
from .errors import ProxyError, UpstreamError, UpstreamTimeout, UpstreamUnavailable, sse_error_event
from .metrics import Metrics
from .middleware import ClientDisconnected
from .pool import UpstreamResponse, UpstreamTransport
from .timeouts import Budget
from .upstream import Target, open_upstream, response_headers


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


async def relay(
    transport: UpstreamTransport,
    exchange: Exchange,
    ctx: RequestContext,
    receive: Receive,
    send: Send,
    metrics: Metrics,
) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    watcher = DisconnectWatcher(receive, task)
    budget = exchange.budget
    start = loop.time()
    total_deadline = None if budget.total is None else start + budget.total
    response: UpstreamResponse | None = None
    started = False
    sse = False
    phase = "first_byte"

    def on_retry(exc: Exception) -> None:
        metrics.upstream_retries.inc()

    try:
        async with asyncio.timeout_at(start + budget.first_byte) as timer:
            response = await open_upstream(
                transport,
                exchange.target,
                retry_until=min(start + budget.first_byte, start + exchange.retry_window),
                on_retry=on_retry,
            )
            sse = (response.header(b"content-type") or b"").startswith(b"text/event-stream")
            chunks = aiter(response.stream)
            first = await anext(chunks, b"")
            idle = budget.idle
            phase = "total" if idle is None else "idle"
            timer.reschedule(total_deadline if idle is None else loop.time() + idle)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    # An SSE stream may get an error event appended: drop its length.
                    "headers": response_headers(response.headers, keep_length=not sse),
                }
            )
            started = True
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
                if idle is None:
                    async for chunk in chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                else:
                    # Moving the deadline on every chunk costs a timer per token; moving it
                    # only once it lags `now + idle` by more than `slack` cuts a silent
                    # stream after between idle - slack and idle seconds.
                    slack = min(1.0, idle / 20)
                    deadline = loop.time() + idle
                    async for chunk in chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        now = loop.time()
                        if now + idle - deadline > slack:
                            deadline = now + idle
                            timer.reschedule(deadline)
            watcher.response_complete()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.client_gone:
            raise  # shutdown past its grace period: not ours to swallow
        task.uncancel()
        ctx.outcome = "client_gone"
    except ClientDisconnected:
        ctx.outcome = "client_gone"
    except TimeoutError:
        ctx.outcome = "timeout"
        metrics.timeouts.labels(ctx.route, phase).inc()
        seconds = budget.first_byte if phase == "first_byte" else (budget.idle or budget.total)
        what = {"first_byte": "start answering", "idle": "send the next chunk", "total": "finish"}[
            phase
        ]
        timeout = UpstreamTimeout(
            f"vLLM did not {what} within {seconds:.1f} s, this request's budget (it grows with "
            "max_tokens, prompt and model size; see PROXY_MAX_TIMEOUT)."
        )
        await _fail(timeout, started=started, sse=sse, send=send, watcher=watcher)
    except UpstreamUnavailable as unreachable:
        ctx.outcome = "upstream_error"
        metrics.upstream_errors.labels(ctx.route, "unreachable").inc()
        await _fail(unreachable, started=started, sse=sse, send=send, watcher=watcher)
    except httpx.HTTPError as exc:
        ctx.outcome = "upstream_error"
        metrics.upstream_errors.labels(ctx.route, "broken").inc()
        broken = UpstreamError(
            f"vLLM broke off its response ({type(exc).__name__}); retry the request."
        )
        await _fail(broken, started=started, sse=sse, send=send, watcher=watcher)
    finally:
        watcher.stop()
        if response is not None:
            # Unread body left: the pool closes the connection instead of reusing it, so
            # vLLM sees the disconnect and aborts the generation.
            await response.aclose()


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
