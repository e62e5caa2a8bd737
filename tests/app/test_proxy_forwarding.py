"""The proxy's contract over TCP, against the fake vLLM: routes, keys, errors, request
ids, limits, health, metrics. The official openai client drives the OpenAI routes."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable

import httpx
import openai
import pytest

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.proxy_server import API_KEY, ThreadedProxy, access_lines

MESSAGES = [{"role": "user", "content": "hi"}]


def oa(proxy: ThreadedProxy, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_openai_client_chat_completions_and_models(proxy: ThreadedProxy, fake: FakeVLLM) -> None:
    with oa(proxy) as client:
        models = client.models.list()
        assert [m.id for m in models.data] == [MODEL]
        chat = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)  # type: ignore[arg-type]
        assert chat.choices[0].message.content == "t0 t1 t2 t3 "
        assert chat.usage is not None and chat.usage.completion_tokens == 4
        completion = client.completions.create(model=MODEL, prompt="x", max_tokens=2)
        assert completion.choices[0].text == "t0 t1 "
        embedding = client.embeddings.create(model=MODEL, input="x")
        assert embedding.data[0].embedding == [0.25] * 8
    assert [r.path for r in fake.records] == [
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    ]


def test_non_v1_vllm_routes_are_forwarded(proxy: ThreadedProxy, fake: FakeVLLM) -> None:
    with proxy.client() as client:
        response = client.post("/tokenize", json={"model": MODEL, "prompt": "hello"})
    assert response.status_code == 200 and "tokens" in response.json()
    assert fake.records[-1].path == "/tokenize"


def test_unknown_and_dot_segment_routes_are_404_in_openai_shape(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    with proxy.client() as client:
        for path in ["/reset_prefix_cache", "/v1/../reset_prefix_cache", "/v1/%2e%2e/sleep", "/"]:
            response = client.post(path, content=b"{}")
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "unknown_route"
    assert fake.records == []


def test_missing_or_wrong_key_is_401_and_every_configured_key_works(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    for key in [None, "wrong", API_KEY + "x"]:
        with proxy.client(key) as client:
            response = client.post(
                "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES}
            )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError), oa(proxy, "nope") as client:
        client.models.list()
    assert fake.records == []
    for key in [API_KEY, "test-key-2"]:
        with proxy.client(key) as client:
            assert client.get("/v1/models").status_code == 200


def test_the_client_key_is_not_forwarded_to_vllm(proxy: ThreadedProxy, fake: FakeVLLM) -> None:
    with proxy.client() as client:
        client.get("/v1/models")
    assert "authorization" not in fake.records[-1].headers


def test_auth_off_only_when_explicitly_disabled(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(fake.url, api_keys="", auth_disabled=True)
    with proxy.client(None) as client:
        assert client.get("/v1/models").status_code == 200


def test_health_ready_and_metrics_need_no_key(proxy: ThreadedProxy) -> None:
    with proxy.client(None) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["upstream"] == "ok"
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["models"] == [MODEL]
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "proxy_requests_total" in metrics.text


def test_health_and_ready_are_503_with_retry_after_when_vllm_is_down(
    start_proxy: Callable[..., ThreadedProxy],
) -> None:
    proxy = start_proxy(f"http://127.0.0.1:{_dead_port()}")
    with proxy.client(None) as client:
        for path in ["/health", "/ready"]:
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.headers["retry-after"] == "5"
            assert "unreachable" in response.json()["upstream"]


def test_request_id_is_kept_forwarded_returned_and_logged(
    proxy: ThreadedProxy, fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    with proxy.client() as client:
        kept = client.get("/v1/models", headers={"x-request-id": "client-id-42"})
        made = client.get("/v1/models")
        bad = client.get("/v1/models", headers={"x-request-id": "has spaces\tand tabs"})
    assert kept.headers["x-request-id"] == "client-id-42"
    assert fake.records[0].headers["x-request-id"] == "client-id-42"
    made_id = made.headers["x-request-id"]
    assert len(made_id) == 32 and fake.records[1].headers["x-request-id"] == made_id
    assert bad.headers["x-request-id"] != "has spaces\tand tabs"
    assert fake.records[2].headers["x-request-id"] == bad.headers["x-request-id"]
    logged = [line["request_id"] for line in access_lines(caplog, 3)]
    assert logged == ["client-id-42", made_id, bad.headers["x-request-id"]]


def test_access_log_line_has_every_field(
    proxy: ThreadedProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    with proxy.client() as client:
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 3, "stream": True}
        response = client.post("/v1/chat/completions", json=body)
    fields = access_lines(caplog, 1)[-1]
    assert fields["route"] == "/v1/chat/completions" and fields["model"] == MODEL
    assert fields["stream"] is True and fields["status"] == 200 and fields["outcome"] == "ok"
    assert fields["bytes"] == len(response.content)
    assert 0 < fields["ttft_ms"] <= fields["duration_ms"]
    assert fields["request_id"] == response.headers["x-request-id"]


def test_vllm_errors_pass_through_unchanged(proxy: ThreadedProxy, fake: FakeVLLM) -> None:
    cases = [
        ({"model": "other-model", "messages": MESSAGES}, 404),
        ({"model": MODEL, "messages": "not a list"}, 400),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": "many"}, 400),
        ({"model": MODEL, "messages": MESSAGES, "fake": {"status": 500}}, 500),
    ]
    with proxy.client() as client, httpx.Client(base_url=fake.url) as direct:
        for body, status in cases:
            via_proxy = client.post("/v1/chat/completions", json=body)
            straight = direct.post("/v1/chat/completions", json=body)
            assert via_proxy.status_code == straight.status_code == status
            assert via_proxy.content == straight.content
            assert via_proxy.headers["content-type"] == straight.headers["content-type"]
    with pytest.raises(openai.NotFoundError, match="does not exist"), oa(proxy) as oc:
        oc.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]


def test_bad_json_is_400_from_the_proxy_and_never_reaches_vllm(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    with proxy.client() as client:
        for raw in [b"{", b"not json", b'{"a": 1,}', b"\xff\xfe{}", b"[" * 100_000]:
            response = client.post(
                "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, raw[:20]
            assert response.json()["error"]["code"] == "invalid_json"
    assert fake.records == []


def test_body_over_the_limit_is_413_without_reading_it(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(fake.url, max_body_bytes=1000)
    # Content-Length announces 10 MB; the proxy answers before the body is sent at all.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"request_too_large" in answer
    # Without a length (chunked), the count stops it as soon as it passes the limit.
    with proxy.client() as client:
        chunks = iter([b'{"model": "' + b"x" * 800, b"y" * 800, b'"}'])
        response = client.post("/v1/chat/completions", content=chunks)
        assert response.status_code == 413
        ok = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
        assert ok.status_code == 200
    assert len(fake.records) == 1


def test_huge_headers_are_refused_with_4xx(proxy: ThreadedProxy, fake: FakeVLLM) -> None:
    with proxy.client() as client:
        response = client.get("/v1/models", headers={"x-big": "a" * 40_000})
    assert response.status_code in {400, 431}
    assert fake.records == []


def test_over_capacity_is_429_with_retry_after_at_once(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(fake.url, max_concurrency=2)
    held = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "fake": {"ttft": 3.0}}
    results: list[int] = []

    def slow() -> None:
        with proxy.client() as client:
            results.append(client.post("/v1/chat/completions", json=held).status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    assert fake.wait_for(lambda: len(fake.records) == 2)
    with proxy.client() as client:
        refused = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
        assert client.get("/health").status_code == 200  # never limited
    with pytest.raises(openai.RateLimitError), oa(proxy) as oc:
        oc.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    # Both refusals came while the two slots were still taken.
    assert all(r.finished_at is None for r in fake.records[:2])
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    for t in threads:
        t.join()
    assert results == [200, 200]
    assert [r.path for r in fake.records] == ["/v1/chat/completions"] * 2 + ["/health"]
    with proxy.client() as client:
        ok = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
        assert ok.status_code == 200


def test_metrics_count_requests_by_route_and_status(proxy: ThreadedProxy) -> None:
    with proxy.client() as client:
        for _ in range(3):
            client.post(
                "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, "max_tokens": 2}
            )
        client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "stream": True},
        )
        client.get("/v1/models/anything")
    with proxy.client(None) as client:
        client.get("/v1/models")
    assert proxy.metric("proxy_requests_total", route="/v1/chat/completions", status="200") == 4
    assert proxy.metric("proxy_requests_total", route="/v1/models", status="401") == 1
    assert proxy.metric("proxy_requests_total", route="other", status="404") == 1
    assert proxy.metric("proxy_request_duration_seconds_count", route="/v1/chat/completions") == 4
    assert (
        proxy.metric("proxy_time_to_first_token_seconds_count", route="/v1/chat/completions") == 1
    )
    assert proxy.metric("proxy_in_flight_requests") == 1  # the /metrics request itself


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_json_body_parsed_whatever_content_type_curl_claims(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 1}).encode()
    with proxy.client() as client:
        response = client.post(
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    assert fake.records[-1].body == body
