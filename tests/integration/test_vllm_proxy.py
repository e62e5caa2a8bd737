"""The proxy in front of the real engine it fronts: vLLM (CPU) serving SmolLM2-135M-Instruct
and all-MiniLM-L6-v2, driven with the official openai client. Greedy decoding (temperature
0) makes vLLM's answers repeatable, so what comes through the proxy is compared with what
vLLM gives directly."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from inference_proxy.keys import key_id
from vllm_stack import ProxiedVllm, local_stack

from testkit.proxy_server import metric_sample

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MESSAGES: list[Any] = [{"role": "user", "content": "Name three colours of the rainbow."}]


def through_proxy(stack: ProxiedVllm) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.proxy.url}/v1", api_key=stack.api_key, max_retries=0)


def direct(stack: ProxiedVllm) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.vllm.url}/v1", api_key="unused", max_retries=0)


def test_chat_completion_through_the_proxy_is_vllms_answer(chat: ProxiedVllm) -> None:
    request: dict[str, Any] = {
        "model": chat.model,
        "messages": MESSAGES,
        "max_tokens": 16,
        "temperature": 0,
    }
    proxied = through_proxy(chat).chat.completions.create(**request)
    expected = direct(chat).chat.completions.create(**request)

    assert proxied.choices[0].message.content
    assert proxied.choices[0].message.content == expected.choices[0].message.content
    assert proxied.usage is not None and 0 < proxied.usage.completion_tokens <= 16
    assert proxied.model == chat.model


def test_completion_through_the_proxy_is_vllms_answer(chat: ProxiedVllm) -> None:
    request: dict[str, Any] = {
        "model": chat.model,
        "prompt": "The capital of France is",
        "max_tokens": 8,
        "temperature": 0,
    }
    proxied = through_proxy(chat).completions.create(**request)
    expected = direct(chat).completions.create(**request)

    assert proxied.choices[0].text
    assert proxied.choices[0].text == expected.choices[0].text


def test_embeddings_through_the_proxy_are_vllms_vectors(embeddings: ProxiedVllm) -> None:
    texts = ["The cat sat on the mat.", "A feline rested on the rug.", "Tax law is complex."]
    proxied = through_proxy(embeddings).embeddings.create(model=embeddings.model, input=texts)
    expected = direct(embeddings).embeddings.create(model=embeddings.model, input=texts)

    vectors = [item.embedding for item in proxied.data]
    assert [len(v) for v in vectors] == [384, 384, 384]  # all-MiniLM-L6-v2's dimension
    assert vectors == [item.embedding for item in expected.data]

    # The model behaves like itself: the paraphrase is nearer than the unrelated sentence.
    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


def _stream_chunks(client: openai.OpenAI, model: str) -> tuple[list[dict[str, Any]], list[float]]:
    """The chunks of a greedy chat stream, without the per-request id and timestamp, and the
    time each arrived."""
    chunks: list[dict[str, Any]] = []
    arrivals: list[float] = []
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=48,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        for chunk in stream:
            arrivals.append(time.monotonic())
            chunks.append(chunk.model_dump(exclude={"id", "created"}))
    return chunks, arrivals


def _chunk_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"])


def test_stream_is_relayed_chunk_for_chunk(chat: ProxiedVllm) -> None:
    """The same greedy stream through the proxy and straight from vLLM. How vLLM groups
    tokens into chunks depends on its own timing (under load it merges several into one
    delta), so this compares the text, the finish and the usage; the chunk-for-chunk
    framing itself is proven against the fake vLLM in tests/app."""
    proxied, arrivals = _stream_chunks(through_proxy(chat), chat.model)
    expected, direct_arrivals = _stream_chunks(direct(chat), chat.model)

    assert len(proxied) > 10
    assert _chunk_text(proxied) == _chunk_text(expected)
    finish = [c["choices"][0]["finish_reason"] for c in proxied if c["choices"]][-1]
    assert finish == [c["choices"][0]["finish_reason"] for c in expected if c["choices"]][-1]
    assert proxied[-1]["usage"] == expected[-1]["usage"]
    assert proxied[-1]["usage"]["completion_tokens"] == 48
    # Relayed as vLLM produced them, not gathered and sent at the end: the chunks arrive
    # spread over about the time vLLM takes to generate them.
    direct_spread = direct_arrivals[-2] - direct_arrivals[1]
    assert direct_spread > 0
    assert arrivals[-2] - arrivals[1] > 0.5 * direct_spread


def _post_both(stack: ProxiedVllm, path: str, body: dict[str, Any]) -> tuple[httpx.Response, ...]:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    proxied = httpx.post(f"{stack.proxy.url}{path}", json=body, headers=auth, timeout=60)
    expected = httpx.post(f"{stack.vllm.url}{path}", json=body, timeout=60)
    return proxied, expected


def _events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, without the per-request id and timestamp."""
    events = []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            data = json.loads(event.removeprefix(b"data: "))
            data.pop("id"), data.pop("created")
            events.append(data)
    return events


def test_stream_without_usage_is_vllms_own_and_its_tokens_are_counted(chat: ProxiedVllm) -> None:
    """The proxy asks vLLM for the usage of a stream whose client did not, counts it for
    the key, and removes that event: the client gets what vLLM sends for the request as
    the client made it, the finishing chunk with its system_fingerprint included. (How
    vLLM groups tokens into chunks varies with load, so this compares the events' fields
    and text; the byte-for-byte comparison is done against the fake, in tests/app.)"""
    request: dict[str, Any] = {
        "model": chat.model,
        "messages": MESSAGES,
        "max_tokens": 24,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    key = {"authorization": f"Bearer {chat.api_key}"}
    name = key_id(chat.api_key)
    metrics = f"{chat.proxy.url}/metrics"

    def completion_tokens() -> float:
        text = httpx.get(metrics).text
        return metric_sample(text, "proxy_key_tokens_total", key=name, kind="completion")

    before = completion_tokens()
    url = "/v1/chat/completions"
    proxied = httpx.post(chat.proxy.url + url, json=request, headers=key, timeout=120).content
    expected = httpx.post(chat.vllm.url + url, json=request, timeout=120).content
    assert b'"usage"' not in proxied and proxied.endswith(b"data: [DONE]\n\n")
    got, want = _events(proxied), _events(expected)
    assert {tuple(sorted(e)) for e in got} == {tuple(sorted(e)) for e in want}
    finishing = got[-1]  # the chunk with finish_reason, stamped as vLLM stamps it
    assert finishing["choices"][0]["finish_reason"] == want[-1]["choices"][0]["finish_reason"]
    assert finishing["system_fingerprint"] == want[-1]["system_fingerprint"]
    assert all("system_fingerprint" not in e for e in got[:-1])

    def text(events: list[dict[str, Any]]) -> str:
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in events)

    assert text(got) == text(want)
    assert completion_tokens() - before == 24


def test_vllm_400_passes_through_unchanged(chat: ProxiedVllm) -> None:
    # More tokens than the context window (--max-model-len 2048): vLLM's own validation.
    body = {"model": chat.model, "messages": MESSAGES, "max_tokens": 100_000}
    proxied, expected = _post_both(chat, "/v1/chat/completions", body)

    assert expected.status_code == 400
    assert proxied.status_code == 400
    assert proxied.json() == expected.json()
    assert "error" in proxied.json()


def test_vllm_404_passes_through_unchanged(chat: ProxiedVllm) -> None:
    body = {"model": "no-such-model", "messages": MESSAGES, "max_tokens": 4}
    proxied, expected = _post_both(chat, "/v1/chat/completions", body)

    assert expected.status_code == 404
    assert proxied.status_code == 404
    assert proxied.json() == expected.json()
    assert "no-such-model" in proxied.json()["error"]["message"]


GENERATED = "vllm:generation_tokens_total"
RUNNING = "vllm:num_requests_running"


def _vllm_metric(stack: ProxiedVllm, name: str) -> float:
    text = httpx.get(f"{stack.vllm.url}/metrics", timeout=10).text
    return local_stack.metric_value(text, name)


def test_client_disconnect_stops_vllms_generation(chat: ProxiedVllm) -> None:
    body = {
        "model": chat.model,
        "messages": MESSAGES,
        "max_tokens": 1500,
        "ignore_eos": True,  # vLLM option: generate all 1500 tokens unless aborted
        "temperature": 0,
        "stream": True,
    }
    auth = {"Authorization": f"Bearer {chat.api_key}"}
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{chat.proxy.url}/v1/chat/completions", json=body, headers=auth
        ) as response,
    ):
        assert response.status_code == 200
        # One iterator kept open: leaving a `for` loop over iter_lines() closes the response.
        lines = response.iter_lines()
        events = 0
        while events < 5:
            line = next(lines)
            if line.startswith("data: {"):
                json.loads(line.removeprefix("data: "))
                events += 1
        during = _vllm_metric(chat, GENERATED)
        time.sleep(1.0)
        assert _vllm_metric(chat, GENERATED) > during, "vLLM was generating while we read"
        assert _vllm_metric(chat, RUNNING) == 1
    # Leaving the `with` closed our connection mid-stream (~1490 tokens, ~50 s, to go).

    # vLLM notices the closed connection within a step or two; 30 s is generous for a
    # loaded 2-core machine and far below the ~50 s the generation still had to run.
    deadline = time.monotonic() + 30
    while _vllm_metric(chat, RUNNING) != 0:
        assert time.monotonic() < deadline, "vLLM still runs the request after the client left"
        time.sleep(0.2)
    stopped_at = _vllm_metric(chat, GENERATED)
    time.sleep(2.0)
    assert _vllm_metric(chat, GENERATED) == stopped_at


def test_ready_is_false_until_vllm_serves_the_model(chat: ProxiedVllm) -> None:
    observations = chat.ready_observations
    # While vLLM was loading the model, the proxy said "not ready" ...
    assert any(o.proxy_status == 503 and not o.vllm_serving for o in observations), observations
    # ... never "ready" before vLLM served it ...
    assert not any(o.proxy_status == 200 and not o.vllm_serving for o in observations)
    # ... and "ready" once it did.
    assert observations[-1].proxy_status == 200
    ready = httpx.get(f"{chat.proxy.url}/ready", timeout=10)
    assert ready.status_code == 200
