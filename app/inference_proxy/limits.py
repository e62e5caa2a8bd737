"""Per-key limits: requests in flight, requests per minute and tokens per minute, with
OpenAI's `x-ratelimit-*` headers. One `KeyLimiter` per key name lives as long as the name
does, across reloads of the key set, so a reload neither resets a key's minute nor loses
count of its requests in flight.

The minute limits are token buckets holding up to one minute's allowance and refilling
continuously (`limit / 60` per second): a key may spend its whole minute at once, then
gets its allowance back at the steady rate.

Tokens are charged after the fact, when the response ends, from vLLM's `usage` (or an
estimate when a response ended without one). A request is admitted while the key's
token bucket is above zero, and its tokens may take the bucket below zero: the debt is
paid back by the refill before the next request is admitted. So a key can overshoot its
tokens-per-minute by what its requests in flight use at the moment the bucket runs dry
(at most max_concurrency requests' worth), and over any longer window it gets its rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .errors import RateLimited
from .keys import ApiKey, Limits

Clock = Callable[[], float]
Headers = list[tuple[bytes, bytes]]


class Bucket:
    __slots__ = ("capacity", "level", "limit_value", "rate", "stamp")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.limit_value = b"%d" % per_minute
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def resize(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.limit_value = b"%d" % per_minute
        self.level = min(self.level, self.capacity)

    def seconds_until(self, level: float) -> float:
        return max(0.0, (level - self.level) / self.rate)


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


class KeyLimiter:
    """The runtime state of one key name's limits."""

    def __init__(self, limits: Limits, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.in_flight = 0
        self.limits = Limits()
        self.requests: Bucket | None = None
        self.tokens: Bucket | None = None
        self.update(limits)

    def update(self, limits: Limits) -> None:
        now = self.clock()
        self.limits = limits
        self.requests = _bucket(self.requests, limits.requests_per_minute, now)
        self.tokens = _bucket(self.tokens, limits.tokens_per_minute, now)

    def admit(self, name: str) -> Headers:
        """Count one request in, or raise RateLimited naming the limit it is over. Returns
        the rate-limit headers for the response."""
        now = self.clock()
        requests, tokens, limits = self.requests, self.tokens, self.limits
        if limits.max_concurrency is not None and self.in_flight >= limits.max_concurrency:
            raise RateLimited(
                f"Key {name!r} already has {self.in_flight} requests in flight, its limit "
                "(max_concurrency); retry when one has finished.",
                kind="requests",
                retry_after=1,
                headers=self.headers(),
            )
        if requests is not None:
            requests.refill(now)
            if requests.level < 1:
                wait = requests.seconds_until(1)
                raise RateLimited(
                    f"Key {name!r} reached its limit of {limits.requests_per_minute} requests "
                    f"per minute; retry in {duration(wait)}.",
                    kind="requests",
                    retry_after=math.ceil(wait),
                    headers=self.headers(),
                )
        if tokens is not None:
            tokens.refill(now)
            if tokens.level <= 0:
                wait = max(tokens.seconds_until(0), 0.001)
                raise RateLimited(
                    f"Key {name!r} reached its limit of {limits.tokens_per_minute} tokens "
                    f"per minute; retry in {duration(wait)}.",
                    kind="tokens",
                    retry_after=math.ceil(wait),
                    headers=self.headers(),
                )
        if requests is not None:
            requests.level -= 1
        self.in_flight += 1
        return self.headers()

    def release(self, tokens_used: int) -> None:
        self.in_flight -= 1
        if self.tokens is not None and tokens_used:
            self.tokens.refill(self.clock())
            self.tokens.level -= tokens_used

    def headers(self) -> Headers:
        out: Headers = []
        if self.requests is not None:
            out += _trio(b"requests", self.requests)
        if self.tokens is not None:
            out += _trio(b"tokens", self.tokens)
        return out


_NAMES = {
    kind: (
        b"x-ratelimit-limit-" + kind,
        b"x-ratelimit-remaining-" + kind,
        b"x-ratelimit-reset-" + kind,
    )
    for kind in (b"requests", b"tokens")
}


def _trio(kind: bytes, bucket: Bucket) -> Headers:
    limit, remaining, reset = _NAMES[kind]
    return [
        (limit, bucket.limit_value),
        (remaining, b"%d" % max(0, math.floor(bucket.level))),
        (reset, duration(bucket.seconds_until(bucket.capacity)).encode()),
    ]


def _bucket(current: Bucket | None, per_minute: int | None, now: float) -> Bucket | None:
    if per_minute is None:
        return None
    if current is None:
        return Bucket(per_minute, now)
    current.refill(now)
    current.resize(per_minute)
    return current


class Limiters:
    """KeyLimiter by key name, kept across reloads for names that stay."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._by_name: dict[str, KeyLimiter] = {}

    def get(self, name: str) -> KeyLimiter | None:
        return self._by_name.get(name)

    def sync(self, keys: list[ApiKey]) -> None:
        """Limiters for exactly the keys that have limits (in-flight requests of a key
        whose limits were removed release into the limiter they hold)."""
        fresh: dict[str, KeyLimiter] = {}
        for key in keys:
            if not key.limits:
                continue
            limiter = self._by_name.get(key.name)
            if limiter is None:
                limiter = KeyLimiter(key.limits, self.clock)
            else:
                limiter.update(key.limits)
            fresh[key.name] = limiter
        self._by_name = fresh
