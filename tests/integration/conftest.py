"""Session fixtures: one real vLLM per model for the whole test session, the proxy in front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vllm_stack import ProxiedVllm, local_stack, start_proxied_vllm


@pytest.fixture(scope="session")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedVllm]:
    """SmolLM2-135M-Instruct on real vLLM, the proxy in front with API_KEY."""
    yield from start_proxied_vllm(
        tmp_path_factory.mktemp("vllm-chat"), local_stack.CHAT_MODEL_NAME, pooling=False
    )


@pytest.fixture(scope="session")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedVllm]:
    """all-MiniLM-L6-v2 on a second vLLM (`--runner pooling`), the proxy in front."""
    yield from start_proxied_vllm(
        tmp_path_factory.mktemp("vllm-embeddings"),
        local_stack.EMBEDDING_MODEL_NAME,
        pooling=True,
    )
