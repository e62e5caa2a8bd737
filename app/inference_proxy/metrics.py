"""Prometheus metrics, in a registry owned by one app instance (tests run several), and
`record`, the one place a finished request is counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .context import RequestContext


class Tally(Collector):
    """A labelled counter kept as plain numbers and rendered at scrape time: the per-request
    counts cost a dict update instead of a lock and a child lookup each (the proxy runs in
    one thread; /metrics reads them from the same event loop)."""

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        yield family

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Tally(
            "proxy_requests",
            "Requests answered, by route and HTTP status.",
            ("route", "status"),
            r,
        )
        self.duration = Histogram(
            "proxy_request_duration_seconds",
            "Time from request arrival to the end of the response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "proxy_time_to_first_token_seconds",
            "Streams: time from request arrival to the first body byte sent to the client.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "proxy_in_flight_requests", "Requests being handled now.", registry=r
        )
        self.last_request = Gauge(
            "proxy_last_request_timestamp_seconds",
            "Unix time at which the last API request (one that passed the key check) arrived "
            "or ended; /health, /ready and /metrics do not move it. 0 until the first.",
            registry=r,
        )
        self.disconnects = Counter(
            "proxy_client_disconnects",
            "Clients that went away before their response ended.",
            ["route"],
            registry=r,
        )
        self.timeouts = Counter(
            "proxy_timeouts",
            "Requests cut by a timeout budget, by phase (first_byte, idle, total, request_body).",
            ["route", "phase"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "proxy_upstream_errors",
            "vLLM failures, by kind (unreachable, broken).",
            ["route", "kind"],
            registry=r,
        )
        self.upstream_retries = Counter(
            "proxy_upstream_retries",
            "Connection attempts to vLLM repeated after a failure.",
            registry=r,
        )
        self.key_requests = Tally(
            "proxy_key_requests",
            "Requests per API key name (never the key) and HTTP status.",
            ("key", "status"),
            r,
        )
        self.key_tokens = Tally(
            "proxy_key_tokens",
            "Tokens per API key name, by kind (prompt, completion), from vLLM's usage.",
            ("key", "kind"),
            r,
        )
        self.api_keys = Gauge("proxy_api_keys", "API keys in the key set in force.", registry=r)
        self.key_reloads = Counter(
            "proxy_api_key_reloads",
            "Reloads of the key set (SIGHUP or a changed file), by result (ok, error).",
            ["result"],
            registry=r,
        )
        # Labelled children, looked up once: labels() costs more than the increment.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        found = self._children.get((id(metric), *labels))
        if found is None:
            found = self._children[(id(metric), *labels)] = metric.labels(*labels)
        return found

    def touch(self) -> None:
        self.last_request.set(time.time())

    def record(self, ctx: RequestContext) -> None:
        """Everything a finished request counts for."""
        route = ctx.route
        status = str(ctx.status or (499 if ctx.outcome == "client_gone" else 0))
        self.requests.add((route, status))
        self._child(self.duration, route).observe(ctx.duration)
        if ctx.stream and ctx.ttft is not None:
            self._child(self.ttft, route).observe(ctx.ttft)
        if ctx.outcome == "client_gone":
            self._child(self.disconnects, route).inc()
        if ctx.timeout_phase is not None:
            self._child(self.timeouts, route, ctx.timeout_phase).inc()
        if ctx.upstream_error is not None:
            self._child(self.upstream_errors, route, ctx.upstream_error).inc()
        if ctx.retries:
            self.upstream_retries.inc(ctx.retries)
        if ctx.api:
            self.touch()
        name = ctx.key_name
        if name is not None:
            self.key_requests.add((name, status))
            if ctx.prompt_tokens:
                self.key_tokens.add((name, "prompt"), ctx.prompt_tokens)
            if ctx.completion_tokens:
                self.key_tokens.add((name, "completion"), ctx.completion_tokens)
