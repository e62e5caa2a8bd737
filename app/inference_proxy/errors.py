"""Errors the proxy itself answers, in OpenAI's shape:
`{"error": {"message", "type", "param", "code"}}`. vLLM's own error responses are relayed
unchanged and never pass through here.

Each class fixes the HTTP status, the OpenAI `type` and a stable `code`; the message says
what was wrong and what to do about it.
"""

from __future__ import annotations

import json
from typing import ClassVar

from .asgi import Send


class ClientGone(Exception):
    """The client went away: it disconnected while sending its request or while the
    response was produced, or a write to it failed. The one signal for it; the request
    ends with outcome `client_gone`."""


class ProxyError(Exception):
    status: ClassVar[int] = 500
    type: str = "internal_error"
    code: ClassVar[str] = "internal_error"
    retry_after: int | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers

    async def send_to(self, send: Send) -> None:
        body = self.body()
        headers = [*self.headers(), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_json"


class Unauthorized(ProxyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), (b"www-authenticate", b'Bearer realm="inference-proxy"')]


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "unknown_route"


class ModelNotFound(ProxyError):
    """The key may not use the model it asked for (OpenAI answers the same for a model
    that does not exist, so the answer does not tell which models exist)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RequestTimeout(ProxyError):
    status = 408
    type = "invalid_request_error"
    code = "request_body_timeout"


class PayloadTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HeadersTooLarge(ProxyError):
    status = 431
    type = "invalid_request_error"
    code = "request_headers_too_large"


class OverCapacity(ProxyError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_concurrent_requests"
    retry_after = 1


class TooManyLargeBodies(ProxyError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_large_requests"
    retry_after = 1


class RateLimited(ProxyError):
    """A key is over one of its own limits; `type` says which kind, as OpenAI's does."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retry_after: int,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        super().__init__(message)
        self.type = kind
        self.retry_after = max(1, retry_after)
        self._extra = headers

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), *self._extra]


class UpstreamError(ProxyError):
    """vLLM broke the response before the proxy sent anything to the client."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailable(ProxyError):
    status = 503
    type = "service_unavailable"
    code = "upstream_unavailable"
    retry_after = 5


class UpstreamTimeout(ProxyError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


def error_body(message: str, type_: str, code: str | int, param: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        separators=(",", ":"),
    ).encode()


def sse_error_event(error: ProxyError) -> bytes:
    """The event that ends a stream the proxy must cut: the openai client raises on an
    event carrying `error`; `[DONE]` then closes the stream cleanly for other clients."""
    return b"data: " + error.body() + b"\n\ndata: [DONE]\n\n"
