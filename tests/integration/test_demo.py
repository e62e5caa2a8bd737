"""`make demo` as a newcomer runs it: tools/demo.py starts vLLM, the proxy and NGINX, prints
a real answer obtained through NGINX and the commands to try next; `--stop` ends it all.
Run with --detach on free ports and a private state directory, so that a developer's own
demo (in .run/demo on the default ports) is left alone."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from vllm_stack import ROOT, local_stack

from testkit.ports import free_port, port_in_use
from testkit.processes import StackError

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

DEMO = ROOT / "tools" / "demo.py"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=800, check=False
    )


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_demo_answers_through_nginx_and_stops_everything(tmp_path: Path) -> None:
    try:
        local_stack.check_prepared()
    except StackError as error:
        pytest.skip(str(error))
    ports = [str(free_port()) for _ in range(3)]
    state = tmp_path / "demo"
    common = ["--state-dir", str(state)]
    started = run_demo(
        "--detach",
        "--vllm-port",
        ports[0],
        "--proxy-port",
        ports[1],
        "--http-port",
        ports[2],
        *common,
    )
    pids = json.loads((state / "pids.json").read_text()) if (state / "pids.json").exists() else {}
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        answer = re.search(r"^A: (.+?)\s+\(", started.stdout, re.MULTILINE)
        assert answer and len(answer.group(1).split()) >= 3, started.stdout
        api_key = (state / "api-key").read_text().strip()
        endpoint = f"http://127.0.0.1:{ports[2]}"
        assert f"Endpoint: {endpoint}/v1" in started.stdout
        assert api_key in started.stdout
        assert set(pids) == {"vllm", "proxy", "nginx"}

        # The printed endpoint and key work, and the key is required.
        models = httpx.get(
            f"{endpoint}/v1/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )
        assert models.status_code == 200
        assert models.json()["data"][0]["id"] == local_stack.CHAT_MODEL_NAME
        assert httpx.get(f"{endpoint}/v1/models", timeout=30).status_code == 401

        # A second start while it runs is refused with a pointer to demo-stop.
        again = run_demo("--detach", *common)
        assert again.returncode == 1 and "demo-stop" in again.stderr
    finally:
        stopped = run_demo("--stop", *common)
    assert stopped.returncode == 0, stopped.stderr
    assert not any(_alive(pid) for pid in pids.values())
    assert not port_in_use(int(ports[2]))


def test_demo_names_the_taken_port_and_the_way_out(tmp_path: Path) -> None:
    try:
        local_stack.check_prepared()
    except StackError as error:
        pytest.skip(str(error))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_demo(
            "--detach",
            "--http-port",
            str(port),
            "--vllm-port",
            str(free_port()),
            "--proxy-port",
            str(free_port()),
            "--state-dir",
            str(tmp_path / "demo"),
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (http) is already in use" in result.stderr
    assert "--http-port" in result.stderr and "EC2I_DEMO_HTTP_PORT" in result.stderr


def test_demo_says_what_is_missing_on_an_unprepared_machine(tmp_path: Path) -> None:
    empty_cache = tmp_path / "cache"
    empty_cache.mkdir()
    result = subprocess.run(
        [sys.executable, str(DEMO), "--detach", "--state-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "EC2I_CACHE": str(empty_cache)},
    )
    assert result.returncode == 1
    assert str(empty_cache / "vllm" / "venv" / "bin" / "python") in result.stderr
    assert "bash tools/prepare.sh demo" in result.stderr
