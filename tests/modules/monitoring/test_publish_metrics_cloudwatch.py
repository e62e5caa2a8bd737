"""publish-metrics.py executed, as inference-metrics.service runs it: the bytes and the
environment modules/monitoring renders (the autoscaling case's unit names the scaling
policy's metric), run unmodified by python3 in a private network namespace where
127.0.0.1:80 plays NGINX (/ready answers 200 only when the case is ready),
127.0.0.1:<app_port>/metrics plays the proxy (prometheus_client's exposition of the gauge)
and moto plays CloudWatch for the real AWS CLI. What moto recorded is then read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from testkit.support import need_tool

HERE = Path(__file__).resolve().parent
MODULE = "modules/monitoring"
NAMESPACE = "ec2-inference/llm-dev"
APP_PORT = "8080"
MOTO_PORT = 5000

SANDBOX = r"""
set -euo pipefail
www=$1 publisher=$2 state=$3 moto=$4 dump=$5
ip link set lo up
"$moto" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
moto_pid=$!
python3 -m http.server 80 --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
nginx=$!
python3 -m http.server "$APP_PORT" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
proxy=$!
trap 'kill $moto_pid $nginx $proxy' EXIT
for url in "$AWS_ENDPOINT_URL/moto-api/" "http://127.0.0.1:$APP_PORT/metrics" \
  "http://127.0.0.1:80/metrics"; do
  for _ in $(seq 200); do
    curl -fs -o /dev/null "$url" && break
    sleep 0.05
  done
done
python3 "$publisher" --namespace "$NAMESPACE" --state "$state" >&2
"$dump"
"""

DUMP = """
import json, boto3, datetime
cloudwatch = boto3.client("cloudwatch")
now = datetime.datetime.now(datetime.timezone.utc)
found = []
for metric in cloudwatch.list_metrics(Namespace="{namespace}")["Metrics"]:
    points = cloudwatch.get_metric_statistics(
        Namespace=metric["Namespace"], MetricName=metric["MetricName"],
        Dimensions=metric.get("Dimensions", []), StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=1), Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    found.append({{"name": metric["MetricName"],
                  "dimensions": {{d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}},
                  "maximum": max(p["Maximum"] for p in points)}})
print(json.dumps(found))
"""


def rendered_files(plan_summary: Any, case: str) -> dict[str, str]:
    summary = plan_summary(MODULE, tf_var_files=[str(HERE / "common.tfvars"),
                                                 str(HERE / f"{case}.tfvars")])
    return {k.removeprefix("scripts/"): v for k, v in summary.outputs["instance_files"].items()}


def unit_environment(unit: str) -> dict[str, str]:
    """The Environment= settings of a rendered unit (none of ours is quoted)."""
    settings = [line.removeprefix("Environment=").split("=", 1) for line in unit.splitlines()
                if line.startswith("Environment=")]
    return {name: value for name, value in settings}


@pytest.fixture(scope="module")
def rendered(plan_summary: Any) -> dict[str, dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (a network namespace with port 80)")
    for tool in ("unshare", "ip", "curl", "python3", "aws"):
        need_tool(tool)
    return {case: rendered_files(plan_summary, case)
            for case in ("autoscaling_group", "gpu_defaults")}


def metrics_text(in_flight: int) -> bytes:
    """What the proxy's /metrics says about requests in flight (prometheus_client's format)."""
    registry = CollectorRegistry()
    Gauge("proxy_in_flight_requests", "Requests being handled now.",
          registry=registry).set(in_flight)
    return generate_latest(registry)


def publish(files: dict[str, str], tmp: Path, *, ready: bool,
            in_flight: int) -> list[dict[str, Any]]:
    """One run of the publisher; what moto's CloudWatch then holds in the namespace."""
    www, state = tmp / "www", tmp / "state"
    shutil.rmtree(www, ignore_errors=True)
    www.mkdir(parents=True)
    (www / "metrics").write_bytes(metrics_text(in_flight))
    if ready:
        (www / "ready").write_text("ready\n")
    publisher = tmp / "publish-metrics.py"
    publisher.write_text(files["publish-metrics.py"])
    dump = tmp / "dump"
    dump.write_text(f"#!{sys.executable}\n" + DUMP.format(namespace=NAMESPACE))
    dump.chmod(0o755)
    moto = Path(sys.executable).with_name("moto_server")
    unit = unit_environment(files["inference-metrics.service"])
    environment = {
        **os.environ, **{k: v for k, v in unit.items() if k.startswith("LOAD_METRIC_")},
        "APP_PORT": APP_PORT, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "ENABLE_HTTPS": "false", "NAMESPACE": NAMESPACE, "MOTO_PORT": str(MOTO_PORT),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = subprocess.run(
        ["unshare", "--net", "bash", "-c", SANDBOX, "sandbox", str(www), str(publisher),
         str(state / "metrics-state.json"), str(moto), str(dump)],
        capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_a_ready_member_publishes_its_requests_in_flight_for_the_scaling_policy(
        rendered: dict[str, dict[str, str]], tmp_path: Path) -> None:
    # The proxy's gauge counts the /metrics request it is answering: 4 there is 3 API
    # requests in flight, which is what the publisher reports.
    found = publish(rendered["autoscaling_group"], tmp_path, ready=True, in_flight=4)
    # The series the target tracking policy averages (the group's name as its dimension),
    # next to the deployment-wide ones the dashboard and alarms read.
    assert {"name": "InFlightRequests", "dimensions": {"AutoScalingGroupName": "llm-dev"},
            "maximum": 3.0} in found
    assert {"name": "InFlightRequests", "dimensions": {}, "maximum": 3.0} in found
    assert {"name": "Healthy", "dimensions": {}, "maximum": 1.0} in found


def test_a_loading_member_leaves_the_scaling_policys_average_alone(
        rendered: dict[str, dict[str, str]], tmp_path: Path) -> None:
    found = publish(rendered["autoscaling_group"], tmp_path, ready=False, in_flight=0)
    assert [m for m in found if m["dimensions"]] == [], found
    # Its own gauge still goes to the deployment's numbers; Healthy waits for a first ready.
    assert {m["name"] for m in found} == {"InFlightRequests"}


def test_the_single_instance_publishes_no_scaling_series(
        rendered: dict[str, dict[str, str]], tmp_path: Path) -> None:
    assert "LOAD_METRIC_NAME" not in rendered["gpu_defaults"]["inference-metrics.service"]
    found = publish(rendered["gpu_defaults"], tmp_path, ready=True, in_flight=2)
    assert sorted(m["name"] for m in found) == ["Healthy", "InFlightRequests"]
    assert all(m["dimensions"] == {} for m in found)


def test_a_half_named_scaling_metric_is_refused_with_what_is_missing(
        rendered: dict[str, dict[str, str]], tmp_path: Path) -> None:
    publisher = tmp_path / "publish-metrics.py"
    publisher.write_text(rendered["autoscaling_group"]["publish-metrics.py"])
    for settings, message in (
        ({"LOAD_METRIC_NAME": "InFlightRequests"},
         "LOAD_METRIC_NAMESPACE, LOAD_METRIC_NAME, LOAD_METRIC_DIMENSIONS come together"),
        ({"LOAD_METRIC_NAMESPACE": NAMESPACE, "LOAD_METRIC_NAME": "InFlightRequests",
          "LOAD_METRIC_DIMENSIONS": "AutoScalingGroupName"},
         "LOAD_METRIC_DIMENSIONS must be Name=Value,...: 'AutoScalingGroupName'"),
    ):
        result = subprocess.run(
            ["python3", str(publisher), "--namespace", NAMESPACE, "--state",
             str(tmp_path / "state.json")], capture_output=True, text=True, timeout=30,
            env={"PATH": os.environ["PATH"], "APP_PORT": APP_PORT, "AWS_REGION": "us-east-1",
                 **settings})
        assert result.returncode == 2, result
        assert message in result.stderr
        assert not (tmp_path / "state.json").exists()
