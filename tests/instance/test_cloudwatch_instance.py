"""CloudWatch from the booted CPU deployment (its logs go to CloudWatch; moto answers):
dockerd's own awslogs driver sends the containers' output to the deployment's log group by
AWS's endpoint name (testkit/instance/aws_front.py) while `docker logs` keeps working, the
CloudWatch agent is installed from its regional bucket as on Ubuntu (the harness serves the
stand-in, testkit/instance/cloudwatch_agent.py) and ships NGINX's and the boot's logs,
the publisher puts the endpoint's health and the proxy's numbers into the deployment's
namespace, and the readiness tool answers for the booted endpoint. What the real agent and
real CloudWatch would do beyond that is docs/OPERATIONS.md's "What the tests cannot show"."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from instance_checks import assert_serves, wait_until

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=2)]

ROOT = Path(__file__).resolve().parents[2]
GROUP = "/ec2-inference/llm-sim"
NAMESPACE = "ec2-inference/llm-sim"


def messages(instance: harness.Instance, stream: str) -> list[str]:
    logs = instance.aws("logs")
    try:
        events = logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                     startFromHead=True)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [event["message"] for event in events]


def test_container_logs_reach_the_log_group_and_docker_logs_still_works(
        cpu_instance: harness.Instance) -> None:
    instance_id = cpu_instance.state.ec2_instance_id
    request_id = f"cloudwatch-{secrets.token_hex(4)}"
    key = cpu_instance.api_keys()[0]
    response = httpx.get(f"{cpu_instance.endpoint}/v1/models", timeout=10, headers={
        "Authorization": f"Bearer {key}", "X-Request-ID": request_id})
    assert response.status_code == 200
    # dockerd's awslogs driver, one stream per instance and container.
    wait_until("the proxy's access line in CloudWatch Logs", lambda: any(
        request_id in m for m in messages(cpu_instance, f"{instance_id}/inference-proxy")),
        timeout=60)
    assert messages(cpu_instance, f"{instance_id}/vllm"), "vLLM's output is not in the group"
    driver = cpu_instance.exec("docker", "inspect", "--format", "{{.HostConfig.LogConfig.Type}}",
                               "inference-proxy").stdout.strip()
    assert driver == "awslogs"
    # Dual logging: Docker's local cache still answers `docker logs`.
    local = cpu_instance.exec("docker", "logs", "inference-proxy")
    assert request_id in local.stdout + local.stderr
    # The agent: NGINX's access log and the boot's log, one stream each per instance.
    wait_until("NGINX's access line in CloudWatch Logs", lambda: any(
        "GET /v1/models" in m for m in messages(cpu_instance, f"{instance_id}/nginx-access")),
        timeout=60)
    assert any("bootstrap start" in m for m in messages(cpu_instance, f"{instance_id}/user-data"))


def test_the_agent_is_installed_from_its_regional_bucket_and_runs(
        cpu_instance: harness.Instance) -> None:
    log = cpu_instance.exec("cat", "/var/log/user-data.log").stdout
    assert ("installing the CloudWatch agent from https://amazoncloudwatch-agent-us-east-1"
            ".s3.us-east-1.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb") in log
    status = cpu_instance.exec("/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl",
                               "-a", "status").stdout
    assert '"status": "running"' in status
    installed = cpu_instance.exec("cat", "/var/lib/inference/amazon-cloudwatch-agent.json").stdout
    assert installed == cpu_instance.files().files["amazon-cloudwatch-agent.json"]


def statistic(instance: harness.Instance, name: str, stat: str,
              dimensions: list[dict[str, str]] | None = None) -> list[float]:
    cloudwatch = instance.aws("cloudwatch")
    now = time.time()
    answer: dict[str, Any] = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=name, Dimensions=dimensions or [],
        StartTime=now - 3600, EndTime=now + 60, Period=60, Statistics=[stat])
    return [point[stat] for point in answer["Datapoints"]]


def test_health_and_the_proxys_numbers_reach_the_deployments_namespace(
        cpu_instance: harness.Instance) -> None:
    enabled = cpu_instance.exec("systemctl", "is-enabled", "inference-metrics.timer").stdout
    assert enabled.strip() == "enabled"
    # Two runs of what the timer runs, with traffic between them.
    cpu_instance.exec("systemctl", "start", "inference-metrics.service")
    assert_serves(cpu_instance, cpu_instance.api_keys()[0])
    cpu_instance.exec("systemctl", "start", "inference-metrics.service")
    journal = cpu_instance.exec("journalctl", "-u", "inference-metrics", "--no-pager").stdout
    assert f"to {NAMESPACE} (ready: True)" in journal, journal
    names = {m["MetricName"] for m in
             cpu_instance.aws("cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert {"Healthy", "Requests", "Errors4xx", "Errors5xx", "InFlightRequests",
            "CompletionTokens", "RequestDuration", "TimeToFirstToken"} <= names, names
    assert max(statistic(cpu_instance, "Healthy", "Minimum")) == 1
    # assert_serves: a completion and a stream of 5 tokens each.
    assert sum(statistic(cpu_instance, "Requests", "Sum")) >= 2
    assert sum(statistic(cpu_instance, "CompletionTokens", "Sum")) >= 10
    # The agent's host metrics, and the per-instance aggregate the disk alarm reads.
    host = [{"Name": "InstanceId", "Value": cpu_instance.state.ec2_instance_id or ""}]
    wait_until("the agent's disk aggregate", lambda: bool(
        statistic(cpu_instance, "disk_used_percent", "Maximum", host)), timeout=90)
    assert "mem_used_percent" in {m["MetricName"] for m in cpu_instance.aws(
        "cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]}


def test_the_readiness_tool_returns_once_the_booted_endpoint_answers(
        cpu_instance: harness.Instance) -> None:
    # As Terraform's local-exec runs it: -S, the standard library only.
    gate = subprocess.run([sys.executable, "-S", str(ROOT / "tools" / "wait_ready.py"),
                           "--timeout", "60", "--url", f"{cpu_instance.endpoint}/ready"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "answered HTTP 200" in gate.stdout
