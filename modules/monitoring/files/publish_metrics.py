#!/usr/bin/env python3
"""Publish the endpoint's health and the proxy's numbers to CloudWatch, once a minute
(inference-metrics.timer runs it; modules/monitoring uploads it as publish-metrics.py).

    python3 publish-metrics.py --namespace ec2-inference/llm-dev

Every run reads the proxy's Prometheus text on 127.0.0.1:$APP_PORT/metrics
(docs/API_REFERENCE.md names the metrics), compares it with the reading it kept from the
last run (/var/lib/inference/metrics-state.json) and publishes, without dimensions (one
endpoint per namespace):

    Requests, Errors4xx, Errors5xx    API requests answered since the last run (not /health,
                                      /ready, /metrics), and those with a 4xx or 5xx status
    PromptTokens, CompletionTokens    tokens of vLLM's usage since the last run
    RequestDuration, TimeToFirstToken the new observations of the proxy's histograms, as
                                      values and counts (bucket midpoints), so CloudWatch
                                      has percentiles at the buckets' resolution
    InFlightRequests                  requests in flight now (this scrape not counted)
    Healthy                           1 when /ready answers 200 through NGINX (as a client
                                      reaches it, TLS included), else 0; only once the
                                      endpoint has been ready since the instance was made,
                                      so a first boot downloading the model raises no alarm

In the autoscaling mode, inference-metrics.service also names the metric the Auto Scaling
group's target tracking policy averages (LOAD_METRIC_NAMESPACE, LOAD_METRIC_NAME and
LOAD_METRIC_DIMENSIONS as Name=Value,...; modules/monitoring's load_metric), and each run
publishes the requests in flight to it too, only while /ready answers 200: an instance still
loading its model publishes nothing there and so does not pull the group's average down.

A counter that went down means the proxy restarted: its new value is the delta. Settings
come from the environment (inference.env: APP_PORT, ENABLE_HTTPS, DOMAIN_NAME, AWS_REGION).
Standard library only, Python 3.10 and later: it runs on the instance's own python3, and
calls the AWS CLI (put-metric-data) with the instance role.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = Path("/var/lib/inference/metrics-state.json")
PUBLIC_ROUTES = frozenset({"/health", "/ready", "/metrics"})
Sample = tuple[dict[str, str], float]


class MetricsError(RuntimeError):
    """The proxy's metrics could not be read or parsed (the message says which line)."""


# --- reading the proxy's Prometheus text -----------------------------------------------------


def _labels(text: str, line: str) -> dict[str, str]:
    """{name: value} of a Prometheus label set without its braces (values are quoted, with
    \\\\, \\" and \\n escaped)."""
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        equals = text.index("=", position)
        name = text[position:equals].strip().lstrip(",").strip()
        if text[equals + 1] != '"':
            raise MetricsError(f"unquoted label value in {line!r}")
        value, position = [], equals + 2
        while text[position] != '"':
            if text[position] == "\\":
                position += 1
                value.append({"n": "\n"}.get(text[position], text[position]))
            else:
                value.append(text[position])
            position += 1
        labels[name] = "".join(value)
        position += 1
        while position < len(text) and text[position] in ", ":
            position += 1
    return labels


def parse(text: str) -> dict[str, list[Sample]]:
    """Samples of a Prometheus text exposition, by sample name (`x_total`, `x_bucket`, ...)."""
    samples: dict[str, list[Sample]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if "{" in line:
                name, rest = line.split("{", 1)
                label_text, value_text = rest.rsplit("}", 1)
                labels = _labels(label_text, line)
            else:
                name, value_text = line.split(None, 1)
                labels = {}
            value = float(value_text.split()[0])
        except (ValueError, IndexError) as error:
            raise MetricsError(f"cannot parse {line!r}: {error}") from error
        samples.setdefault(name.strip(), []).append((labels, value))
    return samples


@dataclass
class Reading:
    """What one run keeps of the proxy's counters: totals over the API routes."""

    requests: float = 0
    errors_4xx: float = 0
    errors_5xx: float = 0
    prompt_tokens: float = 0
    completion_tokens: float = 0
    # Histograms: cumulative bucket counts by upper bound ("+Inf" included).
    duration: dict[str, float] = field(default_factory=dict)
    ttft: dict[str, float] = field(default_factory=dict)
    in_flight: float = 0

    def counters(self) -> list[float]:
        return [self.requests, self.errors_4xx, self.errors_5xx, self.prompt_tokens,
                self.completion_tokens, *self.duration.values(), *self.ttft.values()]


def _buckets(samples: dict[str, list[Sample]], name: str) -> dict[str, float]:
    buckets: dict[str, float] = {}
    for labels, value in samples.get(f"{name}_bucket", []):
        if labels.get("route") not in PUBLIC_ROUTES:
            buckets[labels["le"]] = buckets.get(labels["le"], 0) + value
    return buckets


def reading(samples: dict[str, list[Sample]]) -> Reading:
    found = Reading()
    for labels, value in samples.get("proxy_requests_total", []):
        if labels.get("route") in PUBLIC_ROUTES:
            continue
        found.requests += value
        status = labels.get("status", "")
        if status.startswith("4"):
            found.errors_4xx += value
        elif status.startswith("5"):
            found.errors_5xx += value
    for labels, value in samples.get("proxy_key_tokens_total", []):
        if labels.get("kind") == "prompt":
            found.prompt_tokens += value
        elif labels.get("kind") == "completion":
            found.completion_tokens += value
    found.duration = _buckets(samples, "proxy_request_duration_seconds")
    found.ttft = _buckets(samples, "proxy_time_to_first_token_seconds")
    in_flight = samples.get("proxy_in_flight_requests", [])
    # The proxy counts every request it is handling, this scrape of /metrics included.
    found.in_flight = max(0.0, in_flight[0][1] - 1) if in_flight else 0
    return found


# --- what to publish ----------------------------------------------------------------------


def restarted(previous: Reading, current: Reading) -> bool:
    """A counter went down (or a histogram lost a bucket): the proxy started afresh."""
    if set(previous.duration) - set(current.duration) or set(previous.ttft) - set(current.ttft):
        return True
    pairs = zip(previous.counters(), current.counters(), strict=False)
    return any(now < before for before, now in pairs)


def _upper(bound: str) -> float:
    return math.inf if bound == "+Inf" else float(bound)


def distribution(previous: dict[str, float], current: dict[str, float]) -> tuple[
        list[float], list[float]]:
    """(values, counts) of the observations between two readings of a histogram: each
    bucket's new observations at its midpoint (the last finite bound for +Inf)."""
    bounds = sorted(current, key=_upper)
    values, counts = [], []
    lower, cumulative_before = 0.0, 0.0
    for bound in bounds:
        cumulative = current[bound] - previous.get(bound, 0)
        in_bucket = cumulative - cumulative_before
        upper = _upper(bound)
        if in_bucket > 0:
            values.append(lower if math.isinf(upper) else (lower + upper) / 2)
            counts.append(in_bucket)
        cumulative_before = cumulative
        if not math.isinf(upper):
            lower = upper
    return values, counts


def metric_data(previous: Reading | None, current: Reading | None,
                healthy: bool | None) -> list[dict[str, Any]]:
    """The MetricData of one run: counts since `previous` (none on the first run), the
    in-flight gauge, and Healthy (None: not published)."""
    data: list[dict[str, Any]] = []
    if healthy is not None:
        data.append({"MetricName": "Healthy", "Value": 1 if healthy else 0, "Unit": "None"})
    if current is None:
        return data
    data.append({"MetricName": "InFlightRequests", "Value": current.in_flight, "Unit": "Count"})
    if previous is None:
        return data
    base = Reading() if restarted(previous, current) else previous
    for name, before, now in (
        ("Requests", base.requests, current.requests),
        ("Errors4xx", base.errors_4xx, current.errors_4xx),
        ("Errors5xx", base.errors_5xx, current.errors_5xx),
        ("PromptTokens", base.prompt_tokens, current.prompt_tokens),
        ("CompletionTokens", base.completion_tokens, current.completion_tokens),
    ):
        data.append({"MetricName": name, "Value": now - before, "Unit": "Count"})
    for name, before_buckets, now_buckets in (
        ("RequestDuration", base.duration, current.duration),
        ("TimeToFirstToken", base.ttft, current.ttft),
    ):
        values, counts = distribution(before_buckets, now_buckets)
        if values:
            data.append({"MetricName": name, "Values": values, "Counts": counts,
                         "Unit": "Seconds"})
    return data


@dataclass(frozen=True)
class LoadMetric:
    """The metric the autoscaling mode's target tracking policy averages."""

    namespace: str
    name: str
    dimensions: dict[str, str]


def load_metric(environ: dict[str, str]) -> LoadMetric | None:
    """The scaling policy's metric from the unit's environment (None: the instance mode)."""
    names = ("LOAD_METRIC_NAMESPACE", "LOAD_METRIC_NAME", "LOAD_METRIC_DIMENSIONS")
    values = [environ.get(name, "") for name in names]
    if not any(values):
        return None
    if not all(values):
        raise ValueError(f"{', '.join(names)} come together; set: "
                         f"{', '.join(n for n, v in zip(names, values, strict=True) if v)}")
    pairs = [pair.split("=", 1) for pair in values[2].split(",")]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ValueError(f"LOAD_METRIC_DIMENSIONS must be Name=Value,...: {values[2]!r}")
    return LoadMetric(values[0], values[1], {name: value for name, value in pairs})


def load_data(metric: LoadMetric | None, current: Reading | None,
              ready: bool) -> list[dict[str, Any]]:
    """The scaling policy's datum: the requests in flight, only from a ready instance."""
    if metric is None or current is None or not ready:
        return []
    return [{"MetricName": metric.name, "Value": current.in_flight, "Unit": "Count",
             "Dimensions": [{"Name": name, "Value": value}
                            for name, value in metric.dimensions.items()]}]


# --- the instance ---------------------------------------------------------------------------


class _LocalTLS(http.client.HTTPSConnection):
    """HTTPS to NGINX on this machine, verified for the endpoint's domain (SNI and name)."""

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def endpoint_ready(https: bool, domain: str) -> bool:
    """/ready answers 200 through NGINX, as clients reach it."""
    connection: http.client.HTTPConnection
    if https:
        connection = _LocalTLS(domain, 443, timeout=10, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    try:
        connection.request("GET", "/ready")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def scrape(port: str) -> Reading | None:
    """The proxy's reading, or None when it does not answer (Healthy says so)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return reading(parse(text))


def load_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def put_metric_data(namespace: str, region: str, data: list[dict[str, Any]]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(data, file)
        file.flush()
        result = subprocess.run(
            ["aws", "cloudwatch", "put-metric-data", "--region", region, "--namespace",
             namespace, "--metric-data", f"file://{file.name}"],
            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"aws cloudwatch put-metric-data failed ({result.returncode}): "
                           f"{result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True, help="CloudWatch namespace")
    parser.add_argument("--state", type=Path, default=STATE_FILE)
    args = parser.parse_args(argv)
    try:
        port, region = os.environ["APP_PORT"], os.environ["AWS_REGION"]
    except KeyError as missing:
        print(f"{missing} is not set: run from inference-metrics.service, which reads "
              "/opt/inference/scripts/inference.env", file=sys.stderr)
        return 2
    try:
        scaling = load_metric(dict(os.environ))
    except ValueError as error:
        print(f"{error} (inference-metrics.service sets them)", file=sys.stderr)
        return 2
    https = os.environ.get("ENABLE_HTTPS") == "true"
    state = load_state(args.state)

    ready = endpoint_ready(https, os.environ.get("DOMAIN_NAME", ""))
    ready_once = bool(state.get("ready_once")) or ready
    current = scrape(port)
    previous = Reading(**state["reading"]) if state.get("reading") else None
    batches: dict[str, list[dict[str, Any]]] = {
        args.namespace: metric_data(previous, current, ready if ready_once else None)}
    if scaling is not None:
        batches.setdefault(scaling.namespace, []).extend(load_data(scaling, current, ready))
    data = [datum for batch in batches.values() for datum in batch]
    for namespace, batch in batches.items():
        if batch:
            put_metric_data(namespace, region, batch)
    args.state.parent.mkdir(parents=True, exist_ok=True)
    args.state.write_text(json.dumps({
        "ready_once": ready_once,
        # A proxy that does not answer keeps the last reading: deltas resume after it.
        "reading": asdict(current) if current else state.get("reading"),
    }))
    published = [d["MetricName"] + "".join(f" {x['Name']}={x['Value']}"
                                           for x in d.get("Dimensions", [])) for d in data]
    print(f"published {', '.join(published) or 'nothing'} to "
          f"{', '.join(batches)} (ready: {ready})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
