"""Named keys as pure logic: the key-set parser, the per-key limiters on a fake clock,
and the usage reader and filter of streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inference_proxy.errors import RateLimited
from inference_proxy.keys import KeySetError, Limits, key_id, load_key_set, parse_keys
from inference_proxy.limits import KeyLimiter, Limiters, duration
from inference_proxy.request import parse_facts, with_usage_requested
from inference_proxy.usage import InjectedUsageFilter, UsageScanner

SECRET = "sk-very-secret-0123456789"


def document(*entries: dict[str, object]) -> str:
    return json.dumps({"keys": list(entries)})


def test_json_key_set_with_every_field() -> None:
    keys = parse_keys(
        document(
            {
                "name": "alice",
                "key": SECRET,
                "max_concurrency": 4,
                "requests_per_minute": 60,
                "tokens_per_minute": 20000,
                "models": ["m-7B"],
            },
            {"key": "sk-bob"},
        ),
        "test",
    )
    alice, bob = keys
    assert alice.name == "alice" and alice.limits == Limits(4, 60, 20000)
    assert alice.models == frozenset({"m-7B"}) and not alice.allows_model("other")
    assert bob.name == key_id("sk-bob") and not bob.limits and bob.allows_model("anything")


def test_comma_list_keys_get_stable_ids() -> None:
    assert key_id("sk-one") == key_id("sk-one") != key_id("sk-two")
    assert key_id("sk-one").startswith("key-") and len(key_id("sk-one")) == 12
    assert [k.name for k in parse_keys("sk-one, sk-two", "test")] == [
        key_id("sk-one"),
        key_id("sk-two"),
    ]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[1, 2]", "the JSON document must be"),
        ('{"keys": {}}', '"keys" must be a list'),
        (document({"name": "a"}), 'keys[0]: "key" is required'),
        (document({"key": SECRET, "rpm": 5}), "keys[0] has unknown field(s) rpm"),
        (document({"key": SECRET, "name": "has space"}), 'keys[0]: "name" must be'),
        (document({"key": "x"}, {"key": SECRET, "requests_per_minute": 0}), "keys[1]"),
        (document({"key": SECRET, "name": "a", "tokens_per_minute": "5"}), "tokens_per_minute"),
        (document({"key": SECRET, "max_concurrency": True}), "max_concurrency"),
        (document({"key": SECRET, "models": []}), '"models" must be a non-empty list'),
        (document({"key": SECRET, "models": [1]}), '"models"'),
        (document({"key": SECRET + " x"}), "whitespace"),
        ('{"keys": [{"key": "' + SECRET + '",}]}', "not valid JSON (line 1"),
    ],
)
def test_invalid_key_sets_are_refused_naming_entry_and_field_never_the_key(
    text: str, names: str
) -> None:
    with pytest.raises(KeySetError) as error:
        parse_keys(text, "PROXY_API_KEYS")
    assert names in str(error.value)
    assert SECRET not in str(error.value)


def test_duplicate_names_or_keys_across_list_and_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(document({"name": "a", "key": SECRET}, {"name": "a", "key": "sk-2"}))
    with pytest.raises(KeySetError, match="two keys are named 'a'"):
        load_key_set("", str(path))
    path.write_text(document({"name": "a", "key": SECRET}))
    with pytest.raises(KeySetError, match="are the same key") as error:
        load_key_set(SECRET, str(path))
    assert SECRET not in str(error.value)
    assert len(load_key_set("sk-x,sk-x", None)) == 1  # a list repeating itself is fine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_refills_continuously_with_openai_headers() -> None:
    clock = Clock()
    limiter = KeyLimiter(Limits(requests_per_minute=2), clock)
    first = dict(limiter.admit("alice"))
    assert first[b"x-ratelimit-limit-requests"] == b"2"
    assert first[b"x-ratelimit-remaining-requests"] == b"1"
    assert first[b"x-ratelimit-reset-requests"] == b"30s"  # one request back in 30 s
    assert dict(limiter.admit("alice"))[b"x-ratelimit-remaining-requests"] == b"0"
    with pytest.raises(RateLimited) as refused:
        limiter.admit("alice")
    assert refused.value.retry_after == 30 and refused.value.type == "requests"
    assert "2 requests per minute" in refused.value.message
    assert dict(refused.value.headers())[b"retry-after"] == b"30"
    clock.now += 30
    limiter.admit("alice")


def test_tokens_are_charged_after_the_fact_and_debt_delays_the_next_request() -> None:
    clock = Clock()
    limiter = KeyLimiter(Limits(tokens_per_minute=600), clock)  # 10 tokens/s
    headers = dict(limiter.admit("bob"))
    assert headers[b"x-ratelimit-limit-tokens"] == b"600"
    assert b"x-ratelimit-limit-requests" not in headers
    limiter.release(500)
    limiter.admit("bob")  # 100 left: admitted
    limiter.release(400)  # overshoot: 300 in debt
    with pytest.raises(RateLimited) as refused:
        limiter.admit("bob")
    assert refused.value.type == "tokens" and refused.value.retry_after == 30
    clock.now += 30.5
    assert dict(limiter.admit("bob"))[b"x-ratelimit-remaining-tokens"] == b"5"


def test_concurrency_limit_counts_requests_in_flight() -> None:
    limiter = KeyLimiter(Limits(max_concurrency=1), Clock())
    assert limiter.admit("c") == []  # no minute limits: no headers
    with pytest.raises(RateLimited, match="max_concurrency"):
        limiter.admit("c")
    limiter.release(0)
    limiter.admit("c")


def test_limiters_survive_a_reload_by_name() -> None:
    clock = Clock()
    limiters = Limiters(clock)
    keys = list(load_key_set(document({"name": "a", "key": "k1", "max_concurrency": 1}), None))
    limiters.sync(keys)
    held = limiters.get("a")
    assert held is not None
    held.admit("a")
    rotated = document({"name": "a", "key": "k2", "max_concurrency": 1})
    limiters.sync(list(load_key_set(rotated, None)))
    assert limiters.get("a") is held and held.in_flight == 1  # still counted
    limiters.sync(list(load_key_set(document({"name": "a", "key": "k2"}), None)))
    assert limiters.get("a") is None  # no limits left


def test_duration_format() -> None:
    assert [duration(s) for s in (0.0204, 1.0, 1.55, 59.9, 60, 360, 361.2)] == [
        "21ms",
        "1s",
        "1.6s",
        "59.9s",
        "1m0s",
        "6m0s",
        "6m2s",
    ]


USAGE_EVENT = (
    b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":5,"total_tokens":21,"completion_tokens":16,'
    b'"prompt_tokens_details":{"cached_tokens":0}}}\n\n'
)
TOKEN_EVENT = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"\\"usage\\": 9"}}]}\n\n'


def test_usage_scanner_reads_the_last_usage_also_split_across_chunks() -> None:
    for cut in range(1, len(USAGE_EVENT)):
        scanner = UsageScanner()
        for chunk in (TOKEN_EVENT, USAGE_EVENT[:cut], USAGE_EVENT[cut:], b"data: [DONE]\n\n"):
            scanner.feed(chunk)
        assert scanner.counts() == (5, 16), cut
    scanner = UsageScanner()
    scanner.feed(TOKEN_EVENT)  # "usage" inside a string is escaped: not a key
    assert scanner.counts() == (None, None)
    responses = UsageScanner()
    responses.feed(b'{"usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10}}')
    assert responses.counts() == (7, 3)


FINISH_EVENT = b'data: {"id":"x","choices":[{"index":0,"finish_reason":"length"}]}\n\n'


def test_injected_usage_event_is_removed_and_everything_else_passes_untouched() -> None:
    stream = [TOKEN_EVENT, TOKEN_EVENT]
    for cut in range(1, len(USAGE_EVENT)):
        scanner = UsageScanner()
        hide = InjectedUsageFilter(scanner)
        chunks = [*stream, FINISH_EVENT, USAGE_EVENT[:cut], USAGE_EVENT[cut:], b"data: [DONE]\n\n"]
        relayed = [hide.feed(chunk) for chunk in chunks]
        assert b"".join(relayed) + hide.flush() == b"".join(
            [*stream, FINISH_EVENT, b"data: [DONE]\n\n"]
        )
        assert all(out is chunk for out, chunk in zip(relayed[:2], stream, strict=True))
        assert scanner.counts() == (5, 16)


def test_the_fingerprint_goes_back_on_the_finishing_chunk_as_vllm_puts_it() -> None:
    """vLLM stamps system_fingerprint on the chunk with finish_reason, or, when usage is
    asked for, on the usage event instead: the client gets the former."""
    with_fingerprint = USAGE_EVENT.replace(b"}}}\n\n", b'}},"system_fingerprint":"vllm-1.2"}\n\n')
    hide = InjectedUsageFilter(UsageScanner())
    out = [hide.feed(c) for c in (TOKEN_EVENT, FINISH_EVENT, with_fingerprint, b"data: [DONE]\n\n")]
    assert out[1] == b""  # held until the usage event
    assert out[2] == FINISH_EVENT[:-3] + b',"system_fingerprint":"vllm-1.2"}\n\n'
    assert out[3] == b"data: [DONE]\n\n" and hide.flush() == b""


def test_usage_request_is_added_to_the_body_keeping_other_stream_options() -> None:
    body = b'{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}'
    changed = with_usage_requested(body, parse_facts(body, None))
    assert json.loads(changed)["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }
    plain = b'{"model": "m", "stream": true}  '
    assert json.loads(with_usage_requested(plain, parse_facts(plain, None)))["stream_options"] == {
        "include_usage": True
    }
