"""Benchmark: what each proxy adds in front of the same fake vLLM, in one alternating run.

    .venv/bin/python tools/bench/bench_proxy.py            # about 3 minutes
    .venv/bin/python tools/bench/bench_proxy.py --quick    # about 1 minute, fewer samples

Paths: direct (client -> fake vLLM), NGINX (proxy_buffering off, upstream keep-alive),
our proxy (`python -m inference_proxy`, API key on, JSON access log to a file) and the
LiteLLM proxy (configured as a plain OpenAI pass-through; installed on first use into
$EC2I_CACHE/litellm-venv, never into the project venv). The upstream is testkit/fake_vllm.py:
precomputed vLLM-shaped chunks, one write per token.

The proxies run pinned to CPU 1, the fake upstream and the load generator to CPU 0.
Segments alternate path by path for several rounds, so drift on a shared machine hits
every path alike. Measured:

* non-streaming, 64 concurrent closed-loop clients, each request answered by the fake
  after ~0.13 s (1 token, 0.1 s TTFT): latency p50/p99 minus direct's, requests/s;
* streaming, 256 concurrent streams at 30 tokens/s: time to first token p50/p99 minus
  direct's; chunks relayed one for one: every HTTP chunk the client receives carries
  exactly one token event, as the upstream wrote them (a proxy that merges events puts
  several in one chunk; TCP coalescing of reads does not change the chunk framing, so
  this counts only the proxy's doing; "merged reads" counts the client reads that held
  more than one event, which also grows when a path falls behind); proxy CPU (fraction
  of one core) and peak RSS of the proxy's processes.

Prints a Markdown table (pasted into docs/API_REFERENCE.md, Performance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EC2I_CACHE", Path.home() / ".cache" / "ec2-inference"))
MODEL = "fake-org/Fake-Model-8B-Instruct"
KEY = "bench-key-0123456789"
LITELLM_KEY = "sk-bench-0123456789abcdef"
TOKEN = re.compile(rb'"t\d+ "')
PROXY_CPU = 1
LOAD_CPU = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def log_to(path: Path) -> IO[bytes]:
    return path.open("wb")  # stays open as long as the process that writes to it


PIN = True


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if PIN and shutil.which("taskset") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        return ["taskset", "-c", str(cpu), *argv]
    return argv


# -- process accounting ----------------------------------------------------------------
def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# -- the paths --------------------------------------------------------------------------
@dataclass
class Path_:
    name: str
    port: int
    prefix: str = ""
    headers: bytes = b""
    proc: subprocess.Popen[bytes] | None = None
    nonstream_latency: list[float] = field(default_factory=list)
    nonstream_count: int = 0
    nonstream_seconds: float = 0.0
    nonstream_errors: int = 0
    ttft: list[float] = field(default_factory=list)
    stream_errors: int = 0
    token_reads: int = 0
    merged_reads: int = 0
    token_chunks: int = 0
    merged_chunks: int = 0
    tokens_expected: int = 0
    tokens_seen: int = 0
    cpu: float = 0.0
    cpu_wall: float = 0.0
    rss: float = 0.0

    def pids(self) -> list[int]:
        return tree(self.proc.pid) if self.proc else []


def start_fake(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [
        sys.executable,
        str(ROOT / "tests" / "fake_vllm.py"),
        "--port",
        str(port),
        "--tokens-per-second",
        "30",
        "--ttft",
        "0.1",
        "--uvloop",
    ]
    proc = subprocess.Popen(
        pinned(LOAD_CPU, argv), stdout=subprocess.DEVNULL, stderr=log_to(workdir / "fake.log")
    )
    wait_port(port, 20, proc)
    return proc, port


def start_nginx(workdir: Path, upstream: int) -> Path_:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit(
            "nginx is not installed: apt-get install nginx (tools/prepare.sh test does)"
        )
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
worker_cpu_affinity {1 << PROXY_CPU:b};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    upstream vllm {{ server 127.0.0.1:{upstream}; keepalive 512; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://vllm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
""")
    proc = subprocess.Popen(pinned(PROXY_CPU, [nginx, "-p", str(workdir), "-c", str(conf)]))
    wait_port(port, 10, proc)
    return Path_("NGINX", port, proc=proc)


def start_ours(workdir: Path, upstream: int) -> Path_:
    port = free_port()
    env = {
        **os.environ,
        "PROXY_UPSTREAM_URL": f"http://127.0.0.1:{upstream}",
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "PROXY_API_KEYS": KEY,
        "PROXY_MAX_CONCURRENCY": "1024",
        "PYTHONPATH": str(ROOT / "app"),
    }
    proc = subprocess.Popen(
        pinned(PROXY_CPU, [sys.executable, "-m", "inference_proxy"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_to(workdir / "proxy.log"),
    )
    wait_port(port, 30, proc)
    return Path_(
        "inference_proxy",
        port,
        headers=b"Authorization: Bearer " + KEY.encode() + b"\r\n",
        proc=proc,
    )


def litellm_bin() -> Path:
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"installing litellm[proxy] into {venv} (first run only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def start_litellm(workdir: Path, upstream: int) -> Path_:
    port = free_port()
    conf = workdir / "litellm.yaml"
    conf.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"http://127.0.0.1:{upstream}/v1",
                            "api_key": "unused",
                        },
                    }
                ],
                "litellm_settings": {"drop_params": True, "telemetry": False},
                # It refuses to start without a key; with one, it checks keys as we do.
                "general_settings": {"master_key": LITELLM_KEY},
            }
        )
    )
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    argv = [
        str(litellm_bin()),
        "--config",
        str(conf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc = subprocess.Popen(
        pinned(PROXY_CPU, argv),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_to(workdir / "litellm.log"),
    )
    wait_port(port, 180, proc)
    return Path_(
        "LiteLLM proxy",
        port,
        headers=b"Authorization: Bearer " + LITELLM_KEY.encode() + b"\r\n",
        proc=proc,
    )


# -- load -------------------------------------------------------------------------------
def request_bytes(path: Path_, stream: bool, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": tokens,
            "stream": stream,
        }
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
        b"Content-Type: application/json\r\n"
        + path.headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def read_response(reader: asyncio.StreamReader, on_data: object = None) -> bytes:
    """One HTTP/1.1 response (content-length or chunked); returns the raw body bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    if status != 200:
        raise RuntimeError(f"status {status}")
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("connection closed mid-stream")
            if on_data is not None:
                on_data(data)  # type: ignore[operator]
            body += data
            if body.endswith(b"0\r\n\r\n"):
                return body
    length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    return await reader.readexactly(length)


async def nonstream_segment(path: Path_, concurrency: int, seconds: float) -> None:
    payload = request_bytes(path, stream=False, tokens=1)
    stop = time.monotonic() + seconds
    warm = time.monotonic() + 1.0

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", path.port)
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                writer.write(payload)
                try:
                    await read_response(reader)
                except (RuntimeError, asyncio.IncompleteReadError, ConnectionError):
                    path.nonstream_errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", path.port)
                    continue
                if time.monotonic() > warm:
                    path.nonstream_latency.append(time.perf_counter() - t0)
                    path.nonstream_count += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    path.nonstream_seconds += time.monotonic() - warm  # the warm-up second is not counted


async def stream_segment(path: Path_, concurrency: int, seconds: float, tokens: int) -> None:
    payload = request_bytes(path, stream=True, tokens=tokens)
    stop = time.monotonic() + seconds
    ramp = 1.0  # stagger the starts so the first TTFTs are not a connect storm
    measure_from = time.monotonic() + ramp + 0.5

    async def worker(index: int) -> None:
        await asyncio.sleep(ramp * index / concurrency)
        reader, writer = await asyncio.open_connection("127.0.0.1", path.port)
        try:
            while time.monotonic() < stop:
                first: list[float] = []
                t0 = time.perf_counter()

                def on_data(data: bytes, first: list[float] = first) -> None:
                    found = len(TOKEN.findall(data))
                    if found:
                        if not first:
                            first.append(time.perf_counter())
                        path.token_reads += 1
                        if found > 1:
                            path.merged_reads += 1

                writer.write(payload)
                try:
                    body = await read_response(reader, on_data)
                except (RuntimeError, asyncio.IncompleteReadError, ConnectionError):
                    path.stream_errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", path.port)
                    continue
                path.tokens_expected += tokens
                path.tokens_seen += len(TOKEN.findall(body))
                for chunk in http_chunks(body):
                    found = len(TOKEN.findall(chunk))
                    if found:
                        path.token_chunks += 1
                        path.merged_chunks += found > 1
                if first and time.monotonic() > measure_from:
                    path.ttft.append(first[0] - t0)
        finally:
            writer.close()

    pids = path.pids() or []
    cpu0, wall0 = cpu_seconds(pids), time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    if pids:
        path.cpu += cpu_seconds(pids) - cpu0
        path.cpu_wall += time.monotonic() - wall0
        path.rss = max(path.rss, peak_rss_mb(pids))


def http_chunks(body: bytes) -> list[bytes]:
    """The payloads of a chunked transfer-encoded body."""
    out: list[bytes] = []
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return out
        out.append(body[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


# -- report -----------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def table(paths: list[Path_]) -> str:
    direct = paths[0]
    d50, d99 = pct(direct.nonstream_latency, 50), pct(direct.nonstream_latency, 99)
    t50, t99 = pct(direct.ttft, 50), pct(direct.ttft, 99)
    rows = [
        "| path | non-stream added p50 | added p99 | req/s (64 conc.) | stream added TTFT p50 | "
        "added p99 | one-for-one (merged chunks) | merged reads | CPU at 256 streams | "
        "peak RSS | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in paths:
        merged = p.merged_reads / max(1, p.token_reads)
        complete = p.tokens_seen == p.tokens_expected
        one_for_one = "yes" if complete and p.merged_chunks == 0 and p.token_chunks else "no"
        one_for_one += f" ({p.merged_chunks / max(1, p.token_chunks):.2%})"
        cpu = f"{p.cpu / p.cpu_wall:.2f} core" if p.cpu_wall else "-"
        rss = f"{p.rss:.0f} MB" if p.rss else "-"
        rps = p.nonstream_count / p.nonstream_seconds if p.nonstream_seconds else 0
        if p is direct:
            lat = f"({d50 * 1000:.1f} ms)", f"({d99 * 1000:.1f} ms)"
            ttft = f"({t50 * 1000:.1f} ms)", f"({t99 * 1000:.1f} ms)"
        else:
            n50, n99 = pct(p.nonstream_latency, 50), pct(p.nonstream_latency, 99)
            s50, s99 = pct(p.ttft, 50), pct(p.ttft, 99)
            lat = f"{(n50 - d50) * 1000:+.2f} ms", f"{(n99 - d99) * 1000:+.2f} ms"
            ttft = f"{(s50 - t50) * 1000:+.2f} ms", f"{(s99 - t99) * 1000:+.2f} ms"
        rows.append(
            f"| {p.name} | {lat[0]} | {lat[1]} | {rps:.0f} | {ttft[0]} | {ttft[1]} | "
            f"{one_for_one} | {merged:.2%} | {cpu} | {rss} | "
            f"{p.nonstream_errors + p.stream_errors} |"
        )
    return "\n".join(rows)


async def run(
    paths: list[Path_], rounds: int, seconds: float, stream_seconds: float, stream_tokens: int
) -> None:
    for r in range(rounds):
        for p in paths:
            print(f"round {r + 1}/{rounds}: {p.name} non-streaming", file=sys.stderr)
            await nonstream_segment(p, 64, seconds)
        for p in paths:
            print(f"round {r + 1}/{rounds}: {p.name} streaming", file=sys.stderr)
            await stream_segment(p, 256, stream_seconds, stream_tokens)


def uvloop_run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


async def cost(path: Path_) -> str:
    """CPU the proxy spends per streamed token and per non-streaming request, from its
    own CPU time (/proc), which contention from other processes inflates far less than
    it inflates latencies."""
    pids = path.pids()
    cpu0 = cpu_seconds(pids)
    await stream_segment(path, 64, 8.0, 45)
    stream_cpu = cpu_seconds(pids) - cpu0
    cpu1 = cpu_seconds(pids)
    await nonstream_segment(path, 16, 6.0)
    request_cpu = cpu_seconds(pids) - cpu1
    # the warm-up second of the non-streaming segment is served but not counted
    served = path.nonstream_count * 6.0 / (6.0 - 1.0)
    per_stream_requests = path.tokens_seen / 45
    per_token = (stream_cpu - per_stream_requests * request_cpu / served) / path.tokens_seen
    return (
        f"{path.name}: {request_cpu / served * 1e6:.0f} us CPU per non-streaming request, "
        f"{per_token * 1e6:.0f} us CPU per streamed token (after the per-request part); "
        f"256 streams x 30 tokens/s would need "
        f"{(per_token * 256 * 30 + 256 / 1.6 * request_cpu / served):.2f} core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, shorter segments")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin to CPUs (a machine others load)"
    )
    parser.add_argument("--only", default="", help="comma list of paths to run: nginx,ours,litellm")
    parser.add_argument(
        "--cost", action="store_true", help="only our proxy's CPU per token and per request"
    )
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin
    rounds, seconds, stream_seconds = (1, 5.0, 6.0) if args.quick else (2, 8.0, 10.0)
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        workdir = Path(tmp)
        started: list[subprocess.Popen[bytes]] = []
        try:
            fake, upstream = start_fake(workdir)
            started.append(fake)
            paths = [Path_("direct", upstream)]
            starters = {"nginx": start_nginx, "ours": start_ours, "litellm": start_litellm}
            wanted = args.only.split(",") if args.only else list(starters)
            if args.cost:
                wanted = ["ours"]
            if args.no_litellm and "litellm" in wanted:
                wanted.remove("litellm")
            for name in wanted:
                path = starters[name](workdir, upstream)
                assert path.proc is not None
                started.append(path.proc)
                paths.append(path)
            if PIN and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(0, {LOAD_CPU})
            if args.cost:
                ours = next(p for p in paths if p.name == "inference_proxy")
                print(uvloop_run(cost(ours)))
                return
            uvloop_run(run(paths, rounds, seconds, stream_seconds, 45))
        finally:
            for proc in reversed(started):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    print(
        f"\nbench_proxy: {rounds} round(s), non-streaming {seconds:.0f} s x 64 clients, "
        f"streaming {stream_seconds:.0f} s x 256 streams of 45 tokens at 30 tokens/s, "
        f"{os.cpu_count()} CPUs, proxies pinned to CPU {PROXY_CPU}\n"
    )
    print(table(paths))


if __name__ == "__main__":
    main()
