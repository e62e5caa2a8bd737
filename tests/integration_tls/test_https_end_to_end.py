"""HTTPS end to end on loopback with real parts: pebble (ACME) + pebble-challtestsrv (DNS),
certbot HTTP-01, NGINX running the site Terraform renders, the proxy, a fake vLLM, and
clients (httpx, the official openai client) that trust only pebble's root."""

from __future__ import annotations

import itertools
import json
import ssl
import statistics
import threading
import time

import openai
import pytest

from testkit import tls_stack
from testkit.fake_vllm import MODEL
from testkit.tls_stack import API_KEY, HttpsStack

pytestmark = [pytest.mark.services, pytest.mark.slow]

HSTS = "Strict-Transport-Security"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say something."}]}


def test_http_redirects_to_https_with_a_301(https_stack: HttpsStack) -> None:
    with https_stack.client() as client:
        response = client.get(f"http://{https_stack.domain}/health?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{https_stack.domain}/health?x=1"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/tokenize"])
def test_http_refuses_api_routes_with_a_json_403_not_a_redirect(
        https_stack: HttpsStack, path: str) -> None:
    # A 301 would make clients that follow redirects send their key in clear first; the
    # key already sent is what the message warns about.
    with https_stack.client() as client:
        response = client.post(f"http://{https_stack.domain}{path}", json=CHAT,
                               headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 403
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "https_required" and error["type"] == "invalid_request_error"
    assert f"https://{https_stack.domain}" in error["message"]


def test_certificate_chains_to_pebbles_root_and_nothing_else(https_stack: HttpsStack) -> None:
    der = tls_stack.served_certificate(
        https_stack.ports.https, https_stack.domain, https_stack.trust
    )
    assert der
    # The machine's trust store does not know pebble's root: verification is real.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_stack.served_certificate(
            https_stack.ports.https, https_stack.domain, ssl.create_default_context()
        )


def test_proxy_answers_401_without_a_key_with_hsts(https_stack: HttpsStack) -> None:
    with https_stack.client() as client:
        response = client.post(f"https://{https_stack.domain}/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert response.json()["error"]["type"]
    assert response.headers[HSTS].startswith("max-age=")


def test_health_over_https_carries_hsts(https_stack: HttpsStack) -> None:
    with https_stack.client() as client:
        response = client.get(f"https://{https_stack.domain}/health")
    assert response.status_code == 200
    assert "max-age=63072000" in response.headers[HSTS]


def test_streamed_chat_completion_arrives_chunk_by_chunk(https_stack: HttpsStack) -> None:
    tokens, tokens_per_second = 12, 8.0
    with https_stack.client() as http_client:
        client = openai.OpenAI(
            base_url=f"https://{https_stack.domain}/v1", api_key=API_KEY, http_client=http_client
        )
        started = time.monotonic()
        stream = client.chat.completions.create(
            model=MODEL,
            messages=CHAT["messages"],
            max_tokens=tokens,
            stream=True,
            extra_body={"fake": {"tps": tokens_per_second}},
        )
        arrivals = [
            time.monotonic() - started
            for chunk in stream
            if chunk.choices and chunk.choices[0].delta.content
        ]
    assert len(arrivals) == tokens
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # One token every 125 ms upstream: buffered anywhere, they would land in one burst.
    # Both checks are ratios of the upstream's pace: a loaded machine only spreads the
    # chunks further, and a late reader that takes two chunks at once moves no median.
    assert arrivals[-1] - arrivals[0] >= 0.6 * (tokens - 1) / tokens_per_second, arrivals
    assert statistics.median(gaps) >= 0.3 / tokens_per_second, gaps


def test_renewal_is_picked_up_by_nginx_without_dropping_an_open_stream(
    https_stack: HttpsStack,
) -> None:
    old = tls_stack.served_certificate(
        https_stack.ports.https, https_stack.domain, https_stack.trust
    )
    tokens, tokens_per_second = 60, 5.0  # a 12 s stream, longer than a renewal
    lines: list[tuple[float, str]] = []
    stream_error: list[BaseException] = []
    first_token = threading.Event()

    def consume() -> None:
        try:
            with (
                https_stack.client() as client,
                client.stream(
                    "POST",
                    f"https://{https_stack.domain}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    json={
                        **CHAT,
                        "max_tokens": tokens,
                        "stream": True,
                        "fake": {"tps": tokens_per_second},
                    },
                ) as response,
            ):
                assert response.status_code == 200
                assert response.headers[HSTS].startswith("max-age=")
                for line in response.iter_lines():
                    if line:
                        lines.append((time.monotonic(), line))
                        first_token.set()
        except BaseException as error:  # reported by the test thread
            stream_error.append(error)
            first_token.set()

    reader = threading.Thread(target=consume, name="open-stream")
    reader.start()
    try:
        assert first_token.wait(15), "the stream never started"
        challenges_before = https_stack.nginx.challenges_served()
        https_stack.certbot.renew(https_stack.renew_exec_start, https_stack.nginx.reload_command())
        renewed_at = time.monotonic()
        new = tls_stack.wait_for_certificate_change(
            https_stack.ports.https, https_stack.domain, https_stack.trust, old
        )
    finally:
        reader.join(60)
    assert not stream_error, stream_error
    assert new != old
    # pebble reuses no authorization: the renewal's HTTP-01 went through the full site.
    assert https_stack.nginx.challenges_served() > challenges_before
    assert lines, "no data on the stream"
    # The reload happened while the stream was open, and the stream still ended properly.
    assert lines[-1][0] > renewed_at, "the stream ended before the renewal; make it longer"
    assert lines[-1][1] == "data: [DONE]"
    content = [
        json.loads(line[len("data: ") :])["choices"][0]["delta"].get("content")
        for _, line in lines
        if line.startswith("data: {") and json.loads(line[len("data: ") :])["choices"]
    ]
    assert sum(1 for piece in content if piece) == tokens
    # A new connection now validates the renewed certificate with pebble's root.
    with https_stack.client() as client:
        assert client.get(f"https://{https_stack.domain}/health").status_code == 200
