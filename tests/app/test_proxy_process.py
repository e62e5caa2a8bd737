"""`python -m inference_proxy` as the container runs it: environment settings, log lines on
stderr, keys never logged, SIGTERM draining in-flight streams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.fake_vllm import MODEL, FakeVLLM
from testkit.proxy_server import ProxyProcess

KEY_IN_ENV = "env-secret-key-5f0c1e"
KEY_IN_FILE = "file-secret-key-9a7b3d"
# uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is "killed by
# SIGTERM" (systemd and docker count that as a clean stop); any other code is a failure.
CLEAN_EXIT = {0, -15}


def chat(tokens: int, stream: bool, tps: float) -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": [],
        "max_tokens": tokens,
        "stream": stream,
        "fake": {"tps": tps},
    }


def wait_until_refused(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.ConnectError:
            return True
        time.sleep(0.05)
    return False


def test_json_logs_keys_from_env_and_file_and_sigterm_drains_streams(
    fake: FakeVLLM, run_proxy_process: Callable[[dict[str, str]], ProxyProcess], tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# one per line\n{KEY_IN_FILE}\n")
    proxy = run_proxy_process(
        {
            "PROXY_UPSTREAM_URL": fake.url,
            "PROXY_API_KEYS": KEY_IN_ENV,
            "PROXY_API_KEYS_FILE": str(keys_file),
            "PROXY_SHUTDOWN_GRACE": "10",
        }
    ).wait_ready()
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for key in [KEY_IN_ENV, KEY_IN_FILE]:
            ok = client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        wrong = client.get("/v1/models", headers={"authorization": "Bearer wrong-key-0000"})
        assert wrong.status_code == 401

    # A 2 s stream is in flight when SIGTERM comes: it must finish whole.
    received: list[bytes] = []

    def stream() -> None:
        headers = {"authorization": f"Bearer {KEY_IN_ENV}", "x-request-id": "drain-me"}
        with (
            httpx.Client(base_url=proxy.url, timeout=10) as client,
            client.stream(
                "POST", "/v1/chat/completions", json=chat(20, True, 10), headers=headers
            ) as r,
        ):
            received.extend(r.iter_raw())

    reader = threading.Thread(target=stream)
    reader.start()
    assert fake.wait_for(lambda: any(r.tokens_sent >= 2 for r in fake.records), timeout=5)
    proxy.terminate()
    assert wait_until_refused(proxy.url + "/health", timeout=5)  # stopped accepting
    reader.join(10)
    code, stderr = proxy.finish()
    body = b"".join(received)
    assert body.count(b'"content":"t') == 20 and body.endswith(b"data: [DONE]\n\n")
    assert code in CLEAN_EXIT

    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    access = [
        line
        for line in lines
        if line["logger"] == "inference_proxy.access" and line["route"] != "/health"
    ]
    assert len(access) == 4
    drained = access[-1]
    assert drained["request_id"] == "drain-me" and drained["outcome"] == "ok"
    assert set(drained) >= {
        "ts",
        "request_id",
        "route",
        "model",
        "stream",
        "status",
        "duration_ms",
        "ttft_ms",
        "bytes",
        "outcome",
    }
    assert drained["model"] == MODEL and drained["stream"] is True and drained["status"] == 200
    assert [line["status"] for line in access[:3]] == [200, 200, 401]
    assert any("2 key(s)" in line.get("message", "") for line in lines)
    for secret in [KEY_IN_ENV, KEY_IN_FILE, "wrong-key-0000"]:
        assert secret not in stderr


def test_text_logs_loud_warning_with_auth_disabled_and_grace_period_ends_long_streams(
    fake: FakeVLLM, run_proxy_process: Callable[[dict[str, str]], ProxyProcess]
) -> None:
    proxy = run_proxy_process(
        {
            "PROXY_UPSTREAM_URL": fake.url,
            "PROXY_LOG_FORMAT": "text",
            "PROXY_SHUTDOWN_GRACE": "1",
            "PROXY_AUTH_DISABLED": "true",
        }
    ).wait_ready()

    def stream() -> None:
        try:
            with httpx.Client(base_url=proxy.url, timeout=20) as client:
                client.post("/v1/chat/completions", json=chat(100, True, 10))
        except httpx.HTTPError:
            pass  # cut when the grace period ends

    reader = threading.Thread(target=stream)
    reader.start()
    assert fake.wait_for(lambda: bool(fake.records) and fake.records[0].tokens_sent >= 1)
    started = time.monotonic()
    proxy.terminate()
    code, stderr = proxy.finish(timeout=10)
    reader.join(10)
    assert time.monotonic() - started < 8  # 1 s grace, not the 10 s stream
    assert fake.wait_for(lambda: fake.records[0].client_gone, timeout=2)  # vLLM told to stop
    assert code in CLEAN_EXIT
    assert "WARNING" in stderr and "API KEY AUTH IS OFF" in stderr
    assert not stderr.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROXY_MAX_CONCURRENCY": "lots"}, "PROXY_MAX_CONCURRENCY"),
        ({"PROXY_API_KEYS_FILE": "/nonexistent/keys"}, "PROXY_API_KEYS_FILE"),
        # Fail closed: no key (an empty or "," list) never means an open endpoint.
        ({}, "PROXY_AUTH_DISABLED"),
        ({"PROXY_API_KEYS": ","}, "PROXY_AUTH_DISABLED"),
        ({"PROXY_API_KEYS": " , ,"}, "PROXY_AUTH_DISABLED"),
        ({"PROXY_API_KEYS": "k", "PROXY_AUTH_DISABLED": "true"}, "PROXY_AUTH_DISABLED"),
        ({"PROXY_AUTH_DISABLED": "maybe"}, "PROXY_AUTH_DISABLED"),
        ({"PROXY_API_KEYS": '{"keys": [{"key": "k", "rpm": 5}]}'}, "keys[0]"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    run_proxy_process: Callable[[dict[str, str]], ProxyProcess], env: dict[str, str], named: str
) -> None:
    proxy = run_proxy_process({"PROXY_API_KEYS": "", "PROXY_API_KEYS_FILE": "", **env})
    proxy.process.wait(15)
    code, stderr = proxy.finish()
    assert code == 2 and named in stderr and "configuration error" in stderr
