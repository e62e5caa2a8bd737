"""One instance of the autoscaling mode, booted behind nothing from what `terraform apply`
rendered for deployment_mode = "autoscaling" (the test client plays the load balancer: plain
HTTP to NGINX on port 80, as the target group's health check and listener do): no certbot,
the model synced from the S3 model cache before vLLM starts and loaded from the volume, the
in-flight requests published to CloudWatch for the scaling policy, and /ready, /health and
the API served as in the instance mode."""

from __future__ import annotations

import datetime

import pytest
from instance_checks import Boot, assert_serves

from testkit.instance import harness

pytestmark = [pytest.mark.instance, pytest.mark.slow(minutes=2)]


@pytest.fixture(scope="module")
def member(boot: Boot) -> harness.Instance:
    return boot("autoscaling")


def test_boots_behind_the_load_balancer_without_certbot(member: harness.Instance) -> None:
    failed = member.exec("systemctl", "--failed", "--plain", "--no-legend").stdout
    assert failed.strip() == "", failed
    assert_serves(member, member.api_keys()[0])
    with member.http_client() as client:
        # What the target group asks: /ready on port 80, answered by the proxy through NGINX.
        assert client.get(f"{member.endpoint}/ready").status_code == 200
        assert client.get(f"{member.endpoint}/metrics").status_code == 404, "kept on the box"
    units = member.exec("systemctl", "list-unit-files", "--plain", "--no-legend").stdout
    assert "inference-cert-renew" not in units
    assert "certbot" not in member.exec("cat", "/var/log/user-data.log").stdout
    check = member.exec("/usr/local/bin/check-services.sh", check=False)
    assert check.returncode == 0, check.stdout


def test_the_model_comes_from_the_s3_cache_and_loads_from_the_volume(
        member: harness.Instance) -> None:
    log = member.exec("cat", "/var/log/user-data.log").stdout
    assert "step setup-model-cache: done" in log
    model = member.summary()["model"]
    cached = member.exec("ls", f"/opt/models/model-cache/{model}").stdout.split()
    assert sorted(cached) == ["config.json", "model.safetensors"]
    argv = member.exec("docker", "inspect", "--format", "{{json .Args}}", "vllm").stdout
    assert f'"--model","/models/model-cache/{model}","--served-model-name","{model}"' in argv
    # Clients still ask for the model by its id.
    with member.http_client() as client:
        ready = client.get(f"{member.endpoint}/ready").json()
    assert ready["models"] == [model]


def test_requests_in_flight_reach_cloudwatch_for_the_scaling_policy(
        member: harness.Instance) -> None:
    # One publisher (modules/monitoring's), no second one for the scaling metric.
    units = member.exec("systemctl", "list-unit-files", "--plain", "--no-legend").stdout
    assert "inference-load-metric" not in units
    timer = member.exec("systemctl", "is-enabled", "inference-metrics.timer").stdout
    assert timer.strip() == "enabled"
    # What the timer runs every minute, once now, on a ready member.
    member.exec("systemctl", "start", "inference-metrics.service")
    cloudwatch = member.aws("cloudwatch")  # moto, with the harness's administrator keys
    namespace = "ec2-inference/llm-sim"
    dimensions = [{"Name": "AutoScalingGroupName", "Value": "llm-sim"}]
    metrics = cloudwatch.list_metrics(Namespace=namespace, MetricName="InFlightRequests",
                                      Dimensions=dimensions)["Metrics"]
    assert [m["Dimensions"] for m in metrics] == [dimensions]
    # The value moto recorded: the proxy's gauge, idle here.
    now = datetime.datetime.now(datetime.UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace, MetricName="InFlightRequests", Dimensions=dimensions,
        StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=1),
        Period=60, Statistics=["Maximum", "SampleCount"])["Datapoints"]
    assert points and max(p["Maximum"] for p in points) == 0
    journal = member.exec("journalctl", "-u", "inference-metrics.service", "--no-pager").stdout
    assert "InFlightRequests AutoScalingGroupName=llm-sim" in journal, journal
