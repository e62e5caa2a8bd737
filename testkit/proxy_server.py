"""The real proxy, served by uvicorn on a loopback TCP port, for tests and tools: from a
thread (`ThreadedProxy`: fast to start, shares the caller's logging) or as the
`python -m inference_proxy` subprocess the container runs (`ProxyProcess`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from inference_proxy.app import create_app
from inference_proxy.config import Settings

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-1"
SECOND_KEY = "test-key-2"


def metric_sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample (exactly these labels) in Prometheus text; 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics_text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        metric, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    return 0.0


class ThreadedProxy:
    """The proxy app on uvicorn (uvloop + httptools, as in production) in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=1,
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def client(self, key: str | None = API_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        """Current value of one sample from /metrics (0 when absent)."""
        return metric_sample(httpx.get(self.url + "/metrics").text, name, **labels)


class ProxyProcess:
    """`python -m inference_proxy` as a subprocess; signalled and stopped by its PID."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        full_env = {
            **os.environ,
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": str(self.port),
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inference_proxy"],
            cwd=ROOT / "app",
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 15) -> ProxyProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"proxy exited: {self.process.communicate()[1]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("proxy did not listen in time")

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(number)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def finish(self, timeout: float = 15) -> tuple[int, str]:
        self.terminate()
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err

    def metric(self, name: str, **labels: str) -> float:
        return metric_sample(httpx.get(self.url + "/metrics").text, name, **labels)


def access_lines(caplog: Any, count: int, timeout: float = 5) -> list[dict[str, Any]]:
    """The access log fields of the first `count` requests in pytest's `caplog`; the line
    is written just after the response's last byte, so it may trail the client."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [r.fields for r in caplog.records if r.name == "inference_proxy.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)
