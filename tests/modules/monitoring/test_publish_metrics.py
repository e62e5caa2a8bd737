"""modules/monitoring/files/publish_metrics.py, the instance's metrics publisher, against the
real proxy (uvicorn over TCP, fake vLLM behind it): its Prometheus reader agrees with
prometheus_client's parser, one run's numbers are the traffic since the last (API routes
only, errors by status class, tokens from vLLM's usage, histogram observations), a proxy
restart is seen, and Healthy is held back until the endpoint was ready once. The AWS CLI
call itself runs in the boot tests (tests/instance), against moto."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from inference_proxy.config import Settings
from prometheus_client.parser import text_string_to_metric_families

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.proxy_server import API_KEY, ThreadedProxy

SOURCE = Path(__file__).resolve().parents[3] / "modules/monitoring/files/publish_metrics.py"


@pytest.fixture(scope="module")
def publisher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("publish_metrics", SOURCE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def proxy() -> Iterator[ThreadedProxy]:
    with FakeVLLM() as fake:
        settings = dataclasses.replace(Settings(), upstream_url=fake.url,
                                       api_keys=json.dumps({"keys": [
                                           {"name": "alice", "key": API_KEY}]}))
        running = ThreadedProxy(settings).start()
        yield running
        running.stop()


def traffic(proxy: ThreadedProxy) -> None:
    """3 completions (one stream), a refused key (401), a vLLM error (500), and probes."""
    with proxy.client() as client:
        for stream in (False, False, True):
            response = client.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4, "stream": stream,
                "stream_options": {"include_usage": True} if stream else None})
            assert response.status_code == 200
        assert client.post("/v1/completions", json={
            "model": MODEL, "prompt": "x", "fake": {"status": 500}}).status_code == 500
    assert httpx.post(f"{proxy.url}/v1/completions", json={},
                      headers={"authorization": "Bearer sk-wrong"}).status_code == 401
    for path in ("/health", "/ready", "/metrics"):
        httpx.get(proxy.url + path)


def metrics_text(proxy: ThreadedProxy) -> str:
    return httpx.get(f"{proxy.url}/metrics").text


def test_the_reader_agrees_with_prometheus_clients_parser(
        publisher: ModuleType, proxy: ThreadedProxy) -> None:
    traffic(proxy)
    text = metrics_text(proxy)
    ours = publisher.parse(text)
    theirs = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
              for family in text_string_to_metric_families(text) for sample in family.samples}
    flattened = {(name, tuple(sorted(labels.items()))): value
                 for name, samples in ours.items() for labels, value in samples}
    assert flattened == theirs
    # Label values with quotes, backslashes and newlines come back as they were.
    tricky = 'x_total{route="a\\"b\\\\c\\nd",status="200"} 3\n'
    assert publisher.parse(tricky) == {"x_total": [({"route": 'a"b\\c\nd', "status": "200"}, 3.0)]}


def test_one_run_publishes_the_traffic_since_the_last(
        publisher: ModuleType, proxy: ThreadedProxy) -> None:
    before = publisher.reading(publisher.parse(metrics_text(proxy)))
    traffic(proxy)
    after = publisher.reading(publisher.parse(metrics_text(proxy)))
    data = {d["MetricName"]: d for d in publisher.metric_data(before, after, True)}
    assert data["Healthy"]["Value"] == 1
    # 3 completions, the 500 and the 401; not /health, /ready, /metrics.
    assert data["Requests"]["Value"] == 5
    assert (data["Errors4xx"]["Value"], data["Errors5xx"]["Value"]) == (1, 1)
    # The fake answers max_tokens completion tokens; usage is per key name.
    assert data["CompletionTokens"]["Value"] == 12
    assert data["PromptTokens"]["Value"] > 0
    assert sum(data["RequestDuration"]["Counts"]) == 5
    assert sum(data["TimeToFirstToken"]["Counts"]) == 1
    assert data["TimeToFirstToken"]["Unit"] == "Seconds"
    assert data["InFlightRequests"]["Value"] == 0
    # Nothing new: zeros, and no empty distribution.
    again = {d["MetricName"]: d for d in publisher.metric_data(after, after, False)}
    assert again["Requests"]["Value"] == 0 and again["Healthy"]["Value"] == 0
    assert "RequestDuration" not in again


def test_a_restarted_proxy_counts_from_zero(publisher: ModuleType) -> None:
    before = publisher.Reading(requests=100, errors_5xx=7, duration={"0.5": 90, "+Inf": 100})
    after = publisher.Reading(requests=4, duration={"0.5": 4, "+Inf": 4})
    assert publisher.restarted(before, after)
    data = {d["MetricName"]: d for d in publisher.metric_data(before, after, None)}
    assert data["Requests"]["Value"] == 4 and data["Errors5xx"]["Value"] == 0
    assert "Healthy" not in data


def test_histogram_observations_become_values_at_bucket_midpoints(publisher: ModuleType) -> None:
    before = {"0.1": 1, "1": 1, "10": 1, "+Inf": 1}
    after = {"0.1": 3, "1": 4, "10": 4, "+Inf": 6}
    assert publisher.distribution(before, after) == ([0.05, 0.55, 10.0], [2, 1, 2])


def test_healthy_waits_for_the_first_ready_and_the_reading_survives_a_silent_proxy(
        publisher: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[list[dict[str, Any]]] = []
    monkeypatch.setattr(publisher, "put_metric_data",
                        lambda ns, region, data: published.append(data))
    monkeypatch.setenv("APP_PORT", "1")  # nothing listens: the proxy is down
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    state = tmp_path / "state.json"
    answers = iter([False, True, False])
    monkeypatch.setattr(publisher, "endpoint_ready", lambda https, domain: next(answers))
    argv = ["--namespace", "ec2-inference/llm-dev", "--state", str(state)]
    assert publisher.main(argv) == 0  # first boot, not ready yet: nothing at all
    assert published == []
    state.write_text(json.dumps({"reading": dataclasses.asdict(publisher.Reading(requests=9))}))
    assert publisher.main(argv) == 0  # ready: Healthy 1 from now on
    assert publisher.main(argv) == 0  # not ready any more: Healthy 0
    assert [[d["MetricName"], d["Value"]] for run in published for d in run] == [
        ["Healthy", 1], ["Healthy", 0]]
    saved = json.loads(state.read_text())
    assert saved["ready_once"] is True and saved["reading"]["requests"] == 9
