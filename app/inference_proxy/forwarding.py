"""The forwarding endpoint: every vLLM route, as a pure ASGI app."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from .asgi import Receive, Scope, Send, header
from .config import Settings
from .context import CONTEXT_KEY, RequestContext
from .errors import BadRequest, NotFound, PayloadTooLarge, ProxyError, RequestTimeout
from .metrics import Metrics
from .pool import UpstreamTransport, request_head
from .routes import is_forwarded
from .streaming import Exchange, relay
from .timeouts import RequestFacts, compute_budget, request_facts
from .upstream import Target, request_headers, upstream_target


class ClientGone(Exception):
    """The client disconnected while sending its request."""


class Forwarder:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        url = urlsplit(settings.upstream_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.host_header = url.netloc.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: RequestContext = scope[CONTEXT_KEY]
        transport: UpstreamTransport = scope["state"]["upstream"]
        s = self.settings
        try:
            if not is_forwarded(scope["path"]):
                raise NotFound(
                    f"{scope['path']} is not a route of this server: vLLM routes live under "
                    "/v1/ (plus /tokenize, /detokenize, /pooling, /score, /rerank, /classify)."
                )
            body = await read_body(receive, max_bytes=s.max_body_bytes, seconds=s.default_timeout)
            facts = parse_facts(scope, body)
        except ClientGone:
            ctx.outcome = "client_gone"
            return
        except ProxyError as error:
            if isinstance(error, RequestTimeout):
                ctx.outcome = "timeout"
                self.metrics.timeouts.labels(ctx.route, "request_body").inc()
            await error.send_to(send)
            return
        ctx.model, ctx.stream = facts.model, facts.stream
        budget = compute_budget(
            scope["path"],
            stream=facts.stream,
            max_tokens=facts.max_tokens,
            model=facts.model,
            prompt_bytes=len(body),
            default_timeout=s.default_timeout,
            max_timeout=s.max_timeout,
        )
        method: str = scope["method"]
        headers = request_headers(scope["headers"], ctx.request_id)
        headers.append((b"host", self.host_header))
        if body or method in {"POST", "PUT", "PATCH"}:
            headers.append((b"content-length", b"%d" % len(body)))
        target = Target(
            host=self.host,
            port=self.port,
            head=request_head(
                method.encode(),
                upstream_target(scope["path"], scope.get("query_string", b"")),
                headers,
            ),
            body=body,
            head_only=method == "HEAD",
        )
        exchange = Exchange(target, budget, s.retry_window)
        await relay(transport, exchange, ctx, receive, send, self.metrics)


async def read_body(receive: Receive, *, max_bytes: int, seconds: float) -> bytes:
    """The whole request body, refusing it (413) as soon as it passes `max_bytes` and
    giving up (408) on a client that has not finished sending it within `seconds`."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"Request body passed {max_bytes} bytes (PROXY_MAX_BODY_BYTES); send less."
                    )
                parts.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {seconds:.0f} s; send it faster."
        ) from None


def parse_facts(scope: Scope, body: bytes) -> RequestFacts:
    """Model, stream flag and token limit from the JSON body. Every vLLM route but the
    multipart audio uploads takes JSON (whatever Content-Type a `curl -d` claims), so a
    body that does not parse is a 400 here, before vLLM is bothered."""
    content_type = (header(scope, b"content-type") or b"").lower()
    if not body or content_type.startswith(b"multipart/"):
        return request_facts(None)
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise BadRequest(f"The request body is not valid JSON ({detail}).") from None
    return request_facts(parsed)
