"""The instance's stack on this machine: real vLLM (CPU) and the proxy (NGINX: nginx.py).

Shared by `make demo` (tools/demo.py), the integration tests (tests/integration/) and the
benchmark (tools/bench/bench_vllm.py). Everything listens on 127.0.0.1; processes.py starts
and stops each service by its PID.

The vLLM environment and the models are made by tools/prepare/50-vllm.sh; the paths below
are the ones it writes.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from testkit.cache import cache_dir
from testkit.processes import Service, StackError, start_process

ROOT = Path(__file__).resolve().parent.parent
CHAT_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"
# SmolLM2 allows 8192; 2048 keeps vLLM's KV cache reservation small on a laptop.
CHAT_MAX_MODEL_LEN = 2048
PREPARE_HINT = "run `bash tools/prepare.sh demo` (or `make demo`) to set it up"


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


def generate_api_key() -> str:
    return "sk-local-" + secrets.token_urlsafe(24)


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
    """Start `python -m inference_proxy` (this interpreter) on 127.0.0.1:`port`; without
    `api_keys` it serves without auth (PROXY_AUTH_DISABLED: the proxy refuses to start
    with no key otherwise)."""
    env = {
        "PROXY_UPSTREAM_URL": upstream_url,
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "PROXY_API_KEYS": ",".join(api_keys),
        "PROXY_AUTH_DISABLED": "false" if api_keys else "true",
        "PROXY_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "inference_proxy"]
    return start_process("proxy", argv, log_path, f"http://127.0.0.1:{port}", env=env)


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


