"""Per-request facts gathered along the way and written to the access log and metrics."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from .asgi import Scope, header
from .routes import route_label

CONTEXT_KEY = "inference_proxy.request"
Outcome = Literal["ok", "client_gone", "timeout", "upstream_error"]

# A client's X-Request-ID is kept when it is a sane token; anything else (too long,
# spaces, control bytes) is replaced, since it goes into log lines and upstream headers.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    route: str
    started: float
    model: str | None = None
    stream: bool = False
    status: int = 0
    first_byte_at: float | None = None
    bytes_sent: int = 0
    outcome: Outcome = "ok"
    finished: float | None = None

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
            "path": self.path if len(self.path) <= 256 else self.path[:256] + "...",
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "duration_ms": round(self.duration * 1000, 2),
            "ttft_ms": None if ttft is None else round(ttft * 1000, 2),
            "bytes": self.bytes_sent,
            "outcome": self.outcome,
        }
