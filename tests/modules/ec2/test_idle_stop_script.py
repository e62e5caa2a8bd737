"""The idle stop's decision, executed: the rendered idle-stop.sh (the bytes the plan uploads)
runs unmodified in a sandbox: a private mount namespace with the rendered scripts at
/opt/inference/scripts and a state directory at /var/lib/inference, a private network
namespace whose 127.0.0.1:<app_port>/metrics is a stub serving what the proxy's Prometheus
client would (the gauges set to the case's values), optionally a PID namespace (a boot that
just began), and `shutdown` on PATH recording its call. The clock is the real one; the
times in the metric, the setup marker and the state file are set relative to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from testkit.support import need_tool

HERE = Path(__file__).resolve().parent
MODULE = "modules/ec2"
THRESHOLD_MINUTES = 5

SANDBOX = r"""
set -euo pipefail
scripts=$1 state=$2 www=$3 stubs=$4
ip link set lo up
mount -t tmpfs tmpfs /opt
mkdir -p /opt/inference/scripts
mount --bind "$scripts" /opt/inference/scripts
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/inference
mount --bind "$state" /var/lib/inference
if [ -n "${HOLD_SETUP_LOCK:-}" ]; then  # main-setup running: it holds the lock, as here
  exec 8>>/var/lib/inference/setup.lock
  flock 8
fi
if [ -n "$www" ]; then
  python3 -m http.server "$APP_PORT" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
  server=$!
  trap 'kill $server' EXIT
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$APP_PORT/metrics" && break
    sleep 0.05
  done
fi
PATH="$stubs:$PATH" /opt/inference/scripts/idle-stop.sh
"""


@dataclass
class Outcome:
    stopped: str | None  # the arguments shutdown was called with, or None
    log: str
    seen: int | None  # what the script remembers as the last activity


@pytest.fixture(scope="module")
def rendered(plan_summary: Any) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (mount and network namespaces)")
    for tool in ("unshare", "ip", "curl", "python3"):
        need_tool(tool)
    summary = plan_summary(MODULE, tf_var_files=[str(HERE / "common.tfvars"),
                                                 str(HERE / "cpu_no_https.tfvars")],
                           idle_stop_minutes=THRESHOLD_MINUTES)
    files = {key.removeprefix("scripts/"): value
             for key, value in summary.outputs["scripts"].items()}
    assert "idle-stop.sh" in files
    return files


def metrics_text(last_request: float, in_flight: int) -> bytes:
    """What the proxy's /metrics says, in prometheus_client's own exposition format."""
    registry = CollectorRegistry()
    Gauge("proxy_in_flight_requests", "Requests being handled now.",
          registry=registry).set(in_flight)
    Gauge("proxy_last_request_timestamp_seconds", "Unix time of the last API request.",
          registry=registry).set(last_request)
    return generate_latest(registry)


def run(rendered: dict[str, str], tmp: Path, *, last_request_ago: float | None,
        in_flight: int = 1, setup_done_ago: float | None = 3600,
        seen_ago: float | None = None, fresh_boot: bool = False,
        answers: bool = True, setup_running: bool = False) -> Outcome:
    """One run of idle-stop.sh. `last_request_ago`: seconds since the last API request (None:
    none since the proxy started, the gauge is 0); `in_flight` counts the scrape itself;
    `setup_done_ago`: None for a first boot whose main-setup has not finished."""
    now = time.time()
    scripts, state, www, stubs = (tmp / d for d in ("scripts", "state", "www", "stubs"))
    for directory in (scripts, state, www, stubs):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    for name, content in rendered.items():
        (scripts / name).write_text(content)
        (scripts / name).chmod(0o755)
    if setup_done_ago is not None:
        (state / "setup.done").write_text("done\n")
        os.utime(state / "setup.done", (now - setup_done_ago, now - setup_done_ago))
    if seen_ago is not None:
        (state / "idle-stop.last-activity").write_text(f"{int(now - seen_ago)}\n")
    last = 0.0 if last_request_ago is None else now - last_request_ago
    (www / "metrics").write_bytes(metrics_text(last, in_flight))
    calls = tmp / "shutdown-calls"
    calls.unlink(missing_ok=True)
    (stubs / "shutdown").write_text(f'#!/bin/sh\necho "$*" >>{calls}\n')
    (stubs / "shutdown").chmod(0o755)
    namespaces = ["--mount", "--net"] + (["--pid", "--fork", "--mount-proc"] if fresh_boot else [])
    port = next(line.split("'")[1] for line in rendered["inference.env"].splitlines()
                if line.startswith("APP_PORT="))
    result = subprocess.run(
        ["unshare", *namespaces, "bash", "-c", SANDBOX, "sandbox", str(scripts), str(state),
         str(www) if answers else "", str(stubs)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "APP_PORT": port, "HOLD_SETUP_LOCK": "1" if setup_running else ""})
    assert result.returncode == 0, result.stderr
    seen_file = state / "idle-stop.last-activity"
    return Outcome(stopped=calls.read_text().strip() if calls.exists() else None,
                   log=result.stderr,
                   seen=int(seen_file.read_text()) if seen_file.exists() else None)


def test_stops_after_the_threshold_without_a_request(rendered: dict[str, str],
                                                     tmp_path: Path) -> None:
    outcome = run(rendered, tmp_path, last_request_ago=6.5 * 60)
    assert outcome.stopped is not None, outcome.log
    assert outcome.stopped.startswith("--poweroff now No API request for 6 minutes")
    assert f"idle_stop_minutes = {THRESHOLD_MINUTES}): stopping the instance" in outcome.log


def test_does_not_stop_before_the_threshold(rendered: dict[str, str], tmp_path: Path) -> None:
    outcome = run(rendered, tmp_path, last_request_ago=4.5 * 60)
    assert outcome.stopped is None, outcome.log
    # Past half the threshold it says when the stop will come.
    assert "idle for 4 min: the instance stops after 5 min" in outcome.log


def test_never_stops_with_a_request_in_flight(rendered: dict[str, str], tmp_path: Path) -> None:
    # An hour since the last request *arrived*, but one is still streaming (the scrape is
    # the second request in flight).
    outcome = run(rendered, tmp_path, last_request_ago=3600, in_flight=2)
    assert outcome.stopped is None, outcome.log
    assert outcome.seen is not None and time.time() - outcome.seen < 30
    # The next run, the stream over and the gauge not moved: still not idle, since the
    # request was seen in flight a moment ago.
    later = run(rendered, tmp_path, last_request_ago=3600, seen_ago=60)
    assert later.stopped is None, later.log


def test_never_stops_during_the_first_boot(rendered: dict[str, str], tmp_path: Path) -> None:
    outcome = run(rendered, tmp_path, last_request_ago=None, setup_done_ago=None)
    assert outcome.stopped is None
    assert "main-setup has not finished (first boot): not stopping" in outcome.log


def test_never_stops_while_main_setup_runs_again(rendered: dict[str, str],
                                                tmp_path: Path) -> None:
    # A later boot (or an update) runs main-setup again: it holds the setup lock.
    outcome = run(rendered, tmp_path, last_request_ago=3600, setup_running=True)
    assert outcome.stopped is None, outcome.log
    assert "main-setup is running: not stopping" in outcome.log


def test_counts_from_the_last_setup(rendered: dict[str, str], tmp_path: Path) -> None:
    outcome = run(rendered, tmp_path, last_request_ago=None, setup_done_ago=60)
    assert outcome.stopped is None, outcome.log


def test_counts_from_the_boot(rendered: dict[str, str], tmp_path: Path) -> None:
    # PID 1 of a fresh PID namespace started a moment ago: this boot has just begun.
    outcome = run(rendered, tmp_path, last_request_ago=None, fresh_boot=True)
    assert outcome.stopped is None, outcome.log
    # The same state on a machine up for long (this one's PID 1) stops.
    assert run(rendered, tmp_path, last_request_ago=None).stopped is not None


def test_a_restarted_proxy_does_not_forget_the_last_request(rendered: dict[str, str],
                                                            tmp_path: Path) -> None:
    # The proxy restarted (its gauge is 0 again) two minutes after a request it served.
    outcome = run(rendered, tmp_path, last_request_ago=None, seen_ago=120)
    assert outcome.stopped is None, outcome.log


def test_does_not_stop_when_the_proxy_does_not_answer(rendered: dict[str, str],
                                                      tmp_path: Path) -> None:
    outcome = run(rendered, tmp_path, last_request_ago=3600, answers=False)
    assert outcome.stopped is None
    assert "the proxy's /metrics does not answer" in outcome.log
