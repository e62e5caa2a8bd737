"""What the boot tests assert on a booted instance, shared by the test files."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest

from testkit.instance import harness

Boot = Callable[..., harness.Instance]


def openai_client(instance: harness.Instance, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{instance.endpoint}/v1", api_key=key,
                         http_client=instance.http_client(), max_retries=0)


def assert_refused(instance: harness.Instance, key: str) -> None:
    with openai_client(instance, key) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()


def assert_serves(instance: harness.Instance, key: str) -> None:
    """A chat completion and a stream through NGINX -> proxy -> vLLM with `key`."""
    model = instance.summary()["model"]
    with openai_client(instance, key) as client:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=5)
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=5,
            stream=True))
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text and chunks[-1].choices[0].finish_reason == "length"


def wait_until(what: str, check: object, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(2)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


def ready(instance: harness.Instance) -> bool:
    try:
        with instance.http_client(timeout=5) as client:
            return client.get(f"{instance.endpoint}/ready").status_code == 200
    except Exception:
        return False
