"""The route table: the one place that says which paths the proxy serves itself, which it
forwards to vLLM, and which of those generate tokens. timeouts.py, the 404 message and
the metric labels derive from it, and a test ties NGINX's locations to these names."""

from __future__ import annotations

# Served by the proxy itself, without an API key.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})

# vLLM's routes outside /v1/ (its OpenAI server also serves these at the root). Every path
# under /v1/ is forwarded as well.
NON_V1_ROUTES = frozenset(
    {"/tokenize", "/detokenize", "/pooling", "/score", "/rerank", "/v2/rerank", "/classify"}
)

# Forwarded routes whose answer is generated token by token: their timeout budget grows
# with max_tokens, and their streams carry usage the proxy accounts per key.
GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})

# Metric label values: these paths by name, everything else as "other", so a client
# probing random paths cannot grow the number of time series.
LABELLED_ROUTES = frozenset(
    {
        *GENERATION_ROUTES,
        "/v1/embeddings",
        "/v1/models",
        "/v1/score",
        "/v1/rerank",
        "/v1/classify",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        *NON_V1_ROUTES,
        *PUBLIC_PATHS,
    }
)


def route_label(path: str) -> str:
    return path if path in LABELLED_ROUTES else "other"


def is_forwarded(path: str) -> bool:
    """Every path under /v1/ and the non-/v1 vLLM routes; never a path with `.` or `..`
    segments, which an HTTP client or vLLM could resolve to a route outside the list."""
    if not (path.startswith("/v1/") or path in NON_V1_ROUTES):
        return False
    return not any(segment in {".", ".."} for segment in path.split("/"))


def not_found_message(path: str) -> str:
    shown = path if len(path) <= 256 else path[:256] + "..."
    return (
        f"{shown} is not a route of this server: vLLM routes live under /v1/ (plus "
        f"{', '.join(sorted(NON_V1_ROUTES))}); {', '.join(sorted(PUBLIC_PATHS))} need no key."
    )
