"""tools/instance_sim.py, the contract other checks drive: `up` prints exactly one JSON line
once /ready answers through NGINX, `exec` runs inside, `down` removes what `up` started
(containers, services, veth, loop device, state) and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.instance, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def sim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "instance_sim.py"), *args],
                          capture_output=True, text=True, env=env, timeout=900, check=False)


def test_up_prints_one_json_line_exec_runs_inside_down_removes_everything(
        instance_machine: None, tmp_path: Path) -> None:
    env = {**os.environ, "EC2I_INSTANCES": str(tmp_path)}
    up = sim("up", "--name", "cli-sim", env=env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        lines = up.stdout.splitlines()
        assert len(lines) == 1, up.stdout
        summary = json.loads(lines[0])
        assert set(summary) == {"endpoint", "api_key", "model", "name"}
        assert summary["name"] == "cli-sim"
        ready = httpx.get(f"{summary['endpoint']}/ready", timeout=10)
        assert ready.status_code == 200 and summary["model"] in ready.text
        models = httpx.get(f"{summary['endpoint']}/v1/models", timeout=10,
                           headers={"Authorization": f"Bearer {summary['api_key']}"})
        assert models.status_code == 200
        inside = sim("exec", "--", "systemctl", "is-active", "vllm.service", env=env)
        assert (inside.returncode, inside.stdout.strip()) == (0, "active")
        failing = sim("exec", "--", "false", env=env)
        assert failing.returncode == 1
        state = json.loads((tmp_path / "cli-sim" / "state.json").read_text())
    finally:
        down = sim("down", env=env)
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "cli-sim").exists()
    for container in [state["sidecar"], *state["containers"]]:
        gone = subprocess.run(["docker", "inspect", container], capture_output=True, check=False)
        assert gone.returncode != 0, f"container {container} is still there"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert state["host_veth"] not in links.stdout
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    assert "cli-sim" not in loops.stdout
    # The services `up` left running (moto, IMDS, registries) were stopped by their PIDs.
    deadline = time.monotonic() + 10
    alive = dict(state["services"])
    while alive and time.monotonic() < deadline:
        alive = {name: pid for name, pid in alive.items() if Path(f"/proc/{pid}").exists()}
        time.sleep(0.2)
    assert not alive, f"still running: {alive}"
