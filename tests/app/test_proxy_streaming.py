"""Streaming, disconnects, timeouts and upstream failures, over TCP against the fake vLLM
(which records when its client goes away and can die or drop connections on cue)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.ports import free_port
from testkit.proxy_server import API_KEY, ThreadedProxy, access_lines

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


def stream_body(tokens: int, **fake: object) -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": tokens,
        "stream": True,
        "fake": fake,
    }


def events_of(data: bytes) -> list[bytes]:
    return [e for e in data.split(b"\n\n") if e.strip()]


def raw_request(port: int, body: dict[str, object]) -> socket.socket:
    """Send a request on a plain socket (so the test can hang up at any moment)."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    return sock


def test_stream_is_relayed_chunk_for_chunk_as_it_arrives(proxy: ThreadedProxy) -> None:
    tokens, tps = 8, 20.0
    arrivals: list[tuple[float, bytes]] = []
    with (
        proxy.client() as client,
        client.stream("POST", CHAT, json=stream_body(tokens, tps=tps)) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        for data in r.iter_raw():
            arrivals.append((time.monotonic(), data))
    token_reads = [(t, d) for t, d in arrivals if b'"content":"t' in d]
    # One read per token event: nothing merged, nothing split.
    assert [len(events_of(d)) for _, d in token_reads] == [1] * tokens
    assert [json.loads(d[6:])["choices"][0]["delta"]["content"] for _, d in token_reads] == [
        f"t{i} " for i in range(tokens)
    ]
    # They arrive paced like the upstream wrote them, not all at the end.
    spread = token_reads[-1][0] - token_reads[0][0]
    assert spread >= 0.7 * (tokens - 1) / tps


def test_usage_chunk_and_done_are_preserved(proxy: ThreadedProxy) -> None:
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=5,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "t0 t1 t2 t3 t4 "
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    with proxy.client() as client:
        body = stream_body(3)
        body["stream_options"] = {"include_usage": True}
        raw = client.post(CHAT, json=body).content
    events = events_of(raw)
    assert events[-1] == b"data: [DONE]" and b'"usage"' in events[-2]


def test_client_disconnect_mid_stream_closes_the_upstream_connection(
    proxy: ThreadedProxy, fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    sock = raw_request(proxy.port, stream_body(100, tps=20))
    received = b""
    while received.count(b"data: ") < 2:
        received += sock.recv(65536)
    gone_at = time.monotonic()
    sock.close()
    assert fake.wait_for(lambda: fake.records[0].client_gone, timeout=2)
    record = fake.records[0]
    # "At once": well before the 5 s the stream had left (generous for a loaded machine).
    assert record.client_gone_at is not None and record.client_gone_at - gone_at < 2.0
    assert record.tokens_sent < 60
    line = access_lines(caplog, 1)[0]
    assert line["outcome"] == "client_gone" and line["stream"] is True
    assert proxy.metric("proxy_client_disconnects_total", route=CHAT) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_while_waiting_for_the_first_token_closes_upstream(
    proxy: ThreadedProxy, fake: FakeVLLM, stream: bool
) -> None:
    body = stream_body(4, ttft=5.0)
    body["stream"] = stream
    sock = raw_request(proxy.port, body)
    assert fake.wait_for(lambda: len(fake.records) == 1)
    time.sleep(0.2)
    gone_at = time.monotonic()
    sock.close()
    assert fake.wait_for(lambda: fake.records[0].client_gone, timeout=2)
    assert fake.records[0].client_gone_at - gone_at < 2.0  # type: ignore[operator]  # ttft 5 s
    assert fake.records[0].tokens_sent == 0


def test_upstream_dying_mid_stream_ends_the_stream_with_an_error_event(
    proxy: ThreadedProxy, fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    with proxy.client() as client:
        response = client.post(CHAT, json=stream_body(10, die_after=3))
    events = events_of(response.content)
    assert [b'"content":"t%d ' % i in e for i, e in enumerate(events[:3])] == [True] * 3
    error = json.loads(events[3].removeprefix(b"data: "))["error"]
    assert error["type"] == "upstream_error" and events[4] == b"data: [DONE]"
    assert len(fake.records) == 1  # bytes had gone out: never retried
    assert access_lines(caplog, 1)[0]["outcome"] == "upstream_error"
    with (
        openai.OpenAI(base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0) as oc,
        pytest.raises(openai.APIError, match="broke off"),
    ):
        for _ in oc.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=10,
            stream=True,  # type: ignore[arg-type]
            extra_body={"fake": {"die_after": 2}},
        ):
            pass


@pytest.mark.parametrize("mode", ["close_after_response", "drop_reused_connections"])
def test_upstream_closing_keep_alive_after_each_response_is_survived(
    start_proxy: Callable[..., ThreadedProxy], mode: str
) -> None:
    with FakeVLLM(**{mode: True}) as fake:  # type: ignore[arg-type]
        proxy = start_proxy(fake.url)
        with proxy.client() as client:
            for i in range(12):
                body = stream_body(3)
                body["stream"] = i % 2 == 0
                response = client.post(CHAT, json=body)
                assert response.status_code == 200, response.text
                assert b"t2 " in response.content
        assert len(fake.records) == 12
        if mode == "drop_reused_connections":
            assert fake.dropped > 0
            assert proxy.metric("proxy_upstream_retries_total") == fake.dropped


def test_no_first_token_within_budget_is_504_and_upstream_is_closed(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    proxy = start_proxy(fake.url, default_timeout=0.5, max_timeout=1.0)
    started = time.monotonic()
    with proxy.client() as client:
        response = client.post(CHAT, json=stream_body(3, ttft=5.0))
    # The 0.5 s budget, not the 5 s the fake would take (generous for a loaded machine).
    assert response.status_code == 504 and time.monotonic() - started < 4.0
    assert response.json()["error"]["type"] == "timeout"
    assert fake.wait_for(lambda: fake.records[0].client_gone, timeout=1)
    assert access_lines(caplog, 1)[0]["outcome"] == "timeout"
    assert proxy.metric("proxy_timeouts_total", route=CHAT, phase="first_byte") == 1
    with (
        openai.OpenAI(base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0) as oc,
        pytest.raises(openai.InternalServerError, match="504"),
    ):
        oc.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=3,  # type: ignore[arg-type]
            extra_body={"fake": {"ttft": 5.0}},
        )


def test_idle_stream_ends_with_an_error_event_and_a_clean_end(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(fake.url, default_timeout=0.4, max_timeout=1.0)
    with proxy.client() as client:
        # one token at once, the next after 2 s: the 0.4 s idle budget runs out between.
        response = client.post(CHAT, json=stream_body(3, tps=0.5))
    assert response.status_code == 200  # the stream had started; httpx read it to a clean end
    events = events_of(response.content)
    assert b'"content":"t0 ' in events[0]
    assert json.loads(events[1].removeprefix(b"data: "))["error"]["code"] == "upstream_timeout"
    assert events[2:] == [b"data: [DONE]"]
    assert fake.wait_for(lambda: fake.records[0].client_gone, timeout=1)
    assert proxy.metric("proxy_timeouts_total", route=CHAT, phase="idle") == 1


def test_non_streaming_total_budget_answers_504(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(fake.url, default_timeout=0.4, max_timeout=5.0)
    with proxy.client() as client:
        # The same 1 s answer: 2 tokens buy 0.4 + 0.1 s (504), 40 tokens 0.4 + 2.0 s.
        slow = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "fake": {"ttft": 1.0}}
        assert client.post(CHAT, json=slow).status_code == 504
        fits = {"model": MODEL, "messages": MESSAGES, "max_tokens": 40, "fake": {"ttft": 1.0}}
        assert client.post(CHAT, json=fits).status_code == 200


def test_unreachable_vllm_is_503_with_retry_after_after_retrying(
    start_proxy: Callable[..., ThreadedProxy], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    proxy = start_proxy(f"http://127.0.0.1:{free_port()}", retry_window=0.5)
    started = time.monotonic()
    with proxy.client() as client:
        response = client.post(CHAT, json={"model": MODEL, "messages": MESSAGES})
    elapsed = time.monotonic() - started
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert 0.3 < elapsed < 5  # retried for the 0.5 s window, then answered
    assert proxy.metric("proxy_upstream_retries_total") >= 3
    assert access_lines(caplog, 1)[0]["outcome"] == "upstream_error"


def test_vllm_coming_back_during_the_retry_window_serves_the_request(
    start_proxy: Callable[..., ThreadedProxy],
) -> None:
    port = free_port()
    proxy = start_proxy(f"http://127.0.0.1:{port}", retry_window=5.0)
    late = FakeVLLM(port=port)
    timer = threading.Timer(0.6, late.start)
    timer.start()
    try:
        with proxy.client() as client:
            response = client.post(CHAT, json=stream_body(3))
        assert response.status_code == 200 and b"data: [DONE]" in response.content
        assert len(late.records) == 1
    finally:
        timer.join()
        late.stop()


def test_many_concurrent_streams_are_never_merged_nor_mixed_up(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    """24 streams at once over the pooled upstream connections: each reads its own
    tokens, one event per read, and every event is the answer to its own request."""

    def one(index: int, results: list[bool]) -> None:
        rid = f"stream-{index}"
        with (
            proxy.client() as client,
            client.stream(
                "POST", CHAT, json=stream_body(6, tps=30), headers={"x-request-id": rid}
            ) as r,
        ):
            reads = [d for d in r.iter_raw() if b'"content":"t' in d]
        ids = {json.loads(e.removeprefix(b"data: "))["id"] for d in reads for e in events_of(d)}
        results.append([len(events_of(d)) for d in reads] == [1] * 6 and ids == {f"cmpl-{rid}"})

    results: list[bool] = []
    threads = [threading.Thread(target=one, args=(i, results)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 24


def test_concurrent_clients_each_get_the_answer_to_their_own_request(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    """Streams and plain answers interleaved over reused upstream connections (different
    lengths, so they end at different times): a pool that handed a connection back too
    early, or a response to the wrong waiter, shows as a foreign id."""
    mismatches: list[str] = []

    def one(index: int) -> None:
        with proxy.client() as client:
            for turn in range(4):
                rid = f"client-{index}-{turn}"
                body = stream_body(2 + (index + turn) % 5, tps=200)
                body["stream"] = (index + turn) % 2 == 0
                response = client.post(CHAT, json=body, headers={"x-request-id": rid})
                if body["stream"]:
                    got = {
                        json.loads(e.removeprefix(b"data: "))["id"]
                        for e in events_of(response.content)
                        if e.startswith(b"data: {")
                    }
                else:
                    got = {response.json()["id"]}
                if got != {f"cmpl-{rid}"} or response.headers["x-request-id"] != rid:
                    mismatches.append(f"{rid}: {got}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches == []
    assert len(fake.records) == 64
    assert len({r.connection for r in fake.records}) < 64  # connections were reused


def test_plain_httpx_stream_reads_the_same_bytes_as_direct(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    body = stream_body(5)
    body["stream_options"] = {"include_usage": True}
    same_id = {"x-request-id": "same-request"}
    with proxy.client() as client:
        via_proxy = client.post(CHAT, json=body, headers=same_id).content
    direct = httpx.post(fake.url + CHAT, json=body, headers=same_id).content
    assert via_proxy == direct and b'"id":"cmpl-same-request"' in direct


def test_finished_responses_reuse_one_upstream_connection(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    with proxy.client() as client:
        for i in range(6):
            body = stream_body(2)
            body["stream"] = i % 2 == 0
            assert client.post(CHAT, json=body).status_code == 200
    assert {r.connection for r in fake.records} == {fake.records[0].connection}


def test_a_connection_cut_by_a_disconnect_is_never_reused(
    proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    with proxy.client() as client:
        assert client.post(CHAT, json=stream_body(2)).status_code == 200
    sock = raw_request(proxy.port, stream_body(100, tps=20))
    received = b""
    while b"data: " not in received:
        received += sock.recv(65536)
    sock.close()
    assert fake.wait_for(lambda: fake.records[1].client_gone, timeout=2)
    with proxy.client() as client:
        assert client.post(CHAT, json=stream_body(2)).status_code == 200
    first, cut, after = (r.connection for r in fake.records)
    assert cut == first  # the pooled keep-alive connection carried the stream...
    assert after != cut  # ...and was closed with it, not handed to the next request
