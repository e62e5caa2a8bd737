"""Prometheus metrics, in a registry owned by one app instance (tests run several)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "proxy_requests",
            "Requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=r,
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
        # Labelled children, looked up once: labels() costs more than the increment.
        self._counts: dict[tuple[str, int], Any] = {}
        self._durations: dict[str, Any] = {}

    def count(self, route: str, status: int) -> None:
        child = self._counts.get((route, status))
        if child is None:
            child = self._counts[(route, status)] = self.requests.labels(route, str(status))
        child.inc()

    def duration_of(self, route: str) -> Any:
        child = self._durations.get(route)
        if child is None:
            child = self._durations[route] = self.duration.labels(route)
        return child
