"""Named API keys over TCP against the fake vLLM, with the official openai client: per-key
limits (429 + Retry-After + x-ratelimit-*) while other keys are served, model allow-lists,
token accounting from vLLM's usage (also for streams whose usage the proxy asked for and
removed), the access log, and reloading the key set without a restart."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.proxy_server import ProxyProcess, ThreadedProxy, access_lines

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
ALICE, BOB, CAROL, DAVE = "sk-alice-0001", "sk-bob-0002", "sk-carol-0003", "sk-dave-0004"
# The fake's usage: 5 prompt tokens, max_tokens completion tokens.
PROMPT_TOKENS = 5


def key_set(*entries: dict[str, object]) -> str:
    return json.dumps({"keys": list(entries)})


def write_atomically(path: Path, text: str) -> None:
    """As an atomic writer does: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)


def oa(proxy: ThreadedProxy | ProxyProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
def keyed(fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]) -> ThreadedProxy:
    keys = key_set(
        {"name": "alice", "key": ALICE, "requests_per_minute": 2},
        {"name": "bob", "key": BOB},
        {"name": "carol", "key": CAROL, "models": ["someone-else/Other-1B"]},
        {"name": "dave", "key": DAVE, "max_concurrency": 1, "models": [MODEL]},
    )
    return start_proxy(fake.url, api_keys=keys)


def test_requests_per_minute_429_with_headers_while_another_key_is_served(
    keyed: ThreadedProxy,
) -> None:
    with oa(keyed, ALICE) as alice, oa(keyed, BOB) as bob:
        for remaining in ["1", "0"]:
            raw = alice.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=MESSAGES,
                max_tokens=2,  # type: ignore[arg-type]
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "2"
            assert raw.headers["x-ratelimit-remaining-requests"] == remaining
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as refused:
            alice.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        error = refused.value
        assert error.code == "rate_limit_exceeded" and error.type == "requests"
        assert "2 requests per minute" in error.message
        assert int(error.response.headers["retry-after"]) >= 1
        assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
        served = bob.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=2,  # type: ignore[arg-type]
        )
        assert served.http_response.status_code == 200
        assert "x-ratelimit-limit-requests" not in served.headers  # bob has no limits
    assert keyed.metric("proxy_key_requests_total", key="alice", status="429") == 1
    assert keyed.metric("proxy_key_requests_total", key="alice", status="200") == 2
    assert keyed.metric("proxy_key_requests_total", key="bob", status="200") == 1


def test_concurrency_limit_of_one_key_leaves_others_unaffected(
    keyed: ThreadedProxy, fake: FakeVLLM
) -> None:
    held = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "fake": {"ttft": 2.0}}
    results: list[int] = []

    def slow() -> None:
        with keyed.client(DAVE) as client:
            results.append(client.post(CHAT, json=held).status_code)

    thread = threading.Thread(target=slow)
    thread.start()
    assert fake.wait_for(lambda: len(fake.records) == 1)
    with keyed.client(DAVE) as dave, keyed.client(BOB) as bob:
        refused = dave.post(CHAT, json={"model": MODEL, "messages": MESSAGES})
        assert bob.post(CHAT, json={"model": MODEL, "messages": MESSAGES}).status_code == 200
    assert fake.records[0].finished_at is None  # dave's first request was still running
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "max_concurrency" in refused.json()["error"]["message"]
    thread.join()
    assert results == [200]


def test_tokens_per_minute_is_charged_from_usage(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]
) -> None:
    proxy = start_proxy(
        fake.url, api_keys=key_set({"name": "erin", "key": ALICE, "tokens_per_minute": 30})
    )
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}  # 5 + 16 = 21 tokens
    with proxy.client(ALICE) as client:
        first = client.post(CHAT, json=body)
        assert first.headers["x-ratelimit-limit-tokens"] == "30"
        assert first.headers["x-ratelimit-remaining-tokens"] == "30"  # charged at the end
        second = client.post(CHAT, json=body)  # 9 left: admitted, then 12 in debt
        assert (
            second.status_code == 200 and int(second.headers["x-ratelimit-remaining-tokens"]) <= 9
        )
        third = client.post(CHAT, json=body)
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "tokens"
    assert "30 tokens per minute" in third.json()["error"]["message"]
    assert int(third.headers["retry-after"]) >= 1  # 12 tokens of debt at 0.5 token/s: ~24 s


def test_model_allow_list_filters_models_and_refuses_others_as_openai_does(
    keyed: ThreadedProxy, fake: FakeVLLM
) -> None:
    with oa(keyed, CAROL) as carol, oa(keyed, DAVE) as dave, oa(keyed, BOB) as bob:
        assert [m.id for m in carol.models.list().data] == []
        assert [m.id for m in dave.models.list().data] == [MODEL]
        assert [m.id for m in bob.models.list().data] == [MODEL]
        with pytest.raises(openai.NotFoundError) as refused:
            carol.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        assert refused.value.code == "model_not_found"
        assert dave.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=1,  # type: ignore[arg-type]
        ).choices
    with keyed.client(DAVE) as client:  # a restricted key must name its model
        missing = client.post("/tokenize", json={"prompt": "hi"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert [r.path for r in fake.records].count(CHAT) == 1  # carol's never reached vLLM


def test_token_counters_equal_the_usage_and_the_stream_is_the_one_asked_for(
    keyed: ThreadedProxy, fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    plain = {"model": MODEL, "messages": MESSAGES, "max_tokens": 3}
    streamed = {**plain, "max_tokens": 4, "stream": True}
    with_usage = {
        **plain,
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    same_id = {"x-request-id": "same-stream"}
    with keyed.client(BOB) as client:
        assert client.post(CHAT, json=plain).json()["usage"]["completion_tokens"] == 3
        via_proxy = client.post(CHAT, json=streamed, headers=same_id).content
        asked = client.post(CHAT, json=with_usage).content
    # The proxy asked vLLM for the stream's usage and removed it: the client got exactly
    # the bytes vLLM sends for the request as the client made it.
    assert fake.find("same-stream").json["stream_options"] == {"include_usage": True}  # type: ignore[union-attr]
    direct = httpx.post(fake.url + CHAT, json=streamed, headers=same_id).content
    assert via_proxy == direct and b'"usage"' not in via_proxy
    assert asked.count(b'"usage"') == 1  # asked for: relayed
    assert keyed.metric("proxy_key_tokens_total", key="bob", kind="prompt") == 3 * PROMPT_TOKENS
    assert keyed.metric("proxy_key_tokens_total", key="bob", kind="completion") == 3 + 4 + 6
    lines = [line for line in access_lines(caplog, 3) if line["route"] == CHAT]
    assert [(line["key"], line["prompt_tokens"], line["completion_tokens"]) for line in lines] == [
        ("bob", PROMPT_TOKENS, 3),
        ("bob", PROMPT_TOKENS, 4),
        ("bob", PROMPT_TOKENS, 6),
    ]
    for line in lines:
        assert BOB not in json.dumps(line)


def test_streams_with_several_choices_are_left_as_the_client_sent_them(
    keyed: ThreadedProxy, fake: FakeVLLM
) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "stream": True, "n": 2}
    with keyed.client(BOB) as client:
        client.post(CHAT, json=body, headers={"x-request-id": "two-choices"})
    assert "stream_options" not in fake.find("two-choices").json  # type: ignore[union-attr]


def test_openai_client_stream_without_usage_sees_no_usage_chunk(keyed: ThreadedProxy) -> None:
    with oa(keyed, BOB) as bob:
        chunks = list(
            bob.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                max_tokens=3,
                stream=True,  # type: ignore[arg-type]
            )
        )
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "t0 t1 t2 "
    assert keyed.metric("proxy_key_tokens_total", key="bob", kind="completion") == 3


def test_last_request_time_moves_on_api_requests_only(keyed: ThreadedProxy) -> None:
    assert keyed.metric("proxy_last_request_timestamp_seconds") == 0
    with keyed.client(None) as anonymous:
        for path in ["/health", "/ready", "/metrics"]:
            assert anonymous.get(path).status_code == 200
        assert anonymous.get("/v1/models").status_code == 401  # no key: not an API request
    assert keyed.metric("proxy_last_request_timestamp_seconds") == 0
    before = time.time()
    with keyed.client(BOB) as client:
        assert client.get("/v1/models").status_code == 200
    stamp = keyed.metric("proxy_last_request_timestamp_seconds")
    assert before - 1 <= stamp <= time.time() + 1


def test_changed_key_file_is_reloaded_and_in_flight_streams_finish(
    fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy], tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(key_set({"name": "alice", "key": ALICE}))
    proxy = start_proxy(fake.url, api_keys="", api_keys_file=str(path), keys_reload_seconds=0.1)
    with (
        proxy.client(ALICE) as client,
        client.stream(
            "POST",
            CHAT,
            json={
                "model": MODEL,
                "messages": MESSAGES,
                "max_tokens": 20,
                "stream": True,
                "fake": {"tps": 20},
            },
        ) as stream,
    ):
        # Rotate while alice's stream runs: her key goes, bob's comes.
        write_atomically(path, key_set({"name": "bob", "key": BOB}))
        assert wait_for(lambda: proxy.metric("proxy_api_key_reloads_total", result="ok") == 1)
        body = b"".join(stream.iter_raw())
    assert body.count(b'"content":"t') == 20 and body.endswith(b"data: [DONE]\n\n")
    with proxy.client(ALICE) as alice, proxy.client(BOB) as bob:
        assert alice.get("/v1/models").status_code == 401
        assert bob.get("/v1/models").status_code == 200
    # A broken file leaves the set in force.
    write_atomically(path, '{"keys": [{"name": "bob"}]}')
    assert wait_for(lambda: proxy.metric("proxy_api_key_reloads_total", result="error") == 1)
    with proxy.client(BOB) as bob:
        assert bob.get("/v1/models").status_code == 200
    # A file with no key left: every request refused, never an open endpoint.
    write_atomically(path, '{"keys": []}')
    assert wait_for(lambda: proxy.metric("proxy_api_keys") == 0)
    with proxy.client(BOB) as bob, proxy.client(None) as anonymous:
        assert bob.get("/v1/models").status_code == 401
        assert anonymous.get("/v1/models").status_code == 401


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_sighup_reloads_under_load_with_no_failed_stream(fake: FakeVLLM, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(key_set({"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB}))
    proxy = ProxyProcess(
        {
            "PROXY_UPSTREAM_URL": fake.url,
            "PROXY_API_KEYS": "",
            "PROXY_API_KEYS_FILE": str(path),
            "PROXY_KEYS_RELOAD_SECONDS": "3600",  # only SIGHUP reloads in this test
        }
    )
    try:
        proxy.wait_ready()
        bodies: list[bytes] = []
        errors: list[str] = []

        def stream(index: int) -> None:
            request = {
                "model": MODEL,
                "messages": MESSAGES,
                "max_tokens": 30,
                "stream": True,
                "fake": {"tps": 20},
            }
            try:
                with httpx.Client(base_url=proxy.url, timeout=20) as client:
                    response = client.post(
                        CHAT,
                        json=request,
                        headers={"authorization": f"Bearer {ALICE if index % 2 else BOB}"},
                    )
                    response.raise_for_status()
                    bodies.append(response.content)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        assert fake.wait_for(lambda: sum(r.tokens_sent > 0 for r in fake.records) == 16)
        write_atomically(
            path, key_set({"name": "bob", "key": BOB}, {"name": "carol", "key": CAROL})
        )
        proxy.signal(signal.SIGHUP)
        assert wait_for(lambda: proxy.metric("proxy_api_key_reloads_total", result="ok") == 1)
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            for key, status in [(ALICE, 401), (BOB, 200), (CAROL, 200)]:
                got = client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
                assert got.status_code == status, key
        for thread in threads:
            thread.join(20)
        assert errors == []
        assert len(bodies) == 16
        assert all(b.count(b'"content":"t') == 30 and b.endswith(b"[DONE]\n\n") for b in bodies)
    finally:
        code, stderr = proxy.finish()
    assert code in {0, -15}
    assert "key set reloaded (SIGHUP): 2 key(s)" in stderr
    for secret in [ALICE, BOB, CAROL]:
        assert secret not in stderr
