"""modules/monitoring planned with real Terraform: the instance policy statement by statement,
each alarm's metric and actions, the dashboard's widgets, and the files it renders for the
instance (Docker's log options, the CloudWatch agent's configuration, the publisher), in
the instance mode and in the autoscaling mode (case autoscaling_group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.instance import cloudwatch_agent

HERE = Path(__file__).resolve().parent
MODULE = "modules/monitoring"
CASES = ("gpu_defaults", "cpu_email_kms", "logs_only", "all_off", "autoscaling_group")
GROUP = "/ec2-inference/llm-dev"
GROUP_ARN = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}"
NAMESPACE = "ec2-inference/llm-dev"
INSTANCE = "i-0123456789abcdef0"
GROUP_NAME = "llm-dev"


@pytest.fixture(scope="module")
def plans(plan_summary: Any) -> dict[str, Any]:
    return {case: plan_summary(MODULE, tf_var_files=[str(HERE / "common.tfvars"),
                                                     str(HERE / f"{case}.tfvars")])
            for case in CASES}


def files(plan: Any) -> dict[str, str]:
    return {k.removeprefix("scripts/"): v for k, v in plan.outputs["instance_files"].items()}


def statements(plan: Any) -> dict[str, dict[str, Any]]:
    policy = plan.values["aws_iam_role_policy.instance[0]"]["policy"]
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def alarms(plan: Any) -> dict[str, dict[str, Any]]:
    return {a.split(".")[1].split("[")[0]: v for a, v in plan.values.items()
            if a.startswith("aws_cloudwatch_metric_alarm.")}


# --- the instance's permissions ---------------------------------------------------------


def test_logs_go_to_the_deployments_group_only(plans: dict[str, Any]) -> None:
    policy = statements(plans["logs_only"])
    assert list(policy) == ["WriteDeploymentLogs"]
    assert policy["WriteDeploymentLogs"]["Effect"] == "Allow"
    # Streams and events only: the group is Terraform's (no CreateLogGroup, no retention or
    # deletion), and nothing outside it.
    assert as_set(policy["WriteDeploymentLogs"]["Action"]) == {
        "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"}
    assert as_set(policy["WriteDeploymentLogs"]["Resource"]) == {GROUP_ARN, f"{GROUP_ARN}:*"}
    assert "Condition" not in policy["WriteDeploymentLogs"]


def test_metrics_go_to_the_deployments_namespace_only(plans: dict[str, Any]) -> None:
    policy = statements(plans["gpu_defaults"])
    assert list(policy) == ["WriteDeploymentLogs", "PublishDeploymentMetrics"]
    metrics = policy["PublishDeploymentMetrics"]
    # PutMetricData has no resource type ("*" is the only valid resource); the namespace
    # condition is the scope AWS offers.
    assert (metrics["Effect"], metrics["Action"], metrics["Resource"]) == (
        "Allow", "cloudwatch:PutMetricData", "*")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    assert plans["gpu_defaults"].values["aws_iam_role_policy.instance[0]"]["role"] == \
        "llm-dev-20260101000000000000000001"


def test_nothing_on_means_no_policy_no_group_no_alarm(plans: dict[str, Any]) -> None:
    assert plans["all_off"].counts.get("resources", 0) == 0
    assert set(files(plans["all_off"])) == {"docker-daemon.json", "setup-monitoring.sh"}
    assert plans["all_off"].outputs.get("dashboard_url") is None
    assert plans["all_off"].outputs["alarm_names"] == []


# --- log group ----------------------------------------------------------------------------


def test_one_log_group_with_retention_and_an_optional_key(plans: dict[str, Any]) -> None:
    group = plans["gpu_defaults"].values["aws_cloudwatch_log_group.this[0]"]
    assert (group["name"], group["retention_in_days"]) == (GROUP, 30)
    assert group.get("kms_key_id") is None
    encrypted = plans["cpu_email_kms"].values["aws_cloudwatch_log_group.this[0]"]
    assert encrypted["retention_in_days"] == 90
    assert encrypted["kms_key_id"].startswith("arn:aws:kms:us-east-1:123456789012:key/")


# --- alarms -----------------------------------------------------------------------------


def test_status_checks_recover_or_notify_by_instance_type_and_reboot(
        plans: dict[str, Any]) -> None:
    cpu = alarms(plans["cpu_email_kms"])
    topic = plans["cpu_email_kms"].values["aws_sns_topic.alarms[0]"]
    assert topic["name"] == "llm-dev-alarms"
    subscription = plans["cpu_email_kms"].values["aws_sns_topic_subscription.email[0]"]
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "ops@example.com")
    system = cpu["system_status"]
    assert (system["namespace"], system["metric_name"], system["dimensions"]) == (
        "AWS/EC2", "StatusCheckFailed_System", {"InstanceId": INSTANCE})
    assert (system["statistic"], system["comparison_operator"], system["threshold"]) == (
        "Maximum", "GreaterThanOrEqualToThreshold", 1)
    # c7i has no instance store: EC2 recovers it onto new hardware (and the topic is told).
    assert "arn:aws:automate:us-east-1:ec2:recover" in system["alarm_actions"]
    assert len(system["alarm_actions"]) == 2
    assert plans["cpu_email_kms"].outputs["system_status_recovers"] is True
    instance = cpu["instance_status"]
    assert instance["metric_name"] == "StatusCheckFailed_Instance"
    assert "arn:aws:automate:us-east-1:ec2:reboot" in instance["alarm_actions"]

    gpu = alarms(plans["gpu_defaults"])
    # g5 has an instance store: EC2 cannot recover it, so the alarm only tells (no topic
    # here: it shows in the console), and the docs say to stop and start it.
    assert gpu["system_status"].get("alarm_actions", []) == []
    assert "stop and start it" in gpu["system_status"]["alarm_description"]
    assert plans["gpu_defaults"].outputs["system_status_recovers"] is False
    assert gpu["instance_status"]["alarm_actions"] == ["arn:aws:automate:us-east-1:ec2:reboot"]


def test_endpoint_unhealthy_for_n_minutes_from_the_published_metric(
        plans: dict[str, Any]) -> None:
    for case, minutes in (("gpu_defaults", 5), ("cpu_email_kms", 10)):
        unhealthy = alarms(plans[case])["unhealthy"]
        assert (unhealthy["namespace"], unhealthy["metric_name"]) == (NAMESPACE, "Healthy")
        assert (unhealthy["statistic"], unhealthy["period"]) == ("Minimum", 60)
        assert unhealthy["evaluation_periods"] == unhealthy["datapoints_to_alarm"] == minutes
        assert (unhealthy["comparison_operator"], unhealthy["threshold"]) == (
            "LessThanThreshold", 1)
        # A stopped instance publishes nothing: not an outage of the endpoint.
        assert unhealthy["treat_missing_data"] == "notBreaching"
        assert not unhealthy.get("dimensions")


def test_disk_above_85_percent_on_the_agents_per_instance_aggregate(
        plans: dict[str, Any]) -> None:
    disk = alarms(plans["gpu_defaults"])["disk"]
    assert (disk["namespace"], disk["metric_name"], disk["dimensions"]) == (
        NAMESPACE, "disk_used_percent", {"InstanceId": INSTANCE})
    assert (disk["statistic"], disk["comparison_operator"], disk["threshold"]) == (
        "Maximum", "GreaterThanThreshold", 85)
    # The metric the alarm reads is one the agent publishes: the aggregate over
    # InstanceId alone (aggregation_dimensions) of the disk plugin's used_percent.
    agent = json.loads(files(plans["gpu_defaults"])["amazon-cloudwatch-agent.json"])
    assert agent["metrics"]["aggregation_dimensions"] == [["InstanceId"]]
    assert agent["metrics"]["namespace"] == NAMESPACE
    assert agent["metrics"]["metrics_collected"]["disk"]["measurement"] == ["used_percent"]


def test_5xx_rate_is_errors_over_requests_with_a_floor(plans: dict[str, Any]) -> None:
    rate = alarms(plans["gpu_defaults"])["server_errors"]
    queries = {q["id"]: q for q in rate["metric_query"]}
    assert queries["rate"]["expression"] == "IF(requests >= 20, 100 * errors / requests, 0)"
    assert queries["rate"]["return_data"] is True
    for query, metric in (("errors", "Errors5xx"), ("requests", "Requests")):
        (definition,) = queries[query]["metric"]
        assert (definition["namespace"], definition["metric_name"], definition["stat"],
                definition["period"]) == (NAMESPACE, metric, "Sum", 300)
    assert (rate["comparison_operator"], rate["threshold"]) == ("GreaterThanThreshold", 5)


def test_every_alarm_notifies_the_topic_when_there_is_one(plans: dict[str, Any]) -> None:
    for name, alarm in alarms(plans["cpu_email_kms"]).items():
        assert any(":sns:" in a or a == "(known after apply)" for a in
                   alarm.get("alarm_actions", [])) or alarm.get("alarm_actions") is None, name
    assert plans["logs_only"].counts.get("aws_sns_topic", 0) == 0
    assert plans["logs_only"].counts.get("aws_cloudwatch_metric_alarm", 0) == 0


# --- dashboard -----------------------------------------------------------------------------


def dashboard(plan: Any) -> list[dict[str, Any]]:
    body = plan.values["aws_cloudwatch_dashboard.this[0]"]["dashboard_body"]
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return widgets


def test_dashboard_shows_traffic_latency_tokens_host_gpus_alarms_and_errors(
        plans: dict[str, Any]) -> None:
    widgets = dashboard(plans["gpu_defaults"])
    titles = [w["properties"]["title"] for w in widgets]
    assert titles == [
        "Requests per minute (API routes)", "Request duration (s)",
        "Time to first token, streams (s)", "Tokens per second", "Requests in flight",
        "Healthy: /ready through NGINX (1 yes, 0 no)", "Disk used, fullest file system (%)",
        "Memory used (%)", "GPU utilisation, busiest GPU (%)", "GPU memory used, all GPUs (%)",
        "Alarms", "Latest 5xx answers of the proxy"]
    metric_names = {m[1] for w in widgets if w["type"] == "metric"
                    for m in w["properties"]["metrics"] if isinstance(m[0], str)}
    # What publish-metrics.py and the agent publish (the agent prefixes nvidia_smi_).
    assert metric_names == {"Requests", "Errors4xx", "Errors5xx", "RequestDuration",
                            "TimeToFirstToken", "CompletionTokens", "PromptTokens",
                            "InFlightRequests", "Healthy", "disk_used_percent",
                            "mem_used_percent", "nvidia_smi_utilization_gpu",
                            "nvidia_smi_memory_used", "nvidia_smi_memory_total"}
    log = widgets[-1]["properties"]
    assert log["query"].startswith(f"SOURCE '{GROUP}' | filter @logStream like /inference-proxy/")
    # No overlap on the grid.
    cells = [(w["x"], w["y"]) for w in widgets]
    assert len(cells) == len(set(cells))
    cpu = [w["properties"]["title"] for w in dashboard(plans["cpu_email_kms"])]
    assert not [t for t in cpu if "GPU" in t]
    assert plans["gpu_defaults"].outputs["dashboard_url"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/llm-dev")


# --- files for the instance -------------------------------------------------------------


def test_docker_sends_container_logs_to_the_group_without_blocking_and_keeps_a_local_cache(
        plans: dict[str, Any]) -> None:
    daemon = json.loads(files(plans["gpu_defaults"])["docker-daemon.json"])
    assert daemon == {"log-driver": "awslogs", "log-opts": {
        "awslogs-region": "us-east-1", "awslogs-group": GROUP,
        # One stream per instance and container; setup-docker.sh fills in the id.
        "tag": "{instance_id}/{{.Name}}",
        "mode": "non-blocking", "max-buffer-size": "4m",
        "cache-max-size": "20m", "cache-max-file": "5"}}


def test_without_cloudwatch_logs_docker_rotates_its_local_logs(plans: dict[str, Any]) -> None:
    daemon = json.loads(files(plans["all_off"])["docker-daemon.json"])
    assert daemon == {"log-driver": "local", "log-opts": {"max-size": "20m", "max-file": "5"}}


def test_agent_ships_nginx_and_boot_logs_and_collects_host_and_gpu_metrics(
        plans: dict[str, Any]) -> None:
    agent = json.loads(files(plans["gpu_defaults"])["amazon-cloudwatch-agent.json"])
    assert cloudwatch_agent.validate(agent) == []
    assert agent["agent"] == {"metrics_collection_interval": 60, "region": "us-east-1",
                              "omit_hostname": True, "run_as_user": "root"}
    shipped = {f["file_path"]: (f["log_group_name"], f["log_stream_name"])
               for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
    assert shipped == {
        "/var/log/nginx/access.log": (GROUP, "{instance_id}/nginx-access"),
        "/var/log/nginx/error.log": (GROUP, "{instance_id}/nginx-error"),
        "/var/log/user-data.log": (GROUP, "{instance_id}/user-data"),
        "/var/log/inference-recovery.log": (GROUP, "{instance_id}/recovery"),
    }
    metrics = agent["metrics"]
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert set(metrics["metrics_collected"]) == {"mem", "disk", "nvidia_gpu"}
    assert metrics["metrics_collected"]["nvidia_gpu"]["measurement"] == [
        "utilization_gpu", "memory_used", "memory_total"]
    cpu = json.loads(files(plans["cpu_email_kms"])["amazon-cloudwatch-agent.json"])
    assert set(cpu["metrics"]["metrics_collected"]) == {"mem", "disk"}
    logs_only = json.loads(files(plans["logs_only"])["amazon-cloudwatch-agent.json"])
    assert set(logs_only) == {"agent", "logs"}


def test_the_publisher_and_its_timer_come_with_metrics(plans: dict[str, Any]) -> None:
    rendered = files(plans["gpu_defaults"])
    source = (HERE.parents[2] / "modules/monitoring/files/publish_metrics.py").read_text()
    assert rendered["publish-metrics.py"] == source
    service = rendered["inference-metrics.service"]
    assert f"publish-metrics.py --namespace {NAMESPACE}\n" in service
    assert "EnvironmentFile=/opt/inference/scripts/inference.env" in service
    assert "OnUnitActiveSec=1min" in rendered["inference-metrics.timer"]
    assert "systemctl enable --now inference-metrics.timer" in rendered["setup-monitoring.sh"]
    assert "amazon-cloudwatch-agent-ctl" in rendered["setup-monitoring.sh"]
    logs_only = files(plans["logs_only"])
    assert "publish-metrics.py" not in logs_only
    assert "systemctl disable --now inference-metrics.timer" in logs_only["setup-monitoring.sh"]
    off = files(plans["all_off"])["setup-monitoring.sh"]
    assert '"$ctl" -a stop' in off and "fetch-config" not in off


# --- the autoscaling mode ---------------------------------------------------------------


def test_group_members_have_no_status_check_alarms_with_ec2_actions(
        plans: dict[str, Any]) -> None:
    plan = plans["autoscaling_group"]
    found = alarms(plan)
    # The group's ELB health check replaces a broken instance: no recover or reboot action
    # aimed at an instance id that does not exist in this mode.
    assert set(found) == {"unhealthy", "disk", "server_errors"}
    assert not [a for alarm in found.values() for a in alarm.get("alarm_actions", [])
                if ":automate:" in a]
    assert plan.counts.get("data.aws_ec2_instance_type", 0) == 0
    assert plan.outputs["system_status_recovers"] is False
    assert "ELB health check replaces" in found["unhealthy"]["alarm_description"]
    assert plan.outputs["alarm_names"] == [
        "llm-dev-endpoint-unhealthy", "llm-dev-disk-above-85-percent", "llm-dev-5xx-rate"]


def test_group_disk_alarm_and_host_widgets_read_the_agents_group_aggregate(
        plans: dict[str, Any]) -> None:
    disk = alarms(plans["autoscaling_group"])["disk"]
    assert (disk["namespace"], disk["metric_name"], disk["dimensions"], disk["statistic"]) == (
        NAMESPACE, "disk_used_percent", {"AutoScalingGroupName": GROUP_NAME}, "Maximum")
    agent = json.loads(files(plans["autoscaling_group"])["amazon-cloudwatch-agent.json"])
    assert cloudwatch_agent.validate(agent) == []
    # The agent's documented placeholders; the aggregate by the group is what the alarm and
    # the dashboard read, the one by instance says which member it is.
    assert agent["metrics"]["append_dimensions"] == {
        "InstanceId": "${aws:InstanceId}", "AutoScalingGroupName": "${aws:AutoScalingGroupName}"}
    assert agent["metrics"]["aggregation_dimensions"] == [["AutoScalingGroupName"],
                                                          ["InstanceId"]]
    host = {w["properties"]["title"]: w["properties"]["metrics"]
            for w in dashboard(plans["autoscaling_group"]) if w["type"] == "metric"}
    for title, metric in (("Disk used, fullest file system (%)", "disk_used_percent"),
                          ("Memory used (%)", "mem_used_percent"),
                          ("GPU utilisation, busiest GPU (%)", "nvidia_smi_utilization_gpu")):
        assert host[title] == [[NAMESPACE, metric, "AutoScalingGroupName", GROUP_NAME]]
    gpu_memory = [m for m in host["GPU memory used, all GPUs (%)"] if isinstance(m[0], str)]
    assert [m[2:4] for m in gpu_memory] == [["AutoScalingGroupName", GROUP_NAME]] * 2
    assert INSTANCE not in plans["autoscaling_group"].values[
        "aws_cloudwatch_dashboard.this[0]"]["dashboard_body"]


def test_group_members_may_read_their_tags_for_the_agents_group_dimension(
        plans: dict[str, Any]) -> None:
    policy = statements(plans["autoscaling_group"])
    assert list(policy) == ["WriteDeploymentLogs", "PublishDeploymentMetrics", "ReadInstanceTags"]
    tags = policy["ReadInstanceTags"]
    # DescribeTags has no resource type: "*" is the only valid resource.
    assert (tags["Effect"], tags["Action"], tags["Resource"]) == (
        "Allow", "ec2:DescribeTags", "*")
    assert "Condition" not in tags
    assert policy["PublishDeploymentMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_the_publisher_is_told_the_scaling_metric_the_output_names(
        plans: dict[str, Any]) -> None:
    plan = plans["autoscaling_group"]
    metric = plan.outputs["load_metric"]
    assert metric == {"namespace": NAMESPACE, "name": "InFlightRequests",
                      "dimensions": {"AutoScalingGroupName": GROUP_NAME}}
    service = files(plan)["inference-metrics.service"]
    assert f"Environment=LOAD_METRIC_NAMESPACE={NAMESPACE}\n" in service
    assert "Environment=LOAD_METRIC_NAME=InFlightRequests\n" in service
    assert f"Environment=LOAD_METRIC_DIMENSIONS=AutoScalingGroupName={GROUP_NAME}\n" in service
    # The instance mode has no scaling policy; without metrics nothing would publish it.
    assert "LOAD_METRIC" not in files(plans["gpu_defaults"])["inference-metrics.service"]
    for case in ("gpu_defaults", "logs_only", "all_off"):
        assert plans[case].outputs.get("load_metric") is None, case
