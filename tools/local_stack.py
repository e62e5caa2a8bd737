"""Start and stop the instance's stack on this machine: real vLLM (CPU), the proxy, NGINX.

Shared by `make demo` (tools/demo.py), the integration tests (tests/integration/) and the
benchmark (tools/bench/bench_vllm.py). Everything listens on 127.0.0.1. Each service runs in
its own session (process group) so that stopping it by its PID also ends the children it
forked (vLLM's engine core), and nothing else.

The vLLM environment and the models are made by tools/prepare/50-vllm.sh; the paths below
are the ones it writes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHAT_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"
# SmolLM2 allows 8192; 2048 keeps vLLM's KV cache reservation small on a laptop.
CHAT_MAX_MODEL_LEN = 2048
PREPARE_HINT = "run `bash tools/prepare.sh demo` (or `make demo`) to set it up"


class StackError(RuntimeError):
    """A service could not be started or is missing something; the message says what to do."""


def cache_dir() -> Path:
    """$EC2I_CACHE as tools/prepare.sh computes it."""
    explicit = os.environ.get("EC2I_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "ec2-inference"


def vllm_python() -> Path:
    return cache_dir() / "vllm" / "venv" / "bin" / "python"


def model_dir(name: str) -> Path:
    return cache_dir() / "vllm" / "models" / name


def check_prepared() -> None:
    """Raise StackError naming what `tools/prepare.sh` has not set up yet."""
    missing = [
        str(path)
        for path in (
            vllm_python(),
            model_dir(CHAT_MODEL_NAME) / "config.json",
            model_dir(EMBEDDING_MODEL_NAME) / "config.json",
        )
        if not path.exists()
    ]
    if missing:
        raise StackError(f"missing {', '.join(missing)}; {PREPARE_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def generate_api_key() -> str:
    return "sk-local-" + secrets.token_urlsafe(24)


@dataclass
class Service:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        stop_process_group(self.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def stop_process_group(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # The leader may be a zombie we have not reaped; the group is gone when only it is left.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    url: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Service:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name, process, log_path, url)


def start_vllm(
    model: Path,
    served_name: str,
    port: int,
    log_path: Path,
    *,
    pooling: bool = False,
    max_model_len: int | None = None,
) -> Service:
    """Start vLLM's OpenAI server on 127.0.0.1:`port` (does not wait for it).

    `max_model_len` caps the context (and so the KV cache vLLM reserves); None keeps the
    model's own."""
    check_prepared()
    argv = [
        str(vllm_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # CUDA graphs and torch.compile do not apply on the CPU and cost start-up time.
        "--enforce-eager",
        # The single CPU worker runs inside the engine core process instead of a process of
        # its own: each process imports torch and vLLM again, tens of seconds on two cores.
        "--distributed-executor-backend",
        "uni",
        "--disable-uvicorn-access-log",
    ]
    if max_model_len is not None:
        argv += ["--max-model-len", str(max_model_len)]
    if pooling:
        argv += ["--runner", "pooling"]
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # KV cache size in GiB; vLLM's CPU default (4) is more than two tiny models need.
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "PYTHONUNBUFFERED": "1",
    }
    return start_process("vllm", argv, log_path, f"http://127.0.0.1:{port}", env=env)


def start_proxy(
    upstream_url: str,
    port: int,
    log_path: Path,
    api_keys: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Service:
    """Start `python -m inference_proxy` (this interpreter) on 127.0.0.1:`port`."""
    env = {
        "PROXY_UPSTREAM_URL": upstream_url,
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "PROXY_API_KEYS": ",".join(api_keys),
        "PROXY_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "inference_proxy"]
    return start_process("proxy", argv, log_path, f"http://127.0.0.1:{port}", env=env)


def nginx_binary() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        raise StackError(f"nginx is not installed; {PREPARE_HINT}")
    return path


def write_nginx_main_config(prefix: Path, site_config: str) -> Path:
    """A private nginx.conf around `site_config`: own pid, logs and temp dirs under `prefix`.

    The system's nginx service and /etc/nginx are never touched.
    """
    for sub in ("logs", "temp/client", "temp/proxy", "temp/fastcgi", "temp/uwsgi", "temp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site_config)
    main = prefix / "nginx.conf"
    main.write_text(
        f"""# Written by tools/local_stack.py for the local stack; not the system nginx.
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/temp/client;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/site.conf;
}}
"""
    )
    return main


def check_nginx_config(main_config: Path, prefix: Path) -> None:
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(prefix), "-c", str(main_config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"nginx rejected {main_config}:\n{result.stderr.strip()}")


def start_nginx(prefix: Path, site_config: str, url: str) -> Service:
    """Run nginx in the foreground (its own process group) with a private prefix."""
    main = write_nginx_main_config(prefix, site_config)
    check_nginx_config(main, prefix)
    argv = [nginx_binary(), "-p", str(prefix), "-c", str(main), "-g", "daemon off;"]
    return start_process("nginx", argv, prefix / "logs" / "nginx.out", url)


def wait_until(
    service: Service,
    ready: Callable[[], bool],
    timeout: float,
    on_tick: Callable[[float], None] | None = None,
    interval: float = 0.5,
) -> float:
    """Poll `ready` until it is true; raise StackError with the log tail if the process
    exits or `timeout` passes. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if service.process.poll() is not None:
            raise StackError(
                f"{service.name} exited with status {service.process.returncode} while starting;"
                f" last lines of {service.log_path}:\n{service.log_tail()}"
            )
        if ready():
            return elapsed
        if elapsed > timeout:
            raise StackError(
                f"{service.name} was not ready after {timeout:.0f} s; last lines of"
                f" {service.log_path}:\n{service.log_tail()}"
            )
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(interval)


def http_ok(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> bool:
    try:
        response = httpx.get(url, headers=dict(headers or {}), timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def vllm_serves(base_url: str, model: str) -> bool:
    """True once vLLM lists `model` on /v1/models, i.e. it can answer requests."""
    try:
        response = httpx.get(f"{base_url}/v1/models", timeout=2.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    return any(entry.get("id") == model for entry in response.json().get("data", []))


def metric_value(metrics_text: str, name: str) -> float:
    """Sum of every sample of Prometheus metric `name` (all label sets)."""
    total = 0.0
    found = False
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if sample == name or sample.startswith(name + "{"):
            total += float(value)
            found = True
    if not found:
        raise KeyError(f"metric {name} not found")
    return total


@dataclass
class Stack:
    """Services started together; `stop()` ends them in reverse order."""

    services: list[Service] = field(default_factory=list)

    def add(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:
        yield stack
    finally:
        stack.stop()
