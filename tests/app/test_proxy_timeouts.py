"""The timeout budget function (docs/API_REFERENCE.md, timeouts): pure logic, no server."""

from __future__ import annotations

import json

import pytest
from inference_proxy.request import Facts, parse_facts
from inference_proxy.timeouts import (
    ASSUMED_MAX_TOKENS,
    compute_budget,
    model_size_b,
    size_factor,
)


def request_facts(body: object) -> Facts:
    return parse_facts(json.dumps(body).encode(), b"application/json")

CHAT = "/v1/chat/completions"


def budget(route: str = CHAT, **kw: object) -> object:
    args: dict[str, object] = {
        "stream": False,
        "max_tokens": 100,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "prompt_bytes": 400,
        "default_timeout": 90.0,
        "max_timeout": 600.0,
    }
    args.update(kw)
    return compute_budget(route, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 8),
        ("Qwen/Qwen2.5-32B-Instruct-AWQ", 32),
        ("meta-llama/Llama-3.3-70B-Instruct", 70),
        ("llama-2-7b-chat-hf", 7),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56),
        ("Qwen/Qwen3-30B-A3B", 30),
        ("Qwen/Qwen3-235B-A22B", 235),
        ("openai/gpt-oss-120b", 120),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.5),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 0.135),
        ("sentence-transformers/all-MiniLM-L6-v2", None),
        ("bert-base-uncased", None),
        ("", None),
    ],
)
def test_model_size_is_read_from_the_model_id(model: str, size: float | None) -> None:
    assert model_size_b(model) == size


def test_size_factor_grows_with_the_square_root_of_size_and_never_shrinks() -> None:
    assert size_factor("x-8B") == 1.0
    assert size_factor("x-0.5B") == 1.0
    assert size_factor(None) == 1.0
    assert size_factor("x-32B") == pytest.approx(2.0)
    assert size_factor("x-70B") == pytest.approx((70 / 8) ** 0.5)


def test_non_streaming_budget_grows_with_max_tokens() -> None:
    small = budget(max_tokens=100)
    large = budget(max_tokens=4000)
    assert small.total == small.first_byte and small.idle is None  # type: ignore[attr-defined]
    # 4000 tokens * 0.05 s at 8B = 200 s of decode on top of the default 90 s
    assert large.total == pytest.approx(90 + 200 + 400 / 4 / 2000, rel=1e-6)  # type: ignore[attr-defined]
    assert large.total > small.total  # type: ignore[attr-defined]


def test_non_streaming_budget_grows_with_model_size() -> None:
    b8 = budget(max_tokens=2000, model="Llama-3.1-8B")
    b32 = budget(max_tokens=2000, model="Qwen2.5-32B")
    b70 = budget(max_tokens=2000, model="Llama-3.3-70B")
    assert b8.total < b32.total < b70.total  # type: ignore[attr-defined]
    assert b32.total == pytest.approx(90 + 2000 * 0.05 * 2 + 400 / 4 / 2000 * 2)  # type: ignore[attr-defined]


def test_max_completion_tokens_and_max_output_tokens_count_like_max_tokens() -> None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        assert request_facts({name: 3000}).max_tokens == 3000


def test_missing_max_tokens_assumes_a_default_answer_length() -> None:
    assert budget(max_tokens=None).total == budget(max_tokens=ASSUMED_MAX_TOKENS).total  # type: ignore[attr-defined]


def test_prompt_size_adds_prefill_time() -> None:
    assert budget(prompt_bytes=4_000_000).total > budget(prompt_bytes=100).total  # type: ignore[attr-defined]


def test_budgets_are_clamped_between_default_and_max() -> None:
    huge = budget(max_tokens=100_000, model="Llama-3.1-405B")
    assert huge.total == 600.0  # type: ignore[attr-defined]
    tiny = budget(max_tokens=1, default_timeout=90.0)
    assert tiny.total == 90.0 + 1 * 0.05 + 400 / 4 / 2000  # type: ignore[attr-defined]
    nongen = budget("/v1/embeddings", max_tokens=100_000)
    assert nongen.total == pytest.approx(90 + 400 / 4 / 2000)  # type: ignore[attr-defined]
    assert budget("/v1/models", prompt_bytes=0).total == 90.0  # type: ignore[attr-defined]


def test_streams_get_first_token_and_idle_budgets_and_no_total() -> None:
    stream = budget(stream=True, max_tokens=100_000, model="Llama-3.3-70B")
    assert stream.total is None  # type: ignore[attr-defined]
    assert stream.first_byte == pytest.approx(90 + 400 / 4 / 2000 * (70 / 8) ** 0.5)  # type: ignore[attr-defined]
    assert stream.idle == pytest.approx(90 * (70 / 8) ** 0.5)  # type: ignore[attr-defined]
    small = budget(stream=True, model="Llama-3.1-8B", default_timeout=2.0, max_timeout=3.0)
    assert small.first_byte == pytest.approx(2.0 + 400 / 4 / 2000)  # type: ignore[attr-defined]
    assert small.idle == 2.0  # type: ignore[attr-defined]
    capped = budget(stream=True, model="Llama-3.1-405B", default_timeout=90.0, max_timeout=100.0)
    assert capped.idle == 100.0  # type: ignore[attr-defined]


def test_stream_flag_on_a_non_generation_route_gets_a_total() -> None:
    assert budget("/v1/embeddings", stream=True).total is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"model": 7, "stream": "yes", "max_tokens": "100"},
        {"max_tokens": True},
        {"max_tokens": -5},
        {"max_tokens": 1.5},
    ],
)
def test_wrong_types_count_as_absent(body: object) -> None:
    facts = request_facts(body)
    assert facts.model is None and facts.stream is False and facts.max_tokens is None


def test_request_facts_reads_model_stream_and_limit() -> None:
    facts = request_facts({"model": "m-32B", "stream": True, "max_completion_tokens": 77})
    assert (facts.model, facts.stream, facts.max_tokens) == ("m-32B", True, 77)
