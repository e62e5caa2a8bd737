"""Benchmark: what each proxy adds in front of the same fake vLLM, in one alternating run.

    .venv/bin/python tools/bench/bench_proxy.py                        # ~4 min
    .venv/bin/python tools/bench/bench_proxy.py --quick --no-pin       # ~1.5 min
    .venv/bin/python tools/bench/bench_proxy.py --only ours,ours-keys  # 1 key vs 100 named keys
    .venv/bin/python tools/bench/bench_proxy.py --only ours --baseline main   # before/after

Paths (`--only`, comma list; default direct, nginx, ours, litellm):

* `direct`: client -> fake vLLM (always measured: the other paths are shown against it);
* `nginx`: NGINX with `proxy_buffering off` and upstream keep-alive (testkit/nginx.py);
* `ours`: `python -m inference_proxy` of this checkout, one API key, JSON access log;
* `ours-keys`: the same with 100 named keys, each with concurrency, request and token
  limits and a model list (PROXY_API_KEYS_FILE); the load uses one of them; the limits
  are high enough that nothing is refused, so every request pays for every check;
* `baseline`: `python -m inference_proxy` of the git revision given by `--baseline REF`
  (its app/ extracted with `git archive`), to compare a change with what it replaces;
* `litellm`: the LiteLLM proxy as a plain OpenAI pass-through (installed on first use
  into $EC2I_CACHE/litellm-venv, never into the project venv).

The upstream is testkit/fake_vllm.py (precomputed vLLM-shaped chunks, one write per
token, 0.1 s to the first token, 30 tokens/s). Proxies are pinned to CPU 1, the fake and
the load to CPU 0. Segments alternate path by path for several rounds, in an order that
rotates every round, so drift on a shared machine hits every path alike. Measured:

* non-streaming, 64 closed-loop clients, one-token answers (~0.13 s upstream): latency
  p50/p99 minus direct's, requests/s, and the proxy's CPU time per request (from /proc;
  contention inflates it far less than it inflates latencies);
* streaming, 256 concurrent streams of 45 tokens at 30 tokens/s: time to first token
  p50/p99 minus direct's; one-for-one: every HTTP chunk the client receives carries
  exactly one token event, as the upstream wrote them (in brackets the share of chunks
  carrying several); CPU of the proxy (fraction of one core) and its peak RSS.

A second table gives each proxy's CPU per request and per stream as a ratio to `ours`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from testkit.bench.load import Target, nonstream_segment, stream_segment
from testkit.bench.stats import cpu_seconds, peak_rss_mb, percentile, process_tree
from testkit.cache import cache_dir
from testkit.fake_vllm import MODEL
from testkit.nginx import start_nginx
from testkit.ports import free_port
from testkit.processes import Service, Stack, running, start_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
KEY = "bench-key-0123456789"
LITELLM_KEY = "sk-bench-0123456789abcdef"
NAMED_KEYS = 100
PROXY_CPU = 1
LOAD_CPU = 0
STREAM_TOKENS = 45


@dataclass
class Path_:
    """A path under test: its load counters and, for proxies, the service and CPU use."""

    target: Target
    service: Service | None = None
    nonstream_cpu: float = 0.0
    stream_cpu: float = 0.0
    stream_wall: float = 0.0
    rss: float = 0.0

    @property
    def name(self) -> str:
        return self.target.name

    def pids(self) -> list[int]:
        return process_tree(self.service.pid) if self.service else []


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Processes started inside inherit the CPU affinity `cpu` (None: no pinning)."""
    if cpu is None or not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) <= cpu:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def start_fake(workdir: Path) -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "testkit.fake_vllm", "--port", str(port)]
    argv += ["--tokens-per-second", "30", "--ttft", "0.1", "--uvloop"]
    service = start_process("fake-vllm", argv, workdir / "fake.log", f"http://127.0.0.1:{port}")
    wait_until(service, listening(port), 30, interval=0.1)
    return service


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def start_nginx_path(workdir: Path, upstream: int) -> Path_:
    port = free_port()
    site = f"""
upstream vllm {{ server 127.0.0.1:{upstream}; keepalive 512; }}
server {{
    listen 127.0.0.1:{port} backlog=4096;
    access_log off;
    location / {{
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout 600s;
    }}
}}
"""
    service = start_nginx(workdir / "nginx", site, f"http://127.0.0.1:{port}")
    wait_until(service, listening(port), 10, interval=0.1)
    return Path_(Target("NGINX", port), service)


def start_inference_proxy(
    name: str,
    workdir: Path,
    upstream: int,
    *,
    app_dir: Path,
    key: str = KEY,
    extra_env: dict[str, str] | None = None,
) -> Path_:
    port = free_port()
    env = {
        "PROXY_UPSTREAM_URL": f"http://127.0.0.1:{upstream}",
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "PROXY_API_KEYS": KEY,
        "PROXY_MAX_CONCURRENCY": "1024",
        # The checkout's package is installed editable; PYTHONPATH + cwd put app_dir's
        # copy first, so a baseline revision runs its own code.
        "PYTHONPATH": str(app_dir),
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "inference_proxy"]
    service = start_process(
        name, argv, workdir / f"{name}.log", f"http://127.0.0.1:{port}", env=env, cwd=app_dir
    )
    wait_until(service, listening(port), 30, interval=0.1)
    headers = b"Authorization: Bearer " + key.encode() + b"\r\n"
    return Path_(Target(name, port, headers), service)


def named_keys_file(path: Path) -> str:
    """100 named keys with every limit set (high enough to refuse nothing); returns the
    key the load uses, one in the middle of the set."""
    keys = [
        {
            "name": f"team-{i:03d}",
            "key": f"sk-bench-named-{i:03d}-0123456789abcdef",
            "max_concurrency": 1024,
            "requests_per_minute": 10_000_000,
            "tokens_per_minute": 1_000_000_000,
            "models": [f"other-model-{i}", MODEL],
        }
        for i in range(NAMED_KEYS)
    ]
    path.write_text(json.dumps({"keys": keys}))
    return str(keys[NAMED_KEYS // 2]["key"])


def extract_app(ref: str, into: Path) -> Path:
    """app/ of git revision `ref`, written under `into`; returns its path."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "app"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "app"


def litellm_bin() -> Path:
    venv = cache_dir() / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"installing litellm[proxy] into {venv} (first run only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def start_litellm(workdir: Path, upstream: int) -> Path_:
    port = free_port()
    conf = workdir / "litellm.yaml"
    model = {
        "model_name": MODEL,
        "litellm_params": {
            "model": f"openai/{MODEL}",
            "api_base": f"http://127.0.0.1:{upstream}/v1",
            "api_key": "unused",
        },
    }
    conf.write_text(
        json.dumps(
            {
                "model_list": [model],
                "litellm_settings": {"drop_params": True, "telemetry": False},
                # It refuses to start without a key; with one, it checks keys as we do.
                "general_settings": {"master_key": LITELLM_KEY},
            }
        )
    )
    argv = [str(litellm_bin()), "--config", str(conf), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1"]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    service = start_process(
        "litellm", argv, workdir / "litellm.log", f"http://127.0.0.1:{port}", env=env
    )
    wait_until(service, listening(port), 180, interval=0.5)
    headers = b"Authorization: Bearer " + LITELLM_KEY.encode() + b"\r\n"
    return Path_(Target("LiteLLM proxy", port, headers), service)


# -- measuring ---------------------------------------------------------------------------
async def measure(paths: list[Path_], rounds: int, seconds: float, stream_seconds: float) -> None:
    for r in range(rounds):
        # direct first, then the others in an order that rotates every round, so no path
        # always follows the same one
        rest = paths[1:]
        shift = r % len(rest) if rest else 0
        order = [paths[0], *rest[shift:], *rest[:shift]]
        for p in order:
            print(f"round {r + 1}/{rounds}: {p.name} non-streaming", file=sys.stderr)
            pids = p.pids()
            before = cpu_seconds(pids)
            await nonstream_segment(p.target, 64, seconds)
            p.nonstream_cpu += cpu_seconds(pids) - before
        for p in order:
            print(f"round {r + 1}/{rounds}: {p.name} streaming", file=sys.stderr)
            pids = p.pids()
            before, wall = cpu_seconds(pids), time.monotonic()
            await stream_segment(p.target, 256, stream_seconds, STREAM_TOKENS)
            if pids:
                p.stream_cpu += cpu_seconds(pids) - before
                p.stream_wall += time.monotonic() - wall
                p.rss = max(p.rss, peak_rss_mb(pids))


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def cpu_per_request_us(p: Path_) -> float:
    return p.nonstream_cpu / p.target.nonstream_total * 1e6 if p.target.nonstream_total else 0


def cpu_per_stream_ms(p: Path_) -> float:
    return p.stream_cpu / p.target.streams_done * 1e3 if p.target.streams_done else 0


def table(paths: list[Path_]) -> str:
    direct = paths[0].target
    d50, d99 = percentile(direct.nonstream_latency, 50), percentile(direct.nonstream_latency, 99)
    t50, t99 = percentile(direct.ttft, 50), percentile(direct.ttft, 99)
    rows = [
        "| path | non-stream added p50 | added p99 | req/s (64 conc.) | CPU per request | "
        "stream added TTFT p50 | added p99 | one-for-one (merged chunks) | "
        "CPU at 256 streams | CPU per stream | peak RSS | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in paths:
        t = p.target
        complete = t.tokens_seen == t.tokens_expected
        one_for_one = "yes" if complete and t.merged_chunks == 0 and t.token_chunks else "no"
        one_for_one += f" ({t.merged_chunks / max(1, t.token_chunks):.2%})"
        rps = t.nonstream_count / t.nonstream_seconds if t.nonstream_seconds else 0
        if p.service is None:
            lat = f"({d50 * 1000:.1f} ms)", f"({d99 * 1000:.1f} ms)"
            ttft = f"({t50 * 1000:.1f} ms)", f"({t99 * 1000:.1f} ms)"
            cpu_req = cores = per_stream = rss = "-"
        else:
            n50, n99 = percentile(t.nonstream_latency, 50), percentile(t.nonstream_latency, 99)
            s50, s99 = percentile(t.ttft, 50), percentile(t.ttft, 99)
            lat = f"{(n50 - d50) * 1000:+.2f} ms", f"{(n99 - d99) * 1000:+.2f} ms"
            ttft = f"{(s50 - t50) * 1000:+.2f} ms", f"{(s99 - t99) * 1000:+.2f} ms"
            cpu_req = f"{cpu_per_request_us(p):.0f} us"
            cores = f"{p.stream_cpu / p.stream_wall:.2f} core" if p.stream_wall else "-"
            per_stream = f"{cpu_per_stream_ms(p):.2f} ms"
            rss = f"{p.rss:.0f} MB"
        rows.append(
            f"| {p.name} | {lat[0]} | {lat[1]} | {rps:.0f} | {cpu_req} | {ttft[0]} | {ttft[1]} | "
            f"{one_for_one} | {cores} | {per_stream} | {rss} | "
            f"{t.nonstream_errors + t.stream_errors} |"
        )
    return "\n".join(rows)


def ratios(paths: list[Path_], reference: Path_) -> str:
    rows = [
        f"| path | CPU per request / {reference.name} | CPU per stream / {reference.name} |",
        "|---|---|---|",
    ]
    ref_req, ref_stream = cpu_per_request_us(reference), cpu_per_stream_ms(reference)
    for p in paths:
        if p.service is None or not ref_req or not ref_stream:
            continue
        rows.append(
            f"| {p.name} | {cpu_per_request_us(p) / ref_req:.3f} | "
            f"{cpu_per_stream_ms(p) / ref_stream:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, shorter segments")
    parser.add_argument("--rounds", type=int, help="rounds (default 2, --quick 1)")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin to CPUs (a machine others load)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma list of paths: nginx, ours, ours-keys, baseline, litellm "
        "(default: nginx,ours,litellm; baseline is added when --baseline is given)",
    )
    parser.add_argument("--baseline", metavar="REF", help="git revision to run as `baseline`")
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else ["nginx", "ours", "litellm"]
    if args.baseline and "baseline" not in wanted:
        wanted.insert(wanted.index("ours") + 1 if "ours" in wanted else 0, "baseline")
    if "baseline" in wanted and not args.baseline:
        parser.error("the baseline path needs --baseline REF")
    unknown = set(wanted) - {"nginx", "ours", "ours-keys", "baseline", "litellm"}
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    rounds = args.rounds or (1 if args.quick else 2)
    seconds, stream_seconds = (5.0, 6.0) if args.quick else (8.0, 10.0)
    proxy_cpu = None if args.no_pin else PROXY_CPU
    load_cpu = None if args.no_pin else LOAD_CPU

    stack = Stack()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, running(stack):
        workdir = Path(tmp)
        with pinned(load_cpu):
            fake = stack.add(start_fake(workdir))
        upstream = port_of(fake)
        paths = [Path_(Target("direct", upstream))]
        with pinned(proxy_cpu):
            for name in wanted:
                if name == "nginx":
                    path = start_nginx_path(workdir, upstream)
                elif name == "ours":
                    path = start_inference_proxy("ours", workdir, upstream, app_dir=ROOT / "app")
                elif name == "ours-keys":
                    key = named_keys_file(workdir / "keys.json")
                    path = start_inference_proxy(
                        "ours-keys",
                        workdir,
                        upstream,
                        app_dir=ROOT / "app",
                        key=key,
                        extra_env={
                            "PROXY_API_KEYS": "",
                            "PROXY_API_KEYS_FILE": str(workdir / "keys.json"),
                        },
                    )
                elif name == "baseline":
                    app_dir = extract_app(args.baseline, workdir / "baseline")
                    path = start_inference_proxy(
                        f"baseline ({args.baseline})", workdir, upstream, app_dir=app_dir
                    )
                else:
                    path = start_litellm(workdir, upstream)
                assert path.service is not None
                stack.add(path.service)
                paths.append(path)
        with pinned(load_cpu):
            run_loop(measure(paths, rounds, seconds, stream_seconds))
    print(
        f"\nbench_proxy: {rounds} round(s), non-streaming {seconds:.0f} s x 64 clients, "
        f"streaming {stream_seconds:.0f} s x 256 streams of {STREAM_TOKENS} tokens at "
        f"30 tokens/s, {os.cpu_count()} CPUs, "
        + ("not pinned" if args.no_pin else f"proxies pinned to CPU {PROXY_CPU}")
        + f", load average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print(table(paths))
    reference = next((p for p in paths if p.name == "ours"), None)
    if reference is not None and len(paths) > 2:
        print()
        print(ratios(paths, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
