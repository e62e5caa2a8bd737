"""Mapping a client's request to vLLM's: the body read within bounds, the few fields the
proxy needs read from it, and the bytes to send upstream (request line, headers, body).

Large bodies: a body above PROXY_LARGE_BODY_BYTES needs one of PROXY_MAX_LARGE_BODIES
slots (else 429, before or while it is read), so memory stays bounded however many big
bodies arrive at once. The body is never parsed into Python objects: msgspec reads the
top-level fields the proxy needs (`model`, `stream`, the token limits, `stream_options`)
and skips the rest in C while checking it is valid JSON, so a 10 MiB body costs a few
milliseconds and no memory beyond its bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from .asgi import Receive
from .errors import BadRequest, ClientGone, PayloadTooLarge, RequestTimeout, TooManyLargeBodies

TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Routes whose streams take `stream_options.include_usage` (vLLM's chat and completions;
# the Responses API always reports usage in its last event).
USAGE_OPTION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy owns: the client's API key is
# for the proxy and never reaches vLLM; host and length are set here.
_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"authorization",
        b"x-request-id",
        b"expect",
    }
)


class _Fields(msgspec.Struct):
    """The top-level fields the proxy reads, each kept as its raw JSON (any type)."""

    model: msgspec.Raw = msgspec.Raw()
    stream: msgspec.Raw = msgspec.Raw()
    max_tokens: msgspec.Raw = msgspec.Raw()
    max_completion_tokens: msgspec.Raw = msgspec.Raw()
    max_output_tokens: msgspec.Raw = msgspec.Raw()
    stream_options: msgspec.Raw = msgspec.Raw()
    n: msgspec.Raw = msgspec.Raw()


_FIELDS = msgspec.json.Decoder(_Fields)
_ANY = msgspec.json.Decoder(msgspec.Raw)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the proxy needs from a request body; wrong types count as absent (vLLM
    answers those requests with its own 400)."""

    model: str | None = None
    stream: bool = False
    max_tokens: int | None = None
    stream_options: dict[str, Any] | None = None
    choices: int = 1  # `n`

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage") is True)


def parse_facts(body: bytes | bytearray, content_type: bytes | None) -> Facts:
    """Every vLLM route but the multipart audio uploads takes JSON (whatever Content-Type
    a `curl -d` claims), so a body that is not JSON is a 400 here, before vLLM is asked."""
    if not body or (content_type or b"").lower().startswith(b"multipart/"):
        return Facts()
    try:
        fields = _FIELDS.decode(body)
    except msgspec.ValidationError:
        # Valid so far but not an object (an array, a string, ...): vLLM answers it; only
        # check the rest is JSON.
        _check_json(body)
        return Facts()
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(f"The request body is not valid JSON ({_reason(exc)}).") from None
    model = _value(fields.model)
    options = _value(fields.stream_options)
    max_tokens = None
    for raw in (fields.max_tokens, fields.max_completion_tokens, fields.max_output_tokens):
        value = _value(raw)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            max_tokens = value
            break
    n = _value(fields.n)
    return Facts(
        model=model if isinstance(model, str) else None,
        stream=_value(fields.stream) is True,
        max_tokens=max_tokens,
        stream_options=options if isinstance(options, dict) else None,
        choices=n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1,
    )


def _value(raw: msgspec.Raw) -> Any:
    if not len(raw):
        return None
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None  # e.g. invalid UTF-8 inside: vLLM will say what is wrong


def _check_json(body: bytes | bytearray) -> None:
    try:
        _ANY.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(f"The request body is not valid JSON ({_reason(exc)}).") from None


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, msgspec.DecodeError) else "nested too deep"


def needs_usage_injection(path: str, facts: Facts) -> bool:
    """A stream whose usage the proxy must ask vLLM for (and hide from the client). Not
    with several choices (`n`): giving the client vLLM's bytes would mean holding back
    every choice that finishes early (usage.InjectedUsageFilter); such a stream is charged
    an estimate instead."""
    return (
        facts.stream
        and facts.choices == 1
        and path in USAGE_OPTION_ROUTES
        and not facts.wants_usage
    )


def with_usage_requested(body: bytes | bytearray, facts: Facts) -> bytes:
    """The body with `stream_options.include_usage` on (the client's other stream options
    kept; per-chunk usage off, so that every other chunk is what the client would get).
    Appended as the object's last member: JSON parsers keep the last of repeated keys."""
    options: dict[str, Any] = {**(facts.stream_options or {}), "include_usage": True}
    if options.get("continuous_usage_stats"):
        options["continuous_usage_stats"] = False
    end = body.rindex(b"}")
    member = b',"stream_options":' + json.dumps(options, separators=(",", ":")).encode()
    return bytes(body[:end]) + member + bytes(body[end:])


class LargeBodies:
    """Slots for bodies above `threshold` bytes; none free means 429 at once."""

    def __init__(self, threshold: int, slots: int) -> None:
        self.threshold = threshold
        self.slots = slots
        self.active = 0

    def acquire(self) -> None:
        if self.active >= self.slots:
            raise TooManyLargeBodies(
                f"{self.slots} requests with bodies above {self.threshold} bytes are being "
                "read already (PROXY_MAX_LARGE_BODIES); retry after the Retry-After delay."
            )
        self.active += 1

    def release(self) -> None:
        self.active -= 1


async def read_body(
    receive: Receive,
    *,
    max_bytes: int,
    seconds: float,
    large: LargeBodies,
    announced: int | None,
) -> tuple[bytes | bytearray, bool]:
    """The whole request body and whether it holds a large-body slot (the caller releases
    it). 413 as soon as it passes `max_bytes`, 408 when it has not all arrived within
    `seconds`, 429 when it is large and no slot is free, ClientGone on a disconnect."""
    holds_slot = False
    if announced is not None and announced > large.threshold:
        large.acquire()
        holds_slot = True
    try:
        async with asyncio.timeout(seconds):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            first: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                _check_size(len(first), max_bytes)
                return first, holds_slot
            body = bytearray(first)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                body += message.get("body", b"")
                _check_size(len(body), max_bytes)
                if not holds_slot and len(body) > large.threshold:
                    large.acquire()
                    holds_slot = True
                if not message.get("more_body", False):
                    return body, holds_slot
    except TimeoutError:
        if holds_slot:
            large.release()
        raise RequestTimeout(
            f"The request body did not arrive within {seconds:.0f} s; send it faster."
        ) from None
    except BaseException:
        if holds_slot:
            large.release()
        raise


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"Request body passed {max_bytes} bytes (PROXY_MAX_BODY_BYTES); send less."
        )


def upstream_target(path: str, query_string: bytes) -> bytes:
    """The request target sent to vLLM: the path (percent-encoded again) and the query."""
    target = quote(path, safe="/:@!$&'()*+,;=-._~").encode()
    return target + b"?" + query_string if query_string else target


def request_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: str
) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in headers if k not in _REQUEST_DROP]
    if not any(k == b"accept-encoding" for k, _ in out):
        # The client did not ask for compression: say so, whatever vLLM's defaults are.
        out.append((b"accept-encoding", b"identity"))
    out.append((b"x-request-id", request_id.encode()))
    return out
