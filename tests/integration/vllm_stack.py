"""Real vLLM (CPU) with the proxy in front, for the session fixtures in conftest.py: started
on free loopback ports and stopped by PID (testkit/local_stack.py does both)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from testkit import local_stack
from testkit.ports import free_port
from testkit.processes import Service, Stack, StackError, wait_until

ROOT = Path(__file__).resolve().parents[2]


API_KEY = "sk-integration-" + "0" * 16
# vLLM on two shared cores: loading the model takes ~30 s; leave room for a busy machine.
START_TIMEOUT = 420.0


@dataclass
class ReadyObservation:
    """One poll during start-up: what the proxy's /ready said, then whether vLLM served."""

    proxy_status: int | None
    vllm_serving: bool


@dataclass
class ProxiedVllm:
    vllm: Service
    proxy: Service
    model: str
    api_key: str
    ready_observations: list[ReadyObservation] = field(default_factory=list)


def _proxy_ready_status(proxy_url: str) -> int | None:
    try:
        return httpx.get(f"{proxy_url}/ready", timeout=5.0).status_code
    except httpx.HTTPError:
        return None


def start_proxied_vllm(logs: Path, model_name: str, *, pooling: bool) -> Iterator[ProxiedVllm]:
    try:
        local_stack.check_prepared()
    except StackError as error:
        pytest.skip(str(error))
    stack = Stack()
    try:
        vllm = stack.add(
            local_stack.start_vllm(
                local_stack.model_dir(model_name),
                model_name,
                free_port(),
                logs / "vllm.log",
                pooling=pooling,
                max_model_len=None if pooling else local_stack.CHAT_MAX_MODEL_LEN,
            )
        )
        # The proxy starts while vLLM is still loading, as on the instance at boot.
        proxy = stack.add(
            local_stack.start_proxy(
                vllm.url, free_port(), logs / "proxy.log", api_keys=[API_KEY]
            )
        )
        result = ProxiedVllm(vllm, proxy, model_name, API_KEY)

        def both_ready() -> bool:
            if proxy.process.poll() is not None:
                raise StackError(
                    f"the proxy exited while vLLM was starting:\n{proxy.log_tail()}"
                )
            # Order matters: the proxy first, then vLLM. vLLM never stops serving once it
            # serves, so a 200 from the proxy must be followed by vLLM serving.
            status = _proxy_ready_status(proxy.url)
            serving = local_stack.vllm_serves(vllm.url, model_name)
            result.ready_observations.append(ReadyObservation(status, serving))
            return status == 200 and serving

        wait_until(vllm, both_ready, START_TIMEOUT, interval=1.0)
        yield result
    finally:
        stack.stop()
