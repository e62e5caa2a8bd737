"""300+ malformed or hostile requests: bad JSON, wrong types, huge headers, invalid
UTF-8, protocol garbage, slow and stalled bodies. None may get a 5xx, none may raise
inside the app, and the proxy must still serve afterwards."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.proxy_server import API_KEY, ThreadedProxy

CHAT = "/v1/chat/completions"
AUTH = b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"


def body_cases() -> list[bytes]:
    """Request bodies for POST /v1/chat/completions."""
    good: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    junk_values: list[object] = [
        None,
        True,
        False,
        0,
        -1,
        1e308,
        -1e308,
        2**64,
        "",
        "x" * 10_000,
        [],
        {},
        [None],
        {"a": {"b": {"c": []}}},
        "\u0000",
        "\ud800",
        "\U0001f600",
        [1, "2", None],
        0.5,
    ]
    fields = [
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "temperature",
        "n",
        "tools",
        "response_format",
    ]
    cases: list[bytes] = []
    for field in fields:
        for value in junk_values:
            cases.append(json.dumps({**good, field: value}).encode())
    raw = [
        b"",
        b" ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"{}",
        b"[]",
        b"null",
        b"true",
        b"0",
        b'"str"',
        b"{'single': 'quotes'}",
        b'{"a":1,}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b"\xef\xbb\xbf{}",
        b"\xff\xfe\x00{",
        b'{"model":"\xc3\x28"}',
        b'{"model":"\xed\xa0\x80"}',
        b"\x00" * 100,
        b"[" * 50_000,
        b"{" * 50_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"model":"' + b"\\" * 1001 + b'"}',
        b'{"a":"\\u00"}',
        b'{"a":"\\ud800"}',
        b'{"model": 1, "model": 2}',
        b"\n\n\n",
        b"\r\n{}\r\n",
        b"--boundary\r\n",
        b"<xml/>",
        json.dumps([good] * 100).encode(),
        json.dumps({"messages": [{}] * 1000}).encode(),
        b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "\xff"}]}',
    ]
    cases.extend(raw)
    return cases


def raw_json_cases() -> list[tuple[str, bytes]]:
    """The malformed bodies again, on the other JSON routes."""
    malformed = body_cases()[-37:]
    return [(route, body) for route in ["/v1/completions", "/v1/embeddings"] for body in malformed]


def raw_cases() -> list[bytes]:
    """Whole requests, written to a socket as they are."""
    ok_body = json.dumps({"model": MODEL, "messages": []}).encode()
    length = b"Content-Length: %d\r\n" % len(ok_body)
    head = b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: t\r\n" + AUTH
    return [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/9.9\r\nHost: t\r\n\r\n",
        b"GET  /health  HTTP/1.1\r\nHost: t\r\n\r\n",
        b"G\x00T /health HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET /v1/%ff%fe%00 HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET /v1/models?%zz=%%% HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(3000))
        + b"\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nBad Header: v\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Inj: a\rb\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Utf: \xc3\x28\xff\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Request-ID: \xff\x00\x01\r\n" + AUTH + b"\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Request-ID: "
        + b"r" * 5000
        + b"\r\n"
        + AUTH
        + b"\r\n",
        head + b"Content-Length: -1\r\n\r\n" + ok_body,
        head + b"Content-Length: abc\r\n\r\n" + ok_body,
        head + b"Content-Length: 99999999999999999999999\r\n\r\n" + ok_body,
        head + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + ok_body,
        head + b"Transfer-Encoding: chunked\r\n" + length + b"\r\n" + ok_body,
        head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + ok_body + b"\r\n0\r\n\r\n",
        head + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nxx\r\n0\r\n\r\n",
        head + b"Transfer-Encoding: gzip\r\n\r\n" + ok_body,
        head + b"Content-Length: 1000\r\n\r\n" + ok_body,  # then EOF: a truncated body
        head + length + b"Content-Encoding: gzip\r\n\r\n" + ok_body,
        head + length + b"Expect: 100-continue\r\n\r\n" + ok_body,
        head + length + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" + ok_body,
        head + length + b"\r\n" + ok_body + b"GARBAGE AFTER\r\n\r\n",
        (head + length + b"\r\n" + ok_body) * 5,  # pipelined
        b"DELETE /v1/models HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"TRACE /v1/models HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET http://evil.example/v1/models HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET /v1/%2e%2e/%2e%2e/health HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"GET //v1//models HTTP/1.1\r\nHost: t\r\n" + AUTH + b"\r\n",
        b"\r\n\r\n\r\n",
        b"",
    ]


def path_cases() -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("GET", "/v1/models", {"authorization": "Bearer " + "k" * 10_000}),
        ("GET", "/v1/models", {"authorization": "Basic dGVzdDp0ZXN0"}),
        ("GET", "/v1/models", {"authorization": "Bearer"}),
        ("GET", "/v1/models", {"x-request-id": "../../etc/passwd"}),
        ("GET", "/v1/models", {"x-request-id": '{"json": 1}'}),
        ("POST", "/v1/models", {}),
        ("PUT", CHAT, {}),
        ("PATCH", CHAT, {}),
        ("DELETE", CHAT, {}),
        ("GET", CHAT, {}),
        ("HEAD", "/v1/models", {}),
        ("POST", "/health", {}),
        ("DELETE", "/metrics", {}),
        ("GET", "/v1/models/" + "x" * 5000, {}),
        ("GET", "/v1/models?" + "a=1&" * 2000, {}),
        ("GET", "/tokenize", {}),
        ("POST", "/v1/embeddings", {"content-type": "text/plain"}),
        ("POST", "/v1/audio/transcriptions", {"content-type": "multipart/form-data; boundary=x"}),
        ("POST", CHAT, {"content-type": "application/json; charset=latin-1"}),
        ("POST", CHAT, {"accept-encoding": "gzip, br, zstd"}),
        ("POST", CHAT, {"te": "trailers"}),
        ("POST", CHAT, {"host": "evil.example"}),
        ("POST", CHAT, {"x-forwarded-for": "1.2.3.4, <script>"}),
    ]


def send_raw(port: int, data: bytes) -> bytes:
    """Write `data`, then read until one whole response came or the server closed the
    connection. A server that says nothing for 10 s fails the test (socket timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if not data.strip():
                sock.shutdown(socket.SHUT_WR)  # nothing that could become a request
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed before the whole request was written (a
            # 200 kB header line): its answer, if the reset spared it, is read below.
            pass
        answer = b""
        while not _complete(answer):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # closed with unread request bytes: the kernel resets
            if not chunk:
                break  # closed
            answer += chunk
        return answer


def _complete(answer: bytes) -> bool:
    if answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        answer = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def statuses(answer: bytes) -> list[int]:
    return [
        int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")
    ]


@pytest.fixture
def fake() -> Iterator[FakeVLLM]:
    with FakeVLLM(tokens_per_second=10_000) as server:
        yield server


@pytest.fixture
def hostile_proxy(
    fake: FakeVLLM, start_proxy: object, caplog: pytest.LogCaptureFixture
) -> Iterator[ThreadedProxy]:
    caplog.set_level(logging.WARNING)
    proxy = start_proxy(fake.url, default_timeout=1.0, max_timeout=3.0, max_body_bytes=1_000_000)  # type: ignore[operator]
    yield proxy
    # No exception may escape the app. (uvicorn's one-line "returned without completing
    # response" is how it reports a response the proxy had to abandon: not a crash.)
    crashes = [
        r
        for r in caplog.get_records("call")
        if r.exc_info or "Exception in ASGI application" in r.getMessage()
    ]
    assert crashes == [], [r.getMessage() for r in crashes]


def test_three_hundred_hostile_inputs_get_no_5xx_and_no_crash(
    hostile_proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    proxy = hostile_proxy
    seen: list[tuple[str, int]] = []
    bodies, raws, paths = body_cases(), raw_cases(), path_cases()
    others = raw_json_cases()
    assert len(bodies) + len(others) + len(raws) + len(paths) >= 300
    with proxy.client() as client:
        json_type = {"content-type": "application/json"}
        for body in bodies:
            r = client.post(CHAT, content=body, headers=json_type)
            seen.append((repr(body[:40]), r.status_code))
        for route, body in others:
            r = client.post(route, content=body, headers=json_type)
            seen.append((route + repr(body[:40]), r.status_code))
        for method, path, headers in paths:
            r = client.request(
                method, path, headers=headers, content=b"{}" if method != "GET" else None
            )
            seen.append((f"{method} {path[:40]}", r.status_code))
    for data in raws:
        answer = send_raw(proxy.port, data)
        for status in statuses(answer):
            seen.append((repr(data[:40]), status))
    bad = [(what, status) for what, status in seen if status >= 500]
    assert bad == []
    assert {s for _, s in seen} >= {200, 400, 404}
    with proxy.client() as client:
        assert client.get("/health").status_code == 200
        ok = client.post(CHAT, json={"model": MODEL, "messages": [], "max_tokens": 2})
        assert ok.status_code == 200


def test_slow_but_steady_body_is_served(hostile_proxy: ThreadedProxy) -> None:
    payload = json.dumps({"model": MODEL, "messages": [], "max_tokens": 2}).encode()

    def trickle() -> Iterator[bytes]:
        for i in range(0, len(payload), 10):
            time.sleep(0.05)
            yield payload[i : i + 10]

    with hostile_proxy.client() as client:
        assert client.post(CHAT, content=trickle()).status_code == 200


def test_stalled_body_gets_408_and_frees_its_slot(
    hostile_proxy: ThreadedProxy, fake: FakeVLLM
) -> None:
    with socket.create_connection(("127.0.0.1", hostile_proxy.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
            + AUTH
            + b'Content-Length: 100\r\n\r\n{"model":'
        )
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_body_timeout" in answer
    assert fake.records == []
    assert hostile_proxy.metric("proxy_in_flight_requests") == 1  # only /metrics itself


def test_slowloris_headers_do_not_block_others(hostile_proxy: ThreadedProxy) -> None:
    socks = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", hostile_proxy.port), timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            socks.append(sock)
        r = httpx.get(hostile_proxy.url + "/health", timeout=5)
        assert r.status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_pipelined_requests_then_hang_up_are_no_app_error(
    hostile_proxy: ThreadedProxy, fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference_proxy.access")
    # Five pipelined requests, then the client half-closes: uvicorn drops the socket after
    # the first answer but still runs the next request, whose write then fails (uvloop
    # raises). The proxy must count that as "client gone", not as an app error.
    body = json.dumps({"model": MODEL, "messages": [], "max_tokens": 2}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
        + AUTH
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", hostile_proxy.port), timeout=5) as sock:
            sock.sendall(request * 5)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    assert fake.wait_for(lambda: all(r.finished_at for r in fake.records), timeout=5)
    # Stopping the server waits for every request task it started, so a failing write
    # (and any exception it raised) has happened before the check below.
    hostile_proxy.stop()
    assert [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()] == []
    outcomes = [r.fields["outcome"] for r in caplog.records if r.name == "inference_proxy.access"]  # type: ignore[attr-defined]
    assert outcomes and set(outcomes) <= {"ok", "client_gone"}
