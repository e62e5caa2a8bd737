"""What the instance's front (NGINX -> proxy) costs in front of real vLLM (CPU).

    .venv/bin/python tools/bench/bench_vllm.py [--concurrency 1 8 32] [--max-tokens 32]
                                               [--rounds 1]

Starts the local stack (testkit/local_stack.py: vLLM with SmolLM2-135M-Instruct, the proxy
with an API key, NGINX with the site Terraform renders), then for each concurrency runs
that many streaming chat completions at once, direct to vLLM and through NGINX -> proxy,
alternating which goes first, --rounds times (the rounds are pooled). Every stream
generates exactly --max-tokens tokens (ignore_eos) at temperature 0. Reports, per
concurrency, the median time to first token (TTFT) of each path, the TTFT the front adds,
and the ratio of aggregate tokens/s (front / direct; 1.00 = no loss). Prints a Markdown
table. Needs `bash tools/prepare.sh demo`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit import local_stack
from testkit.nginx import local_site, start_nginx
from testkit.ports import free_port
from testkit.processes import Stack, running, wait_until


@dataclass
class Round:
    ttfts: list[float]
    tokens: int
    wall: float

    @property
    def median_ttft(self) -> float:
        return statistics.median(self.ttfts)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall


async def one_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], max_tokens: int, index: int
) -> tuple[float, int]:
    body = {
        "model": local_stack.CHAT_MODEL_NAME,
        "messages": [{"role": "user", "content": f"Write a short story, number {index}."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.monotonic()
    ttft = -1.0
    tokens = 0
    async with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if ttft < 0 and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.monotonic() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return ttft, tokens


async def run_round(base_url: str, api_key: str | None, concurrency: int, max_tokens: int) -> Round:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                one_stream(client, f"{base_url}/v1/chat/completions", headers, max_tokens, i)
                for i in range(concurrency)
            )
        )
        wall = time.monotonic() - started
    return Round([ttft for ttft, _ in results], sum(tokens for _, tokens in results), wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)

    local_stack.check_prepared()
    api_key = local_stack.generate_api_key()
    stack = Stack()
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp, running(stack):
        logs = Path(tmp)
        vllm = stack.add(
            local_stack.start_vllm(
                local_stack.model_dir(local_stack.CHAT_MODEL_NAME),
                local_stack.CHAT_MODEL_NAME,
                free_port(),
                logs / "vllm.log",
                max_model_len=local_stack.CHAT_MAX_MODEL_LEN,
            )
        )
        proxy = stack.add(
            local_stack.start_proxy(
                vllm.url,
                free_port(),
                logs / "proxy.log",
                api_keys=[api_key],
                extra_env={"PROXY_LOG_FORMAT": "json"},
            )
        )
        http_port = free_port()
        site = local_site(
            http_port=http_port, proxy_port=int(proxy.url.rsplit(":", 1)[1])
        )
        nginx = stack.add(
            start_nginx(logs / "nginx", site, f"http://127.0.0.1:{http_port}")
        )
        print("starting vLLM ...", file=sys.stderr, flush=True)
        wait_until(
            vllm, lambda: local_stack.vllm_serves(vllm.url, local_stack.CHAT_MODEL_NAME), 900
        )
        wait_until(nginx, lambda: local_stack.http_ok(f"{nginx.url}/ready"), 60)
        # Warm both paths (first request compiles nothing on CPU, but fills caches).
        asyncio.run(run_round(vllm.url, None, 1, 4))
        asyncio.run(run_round(nginx.url, api_key, 1, 4))

        rows = []
        turn = 0
        for concurrency in args.concurrency:
            results = {"direct": Round([], 0, 0.0), "front": Round([], 0, 0.0)}
            for _ in range(args.rounds):
                paths = [("direct", vllm.url, None), ("front", nginx.url, api_key)]
                if turn % 2:
                    paths.reverse()
                turn += 1
                for name, url, key in paths:
                    print(f"{concurrency} streams, {name} ...", file=sys.stderr, flush=True)
                    done = asyncio.run(run_round(url, key, concurrency, args.max_tokens))
                    pooled = results[name]
                    pooled.ttfts += done.ttfts
                    pooled.tokens += done.tokens
                    pooled.wall += done.wall
            direct, front = results["direct"], results["front"]
            rows.append(
                f"| {concurrency} | {direct.median_ttft * 1000:.0f}"
                f" | {front.median_ttft * 1000:.0f}"
                f" | {(front.median_ttft - direct.median_ttft) * 1000:+.0f}"
                f" | {direct.tokens_per_second:.1f} | {front.tokens_per_second:.1f}"
                f" | {front.tokens_per_second / direct.tokens_per_second:.2f} |"
            )
    print(
        f"NGINX -> proxy -> vLLM vs direct vLLM; SmolLM2-135M-Instruct on CPU,"
        f" {args.max_tokens} tokens per stream, {args.rounds} round(s)\n"
    )
    print(
        "| streams | TTFT direct (ms) | TTFT front (ms) | added TTFT (ms)"
        " | tokens/s direct | tokens/s front | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
