"""The root module with deployment_mode = "autoscaling", planned with real Terraform: the
launch template carries what modules/ec2 renders and its security defaults, the load
balancer refuses API calls over HTTP for exactly the proxy's routes and keeps streams
alive, instances are reachable from the load balancer only, the rendered scripts are the
instance mode's with the load balancer's settings, and inconsistent settings are refused
with a message that says what to do."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from inference_proxy import routes

from testkit import render
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
ROOT_MODULE = "."
LB = "module.load_balancer[0]"
ASG = "module.autoscaling[0]"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(ROOT_MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def plan_error(plan_summary: Any, case: str, **tf_vars: Any) -> str:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, case, **tf_vars)
    return " ".join(str(failure.value).split())


def values_under(summary: Any, prefix: str) -> dict[str, Any]:
    return {a: v for a, v in summary.values.items() if a.startswith(prefix)}


@pytest.fixture(scope="module")
def waf_plan(plan_summary: Any) -> Any:
    return plan(plan_summary, "autoscaling_https_waf")


# --- what every instance is launched with ---------------------------------------------------


def test_launch_template_runs_the_rendered_bootstrap_with_the_security_defaults(
        waf_plan: Any) -> None:
    template = waf_plan.values[f"{ASG}.aws_launch_template.this"]
    # The bootstrap the instance mode would run, rendered once by modules/ec2, then (after
    # its final exec, never run) the manifest's digest: a changed file is a new version.
    user_data = base64.b64decode(template["user_data"]).decode()
    manifest = waf_plan.values['module.scripts_bucket.aws_s3_object.manifest']["content"]
    assert user_data == (f"{waf_plan.outputs['user_data']}"
                         f"# scripts {hashlib.sha256(manifest.encode()).hexdigest()}\n")
    assert waf_plan.outputs["user_data"].rstrip().endswith("exec bash $t/update.sh --boot")
    (metadata,) = template["metadata_options"]
    assert (metadata["http_tokens"], metadata["http_put_response_hop_limit"]) == ("required", 1)
    root, cache = template["block_device_mappings"]
    assert root["device_name"] == "/dev/sda1", "the AMI's root device, looked up"
    assert [m["ebs"][0]["encrypted"] for m in (root, cache)] == ["true", "true"]
    assert cache["device_name"] == "/dev/sdf" and cache["ebs"][0]["delete_on_termination"] == "true"
    (interface,) = template["network_interfaces"]
    assert interface["associate_public_ip_address"] == "true", "public subnets: the way out"
    # The group runs the template's latest version, so a new one is a rolling refresh.
    group = waf_plan.values[f"{ASG}.aws_autoscaling_group.this"]
    assert group["health_check_type"] == "ELB"
    assert group["health_check_grace_period"] == 3600 + 600, "vllm_startup_timeout + 10 min"
    (refresh,) = group["instance_refresh"]
    assert refresh["strategy"] == "Rolling"
    assert (refresh["preferences"][0]["min_healthy_percentage"],
            refresh["preferences"][0]["max_healthy_percentage"]) == (100, 200)


def test_launch_template_reads_the_default_tags_for_instances_and_volumes(
        waf_plan: Any) -> None:
    template = waf_plan.values[f"{ASG}.aws_launch_template.this"]
    for specification in template["tag_specifications"]:
        assert specification["tags"]["Project"] == "ec2-inference", specification
        assert specification["tags"]["Name"] == "llm-dev"
    assert {s["resource_type"] for s in template["tag_specifications"]} == {"instance", "volume"}


# --- the load balancer ------------------------------------------------------------------------


def test_http_refuses_exactly_the_proxys_api_routes_and_redirects_the_rest(
        waf_plan: Any) -> None:
    rules = values_under(waf_plan, f"{LB}.aws_lb_listener_rule.https_required")
    patterns = {value for rule in rules.values() for condition in rule["condition"]
                for value in condition["path_pattern"][0]["values"]}
    assert patterns == {"/v1/*", *routes.NON_V1_ROUTES}
    assert all(len(condition["path_pattern"][0]["values"]) <= 5  # ALB's limit per rule
               for rule in rules.values() for condition in rule["condition"])
    for rule in rules.values():
        (response,) = rule["action"][0]["fixed_response"]
        assert response["status_code"] == "403"
        assert json.loads(response["message_body"])["error"]["code"] == "https_required"
    http = waf_plan.values[f"{LB}.aws_lb_listener.http"]
    assert http["default_action"][0]["redirect"][0]["protocol"] == "HTTPS"


def test_streams_outlive_the_proxys_longest_budget(plan_summary: Any) -> None:
    summary = plan(plan_summary, "autoscaling_https_waf", max_proxy_timeout=1800)
    idle = summary.values[f"{LB}.aws_lb.this"]["idle_timeout"]
    group = summary.values[f"{LB}.aws_lb_target_group.this"]
    # NGINX reads for max + 30 s; the load balancer waits longer, and drains that long.
    assert idle == int(group["deregistration_delay"]) == 1800 + 60
    site = render.artifacts_from_plan(summary.raw)["nginx-site.conf"]
    assert "proxy_read_timeout 1830s;" in site
    assert f"keepalive_timeout {idle + 30}s;" in site


def test_only_the_load_balancer_reaches_the_instances(plan_summary: Any) -> None:
    summary = plan(plan_summary, "private_nat")
    instance_rules = values_under(summary, "module.ec2.aws_vpc_security_group_ingress_rule.")
    assert instance_rules == {}, "no CIDR reaches the instances directly"
    into_instances = summary.values[
        f"{LB}.aws_vpc_security_group_ingress_rule.instances_from_load_balancer"]
    assert (into_instances["from_port"], into_instances.get("cidr_ipv4")) == (80, None)
    public = {(v["from_port"], v["cidr_ipv4"]) for a, v in values_under(
        summary, f"{LB}.aws_vpc_security_group_ingress_rule.").items() if v.get("cidr_ipv4")}
    assert public == {(80, "203.0.113.0/24"), (443, "203.0.113.0/24")}
    # Private subnets, no public address; the load balancer stays in the public ones.
    (interface,) = summary.values[f"{ASG}.aws_launch_template.this"]["network_interfaces"]
    assert interface["associate_public_ip_address"] == "false"


# --- what the instances run ------------------------------------------------------------------


def test_scripts_are_the_instance_modes_with_the_load_balancers_settings(
        waf_plan: Any) -> None:
    files = render.artifacts_from_plan(waf_plan.raw)
    assert not {"setup-certbot.sh", "nginx-acme.conf", "inference-cert-renew.timer"} & set(files)
    env = files["inference.env"]
    assert "ENABLE_HTTPS='false'" in env, "TLS ends at the load balancer"
    assert "DEPLOYMENT_MODE='autoscaling'" in env
    # The requests in flight are publish-metrics.py's (modules/monitoring), told in its unit.
    assert "LOAD_METRIC" not in env
    site = files["nginx-site.conf"]
    assert "listen 80 default_server;" in site and "ssl_certificate" not in site
    assert "set_real_ip_from 10.20.0.0/16;" in site
    assert "proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;" in site
    assert not [name for name in files if "load-metric" in name]
    assert "load-metric" not in files["setup-services.sh"]
    assert files["inference-metrics.timer"].count("OnUnitActiveSec=1min") == 1
    # No in-place updates: the group rolls (a new launch template version) instead of
    # restarting every instance's vLLM at once; update.sh runs only at boot.
    assert "inference-update.timer" not in files
    assert "inference-update.timer" not in files["main-setup.sh"]


def test_model_cache_syncs_before_vllm_and_loads_from_disk(plan_summary: Any) -> None:
    files = render.artifacts_from_plan(plan(plan_summary, "spot_one_instance").raw)
    assert "MODEL_CACHE_BUCKET='my-models'" in files["inference.env"]
    steps = re.search(r"steps\+=\(setup-data-volume\)\s+steps\+=\(setup-model-cache\)",
                      files["main-setup.sh"])
    assert steps, files["main-setup.sh"]
    assert ("--model /models/model-cache/Qwen/Qwen2.5-7B-Instruct "
            "--served-model-name Qwen/Qwen2.5-7B-Instruct") in files["vllm.service"]


def test_scaling_tracks_the_published_in_flight_requests(waf_plan: Any) -> None:
    (tracking,) = waf_plan.values[f"{ASG}.aws_autoscaling_policy.load"][
        "target_tracking_configuration"]
    (metric,) = tracking["customized_metric_specification"]
    group = waf_plan.values[f"{ASG}.aws_autoscaling_group.this"]["name"]
    assert (metric["namespace"], metric["metric_name"], metric["statistic"]) == (
        "ec2-inference/llm-dev", "InFlightRequests", "Average")
    assert metric["metric_dimension"] == [{"name": "AutoScalingGroupName", "value": group}]
    assert tracking["target_value"] == 16
    # What the publisher is told (its unit's environment) is exactly what the policy reads.
    unit = render.artifacts_from_plan(waf_plan.raw)["inference-metrics.service"]
    told = dict(line.removeprefix("Environment=").split("=", 1) for line in unit.splitlines()
                if line.startswith("Environment=LOAD_METRIC_"))
    assert told == {
        "LOAD_METRIC_NAMESPACE": metric["namespace"], "LOAD_METRIC_NAME": metric["metric_name"],
        "LOAD_METRIC_DIMENSIONS": ",".join(f"{d['name']}={d['value']}"
                                           for d in metric["metric_dimension"])}
    # And the instances may publish there: the monitoring policy's namespace condition.
    policy = json.loads(waf_plan.values["module.monitoring.aws_iam_role_policy.instance[0]"][
        "policy"])
    (publish,) = [s for s in policy["Statement"] if s["Sid"] == "PublishDeploymentMetrics"]
    assert publish["Condition"] == {"StringEquals": {"cloudwatch:namespace": metric["namespace"]}}


def test_group_alarms_act_through_the_load_balancer_not_on_an_instance(waf_plan: Any) -> None:
    alarms = {address: values for address, values in waf_plan.values.items()
              if address.startswith("module.monitoring.aws_cloudwatch_metric_alarm.")}
    assert {a.split(".")[-1] for a in alarms} == {"unhealthy[0]", "disk[0]", "server_errors[0]"}
    group = waf_plan.values[f"{ASG}.aws_autoscaling_group.this"]["name"]
    assert alarms["module.monitoring.aws_cloudwatch_metric_alarm.disk[0]"]["dimensions"] == {
        "AutoScalingGroupName": group}
    assert waf_plan.values[f"{ASG}.aws_autoscaling_group.this"]["health_check_type"] == "ELB"


def test_in_flight_scaling_without_monitoring_is_refused_with_what_to_set(
        plan_summary: Any) -> None:
    message = plan_error(plan_summary, "autoscaling_https_waf", enable_monitoring=False)
    assert 'scaling_metric = "in_flight_requests" needs enable_monitoring = true' in message
    assert 'scaling_metric = "alb_request_count"' in message
    # The load balancer's count needs no publisher.
    summary = plan(plan_summary, "autoscaling_https_waf", enable_monitoring=False,
                   scaling_metric="alb_request_count")
    (tracking,) = summary.values[f"{ASG}.aws_autoscaling_policy.load"][
        "target_tracking_configuration"]
    assert tracking["predefined_metric_specification"][0]["predefined_metric_type"] == \
        "ALBRequestCountPerTarget"
    assert not tracking.get("customized_metric_specification")


def test_waf_rate_limits_per_ip_and_counts_the_body_rules_prompts_trip(waf_plan: Any) -> None:
    acl = waf_plan.values["module.waf[0].aws_wafv2_web_acl.this"]
    rules = {rule["name"]: rule for rule in acl["rule"]}
    assert set(rules) == {"rate-limit-per-ip", "AWSManagedRulesAmazonIpReputationList",
                          "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesCommonRuleSet"}
    (rate,) = rules["rate-limit-per-ip"]["statement"][0]["rate_based_statement"]
    assert (rate["limit"], rate["aggregate_key_type"]) == (2000, "IP")
    (common,) = rules["AWSManagedRulesCommonRuleSet"]["statement"][0][
        "managed_rule_group_statement"]
    counted = {o["name"] for o in common["rule_action_override"]}
    assert "SizeRestrictions_BODY" in counted
    logging = waf_plan.values["module.waf[0].aws_wafv2_web_acl_logging_configuration.this[0]"]
    assert logging["redacted_fields"][0]["single_header"] == [{"name": "authorization"}]


# --- refused configurations -----------------------------------------------------------------

# Cross-variable rules of the autoscaling mode (one plan each); the validations of its
# variables are in tests/modules/root/test_root_plan.py (VALIDATIONS).
REFUSED = {
    "min_above_max": (
        "autoscaling_https_waf", {"min_size": 3, "max_size": 2, "desired_capacity": 2},
        "min_size (3) <= desired_capacity (2) <= max_size (2) must hold",
    ),
    "desired_outside_sizes": (
        "autoscaling_https_waf", {"desired_capacity": 5},
        "min_size (2) <= desired_capacity (5) <= max_size (4) must hold",
    ),
    "no_domain_for_acm": (
        "autoscaling_https_waf", {"domain_name": None, "route53_zone_id": None},
        "serves HTTPS from the load balancer with an ACM certificate validated through "
        "Route53: set domain_name",
    ),
    "one_zone_for_the_load_balancer": (
        "autoscaling_https_waf", {"az_count": 1},
        "needs subnets in at least two availability zones for the load balancer",
    ),
    "stream_budget_beyond_the_drain_limit": (
        "autoscaling_https_waf", {"max_proxy_timeout": 3600},
        "Use max_proxy_timeout <= 3540",
    ),
    "waf_without_the_load_balancer": (
        "instance_mode", {"enable_waf": True},
        'enable_waf needs deployment_mode = "autoscaling": the web ACL attaches to the load '
        "balancer",
    ),
    "idle_stop_in_the_autoscaling_mode": (
        "spot_one_instance", {"idle_stop_minutes": 30},
        'idle_stop_minutes needs deployment_mode = "instance": an Auto Scaling group replaces '
        "an instance that stops itself",
    ),
    "schedule_in_the_autoscaling_mode": (
        "spot_one_instance", {"schedule": {"stop": "0 20 * * ? *"}},
        'schedule needs deployment_mode = "instance": it starts and stops the one instance',
    ),
    "on_demand_base_above_max": (
        "spot_one_instance", {"on_demand_base_capacity": 4},
        "on_demand_base_capacity (4) exceeds max_size (3)",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_inconsistent_configuration_is_refused_with_its_message(
        plan_summary: Any, name: str) -> None:
    case, overrides, message = REFUSED[name]
    if case == "instance_mode":
        files = [str(HERE.parent / "root" / "cpu_no_dns.tfvars")]
        with pytest.raises(TerraformError) as failure:
            plan_summary(ROOT_MODULE, tf_var_files=files, **overrides)
        error = " ".join(str(failure.value).split())
    else:
        error = plan_error(plan_summary, case, **overrides)
    assert message in error, error
