"""Per-request facts gathered along the way, written to the access log and the metrics
once, when the request ends (metrics.Metrics.record, accesslog)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .asgi import Scope, header
from .routes import route_label

Outcome = Literal["ok", "client_gone", "timeout", "upstream_error"]
# What a client sends is logged at most this long (path, model).
LOGGED_CHARS = 256

# A client's X-Request-ID is kept when it is a sane token; anything else (too long,
# spaces, control bytes) is replaced, since it goes into log lines and upstream headers.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


def clipped(text: str | None) -> str | None:
    if text is None or len(text) <= LOGGED_CHARS:
        return text
    return text[:LOGGED_CHARS] + "..."


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    route: str
    started: float
    api: bool = False  # an API request that passed auth (moves the last-request time)
    key_name: str | None = None
    model: str | None = None
    stream: bool = False
    status: int = 0
    first_byte_at: float | None = None
    bytes_sent: int = 0
    outcome: Outcome = "ok"
    timeout_phase: str | None = None  # first_byte, idle, total, request_body
    upstream_error: str | None = None  # unreachable, broken
    retries: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunks_relayed: int = 0
    body_bytes: int = 0
    finished: float | None = None
    # Added to the response's headers (x-request-id, the key's x-ratelimit-*).
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, scope: Scope) -> RequestContext:
        given = header(scope, b"x-request-id")
        request_id = (
            given.decode() if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        )
        path: str = scope["path"]
        return cls(
            request_id=request_id,
            method=scope["method"],
            path=path,
            route=route_label(path),
            started=time.perf_counter(),
            response_headers=[(b"x-request-id", request_id.encode())],
        )

    @property
    def duration(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def ttft(self) -> float | None:
        return None if self.first_byte_at is None else self.first_byte_at - self.started

    def log_fields(self) -> dict[str, Any]:
        ttft = self.ttft
        return {
            "request_id": self.request_id,
            "method": self.method,
            "route": self.route,
            "path": clipped(self.path),
            "key": self.key_name,
            "model": clipped(self.model),
            "stream": self.stream,
            "status": self.status,
            "duration_ms": round(self.duration * 1000, 2),
            "ttft_ms": None if ttft is None else round(ttft * 1000, 2),
            "bytes": self.bytes_sent,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "outcome": self.outcome,
        }
