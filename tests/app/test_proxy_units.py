"""Pure logic: settings, API keys, error shapes, route rules."""

from __future__ import annotations

import json

import pytest
from inference_proxy.config import ConfigError, Settings
from inference_proxy.errors import (
    BadRequest,
    HeadersTooLarge,
    OverCapacity,
    PayloadTooLarge,
    ProxyError,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    sse_error_event,
)
from inference_proxy.keys import bearer_token, key_id, load_key_set
from inference_proxy.relay import response_headers
from inference_proxy.request import request_headers, upstream_target
from inference_proxy.routes import is_forwarded, route_label


def test_defaults_match_the_design_table() -> None:
    s = Settings.from_env({"PROXY_API_KEYS": "k"})
    assert (s.upstream_url, s.host, s.port) == ("http://127.0.0.1:8000", "0.0.0.0", 8080)
    assert (s.default_timeout, s.max_timeout, s.max_concurrency) == (90, 600, 256)
    assert (s.max_body_bytes, s.log_format) == (10485760, "json")
    assert s.auth_enabled


def test_settings_read_every_variable() -> None:
    s = Settings.from_env(
        {
            "PROXY_UPSTREAM_URL": "http://10.0.0.1:9000/",
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": "9090",
            "PROXY_API_KEYS": "a, b",
            "PROXY_DEFAULT_TIMEOUT": "30",
            "PROXY_MAX_TIMEOUT": "1200",
            "PROXY_MAX_CONCURRENCY": "8",
            "PROXY_MAX_BODY_BYTES": "1000",
            "PROXY_LOG_FORMAT": "TEXT",
        }
    )
    assert s.upstream_url == "http://10.0.0.1:9000"
    assert (s.host, s.port) == ("127.0.0.1", 9090)
    assert sorted(key.name for key in s.load_keys() or ()) == sorted(
        [key_id("a"), key_id("b")]
    )
    assert (s.default_timeout, s.max_timeout, s.max_concurrency) == (30, 1200, 8)
    assert (s.max_body_bytes, s.log_format) == (1000, "text")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROXY_PORT": "http"}, "PROXY_PORT"),
        ({"PROXY_PORT": "70000"}, "PROXY_PORT"),
        ({"PROXY_MAX_CONCURRENCY": "0"}, "PROXY_MAX_CONCURRENCY"),
        ({"PROXY_DEFAULT_TIMEOUT": "-1"}, "PROXY_DEFAULT_TIMEOUT"),
        ({"PROXY_DEFAULT_TIMEOUT": "nan"}, "PROXY_DEFAULT_TIMEOUT"),
        ({"PROXY_DEFAULT_TIMEOUT": "700"}, "PROXY_MAX_TIMEOUT"),
        ({"PROXY_LOG_FORMAT": "xml"}, "PROXY_LOG_FORMAT"),
        ({"PROXY_UPSTREAM_URL": "127.0.0.1:8000"}, "PROXY_UPSTREAM_URL"),
        ({"PROXY_UPSTREAM_URL": "https://vllm.internal"}, "PROXY_UPSTREAM_URL"),
        ({"PROXY_API_KEYS_FILE": "/nonexistent/keys"}, "PROXY_API_KEYS_FILE"),
    ],
)
def test_invalid_settings_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({"PROXY_API_KEYS": "k", **env})


def test_keys_come_from_the_list_and_the_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "keys"
    path.write_text("# proxy keys\nfile-key-1\n\nfile-key-2, shared  # trailing comment\n")
    keys = load_key_set("env-key, shared,,", str(path))
    names = [key.name for key in keys]
    expected = ["env-key", "shared", "file-key-1", "file-key-2"]
    assert names == [key_id(k) for k in expected]
    for key in expected:
        found = keys.authenticate(b"Bearer " + key.encode())
        assert found is not None and found.name == key_id(key)


def test_settings_repr_never_shows_keys() -> None:
    s = Settings.from_env({"PROXY_API_KEYS": "super-secret-value"})
    assert "super-secret-value" not in repr(s)
    assert "super-secret-value" not in repr(list(s.load_keys() or ()))


def test_key_set_accepts_each_key_and_nothing_else() -> None:
    keys = load_key_set("alpha-key,beta-key", None)
    assert keys.authenticate(b"Bearer alpha-key") is not None
    assert keys.authenticate(b"bearer beta-key") is not None
    assert keys.authenticate(b"Bearer   beta-key  ") is not None
    for bad in [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"alpha-key",
        b"Basic alpha-key",
        b"Bearer alpha-ke",
        b"Bearer alpha-keyy",
        b"Bearer ALPHA-KEY",
        b"Bearer alpha-key beta-key",
        b"Token alpha-key",
    ]:
        assert keys.authenticate(bad) is None, bad


def test_key_set_stores_no_plain_key() -> None:
    keys = load_key_set("plain-secret", None)
    assert b"plain-secret" not in repr(vars(keys)).encode()


def test_bearer_token_parsing() -> None:
    assert bearer_token(b"Bearer abc") == b"abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(None) is None


@pytest.mark.parametrize(
    ("error", "status", "type_", "retry_after"),
    [
        (BadRequest("x"), 400, "invalid_request_error", None),
        (Unauthorized("x"), 401, "invalid_request_error", None),
        (PayloadTooLarge("x"), 413, "invalid_request_error", None),
        (HeadersTooLarge("x"), 431, "invalid_request_error", None),
        (OverCapacity("x"), 429, "rate_limit_error", b"1"),
        (UpstreamError("x"), 502, "upstream_error", None),
        (UpstreamUnavailable("x"), 503, "service_unavailable", b"5"),
        (UpstreamTimeout("x"), 504, "timeout", None),
    ],
)
def test_errors_have_the_openai_shape(
    error: ProxyError, status: int, type_: str, retry_after: bytes | None
) -> None:
    body = json.loads(error.body())
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] == "x" and body["error"]["type"] == type_
    assert error.status == status
    assert dict(error.headers()).get(b"retry-after") == retry_after


def test_sse_error_event_is_one_error_event_then_done() -> None:
    event = sse_error_event(UpstreamTimeout("slow"))
    first, second, rest = event.split(b"\n\n")
    assert json.loads(first.removeprefix(b"data: "))["error"]["code"] == "upstream_timeout"
    assert second == b"data: [DONE]" and rest == b""


@pytest.mark.parametrize(
    ("path", "forwarded"),
    [
        ("/v1/chat/completions", True),
        ("/v1/anything/new", True),
        ("/tokenize", True),
        ("/detokenize", True),
        ("/pooling", True),
        ("/score", True),
        ("/rerank", True),
        ("/classify", True),
        ("/metrics/", False),
        ("/reset_prefix_cache", False),
        ("/v1/../reset_prefix_cache", False),
        ("/v1/./models", False),
        ("/v1", False),
        ("/", False),
    ],
)
def test_forwarded_routes(path: str, forwarded: bool) -> None:
    assert is_forwarded(path) is forwarded


def test_route_labels_are_bounded() -> None:
    assert route_label("/v1/chat/completions") == "/v1/chat/completions"
    assert route_label("/v1/models/some-model") == "other"
    assert route_label("/random/%s" % ("x" * 100)) == "other"


def test_request_headers_drop_the_key_and_hop_by_hop_and_carry_the_request_id() -> None:
    out = dict(
        request_headers(
            [
                (b"authorization", b"Bearer secret"),
                (b"connection", b"keep-alive"),
                (b"host", b"proxy"),
                (b"content-length", b"5"),
                (b"x-request-id", b"client-given"),
                (b"content-type", b"application/json"),
            ],
            "rid-1",
        )
    )
    assert out == {
        b"content-type": b"application/json",
        b"accept-encoding": b"identity",
        b"x-request-id": b"rid-1",
    }


def test_response_headers_drop_hop_by_hop_and_optionally_the_length() -> None:
    raw = [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked"), (b"X-Other", b"1")]
    assert response_headers(raw, keep_length=True) == [
        (b"Content-Length", b"5"),
        (b"X-Other", b"1"),
    ]
    assert response_headers(raw, keep_length=False) == [(b"X-Other", b"1")]


def test_upstream_target_keeps_path_and_query() -> None:
    assert upstream_target("/v1/models", b"a=1&b=%20") == b"/v1/models?a=1&b=%20"
    assert upstream_target("/v1/a b", b"") == b"/v1/a%20b"
