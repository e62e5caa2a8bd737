"""Which paths the proxy forwards, and the bounded set of route labels for metrics."""

from __future__ import annotations

PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})

# vLLM's routes outside /v1/ (its OpenAI server also serves these at the root).
NON_V1_ROUTES = frozenset(
    {"/tokenize", "/detokenize", "/pooling", "/score", "/rerank", "/v2/rerank", "/classify"}
)

# Metric label values: these paths by name, everything else as "other", so a client
# probing random paths cannot grow the number of time series.
LABELLED_ROUTES = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
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
