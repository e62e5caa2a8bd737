"""Request-aware timeout budgets.

`compute_budget` turns what a request asks for into the time the proxy waits for vLLM:

* size factor ``f = max(1, sqrt(params_in_billions / 8))`` from the model id ("8B" -> 1,
  "32B" -> 2, "70B" -> 2.96, "Mixtral-8x7B" -> 56B -> 2.65); an id without a size counts
  as 8B. Bigger models decode and prefill more slowly per token.
* prefill ``prompt_bytes / 4 / 2000 * f`` seconds (about 4 bytes per token, 2000 prompt
  tokens/s at 8B); the request body size stands in for the prompt size.
* decode ``max_tokens * 0.05 * f`` seconds (20 tokens/s at 8B: slow, loaded hardware) for
  generation routes (routes.GENERATION_ROUTES); `max_completion_tokens` or
  `max_output_tokens` count the same, and a request without a limit is assumed to want
  1024 tokens.

Non-streaming requests get one total budget ``default + prefill + decode``. Streams get a
time-to-first-token budget ``default + prefill`` and an idle budget ``default * f`` between
chunks, with no total: a long generation that keeps producing is never cut. Every budget
is clamped to [PROXY_DEFAULT_TIMEOUT, PROXY_MAX_TIMEOUT].
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .routes import GENERATION_ROUTES

BASELINE_PARAMS_B = 8.0
DECODE_SECONDS_PER_TOKEN = 0.05
PREFILL_TOKENS_PER_SECOND = 2000.0
BYTES_PER_PROMPT_TOKEN = 4.0
ASSUMED_MAX_TOKENS = 1024

# "70B", "1.5B", "135M", "8x7B"; the size must start a word, so "A3B" in "30B-A3B" (active
# parameters of a mixture of experts) and the digits in "Qwen2.5" do not count.
_SIZE = re.compile(
    r"(?<![A-Za-z0-9.])(?:(\d{1,3})x)?(\d{1,4}(?:\.\d{1,3})?)([BbMm])(?![A-Za-z0-9])"
)


@dataclass(frozen=True, slots=True)
class Budget:
    """Seconds. `first_byte` bounds everything before the first response byte (connect,
    retries, queueing, prefill); `idle` bounds each gap between chunks after it; `total`
    bounds the whole request. Streams have idle and no total; the rest have a total."""

    first_byte: float
    idle: float | None
    total: float | None


def model_size_b(model: str) -> float | None:
    """Parameters in billions named in a model id, the largest if several, else None."""
    sizes = []
    for experts, number, unit in _SIZE.findall(model):
        value = float(number) * (int(experts) if experts else 1)
        sizes.append(value / 1000 if unit in "Mm" else value)
    return max(sizes) if sizes else None


def size_factor(model: str | None) -> float:
    size = model_size_b(model) if model else None
    return max(1.0, math.sqrt((size or BASELINE_PARAMS_B) / BASELINE_PARAMS_B))


def compute_budget(
    route: str,
    *,
    stream: bool,
    max_tokens: int | None,
    model: str | None,
    prompt_bytes: int,
    default_timeout: float,
    max_timeout: float,
) -> Budget:
    def clamp(seconds: float) -> float:
        return min(max_timeout, max(default_timeout, seconds))

    factor = size_factor(model)
    prefill = prompt_bytes / BYTES_PER_PROMPT_TOKEN / PREFILL_TOKENS_PER_SECOND * factor
    generation = route in GENERATION_ROUTES
    if stream and generation:
        return Budget(
            first_byte=clamp(default_timeout + prefill),
            idle=clamp(default_timeout * factor),
            total=None,
        )
    decode = 0.0
    if generation:
        tokens = ASSUMED_MAX_TOKENS if max_tokens is None else max_tokens
        decode = tokens * DECODE_SECONDS_PER_TOKEN * factor
    total = clamp(default_timeout + prefill + decode)
    return Budget(first_byte=total, idle=None, total=total)
