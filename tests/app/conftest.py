"""Fixtures for the proxy tests: a fake vLLM (testkit/fake_vllm.py) and the real proxy
served by uvicorn on a loopback TCP port (testkit/proxy_server.py), from a thread or as a
`python -m inference_proxy` subprocess."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from inference_proxy.config import Settings

from testkit.fake_vllm import FakeVLLM
from testkit.proxy_server import API_KEY, SECOND_KEY, ProxyProcess, ThreadedProxy


@pytest.fixture(autouse=True)
def no_exception_escapes_the_app(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every proxy test also proves that no exception reached uvicorn."""
    yield
    crashes = [
        r.getMessage()
        for r in caplog.get_records("call")
        if r.name.startswith("uvicorn") and (r.exc_info or "Exception in ASGI" in r.getMessage())
    ]
    assert crashes == []


@pytest.fixture
def fake() -> Iterator[FakeVLLM]:
    with FakeVLLM() as server:
        yield server


@pytest.fixture
def start_proxy() -> Iterator[Callable[..., ThreadedProxy]]:
    started: list[ThreadedProxy] = []

    def start(upstream: str, **overrides: Any) -> ThreadedProxy:
        overrides = {"api_keys": f"{API_KEY},{SECOND_KEY}", **overrides}
        settings = dataclasses.replace(Settings(), upstream_url=upstream, **overrides)
        proxy = ThreadedProxy(settings).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(fake: FakeVLLM, start_proxy: Callable[..., ThreadedProxy]) -> ThreadedProxy:
    return start_proxy(fake.url, default_timeout=5.0, max_timeout=10.0)


@pytest.fixture
def run_proxy_process() -> Iterator[Callable[[dict[str, str]], ProxyProcess]]:
    started: list[ProxyProcess] = []

    def run(env: dict[str, str]) -> ProxyProcess:
        process = ProxyProcess(env)
        started.append(process)
        return process

    yield run
    for process in started:
        process.finish()
