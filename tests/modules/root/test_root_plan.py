"""The root module planned with real Terraform: how the modules are wired per case, the
outputs a user reads next, the cross-variable rules, and that no secret reaches the plan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from testkit import inventory, render
from testkit.plans import data_sources
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
ROOT_MODULE = "."
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(ROOT_MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def scripts(summary: Any) -> dict[str, str]:
    """The instance's files, taken from the plan by the one renderer's reader."""
    return render.artifacts_from_plan(summary.raw)


def in_module(summary: Any, module: str) -> list[str]:
    return [a for a in summary.values if a.startswith(f"module.{module}.")]


def test_cpu_without_dns_serves_http_on_the_elastic_ip(plan_summary: Any) -> None:
    summary = plan(plan_summary, "cpu_no_dns")
    instance = summary.values["module.ec2.aws_instance.this[0]"]
    assert instance["instance_type"] == "c7i.4xlarge"
    assert not in_module(summary, "route53")
    assert not in_module(summary, "build")
    assert summary.outputs["image_uri"] == IMAGE
    # http://<Elastic IP>: the address is only known after apply.
    assert summary.outputs["api_endpoint"] == inventory.UNKNOWN
    rendered = scripts(summary)
    assert "ENABLE_HTTPS='false'" in rendered["inference.env"]
    assert "--gpus" not in rendered["vllm.service"]
    assert "setup-certbot.sh" not in rendered


def test_gpu_with_https_and_dns(plan_summary: Any) -> None:
    summary = plan(plan_summary, "gpu_https_dns")
    assert summary.values["module.ec2.aws_instance.this[0]"]["instance_type"] == "g5.xlarge"
    record = summary.values["module.route53[0].aws_route53_record.this"]
    assert record["name"] == "llm.example.com"
    assert record["zone_id"] == "Z0123456789ABCDEFGHIJ"
    assert summary.outputs["api_endpoint"] == "https://llm.example.com"
    # The image is built from app/ during apply.
    assert in_module(summary, "build[0]")
    assert summary.outputs["image_uri"] == inventory.UNKNOWN
    https_rules = [
        v
        for a, v in summary.values.items()
        if a.startswith("module.ec2.aws_vpc_security_group_ingress_rule.https[")
    ]
    assert [r["from_port"] for r in https_rules] == [443]


def test_explicit_ami_id_skips_every_ami_lookup(plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami")
    assert summary.values["module.ec2.aws_instance.this[0]"]["ami"] == "ami-0123456789abcdef0"
    assert not [a for a in data_sources(summary.raw) if "aws_ssm_parameter" in a]
    # Without it, the AMI comes from the DLAMI's SSM public parameter.
    lookup = plan(plan_summary, "gpu_https_dns")
    assert "module.ec2.data.aws_ssm_parameter.ami[0]" in data_sources(lookup.raw)


def test_multi_gpu_splits_the_model_across_four_gpus(plan_summary: Any) -> None:
    summary = plan(plan_summary, "multi_gpu")
    assert summary.values["module.ec2.aws_instance.this[0]"]["instance_type"] == "g5.12xlarge"
    unit = scripts(summary)["vllm.service"]
    assert "--tensor-parallel-size 4" in unit
    assert "--model Qwen/Qwen2.5-32B-Instruct" in unit
    assert "--max-model-len 16384" in unit


def test_existing_image_skips_the_build(plan_summary: Any) -> None:
    summary = plan(plan_summary, "existing_image")
    assert not in_module(summary, "build")
    image = (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert summary.outputs["image_uri"] == image
    assert image in scripts(summary)["inference-proxy.service"]
    # DNS without HTTPS: a name, plain HTTP.
    assert summary.outputs["api_endpoint"] == "http://llm.example.com"


def test_bootstrap_under_3kb_and_scripts_bucket_name_is_shared(plan_summary: Any) -> None:
    summary = plan(plan_summary, "gpu_https_dns")
    user_data = summary.outputs["user_data"]
    if user_data == inventory.UNKNOWN:
        # The proxy image is built during apply, so the scripts' hash is not known yet.
        summary = plan(
            plan_summary,
            "explicit_ami",
            enable_https=True,
            domain_name="example.com",
            route53_zone_id="Z0123456789ABCDEFGHIJ",
            acme_email="ops@example.com",
        )
        user_data = summary.outputs["user_data"]
    assert len(user_data.encode()) < 3072  # it lists every script by name
    bucket = summary.values["module.scripts_bucket.aws_s3_bucket.this"]["bucket"]
    assert re.fullmatch(r"llm-dev-\d{12}-us-east-1", bucket)
    assert f"s3://{bucket}/scripts/" in user_data
    # The same name reaches the instance's policy (scoped to scripts/) via modules/ec2.
    config = json.dumps(summary.raw["configuration"]["root_module"]["module_calls"]["ec2"])
    assert '"local.scripts_bucket_name"' in config


def test_outputs_tell_the_user_what_to_run_next(plan_summary: Any) -> None:
    outputs = plan(plan_summary, "gpu_https_dns").outputs
    assert outputs["api_key_command"] == (
        "aws ssm get-parameter --region us-east-1 --name /llm-dev/api_keys "
        "--with-decryption --query Parameter.Value --output text"
    )
    for name in ("ssm_session_command", "instance_id", "public_ip", "scripts_bucket"):
        assert name in outputs
    assert outputs["diagnostic_commands"]["health"] == "curl -s https://llm.example.com/health"


def test_monitoring_files_ship_with_the_scripts_and_the_manifest_names_every_file(
        plan_summary: Any) -> None:
    rendered = scripts(plan(plan_summary, "explicit_ami"))
    assert {"docker-daemon.json", "amazon-cloudwatch-agent.json", "setup-monitoring.sh",
            "publish-metrics.py", "inference-metrics.service", "inference-metrics.timer",
            "update.sh", "inference-update.timer"} <= set(rendered)
    listed = {line.split("  ")[1]: line.split("  ")[0]
              for line in rendered[render.MANIFEST].splitlines()}
    assert set(listed) == set(rendered) - {render.MANIFEST, render.BOOTSTRAP}
    daemon = json.loads(rendered["docker-daemon.json"])
    assert daemon["log-opts"]["awslogs-group"] == "/ec2-inference/llm-dev"


def test_the_readiness_gate_runs_the_tool_after_the_scripts_and_the_dns_record(
        plan_summary: Any) -> None:
    summary = plan(plan_summary, "gpu_https_dns")
    assert "terraform_data.wait_for_ready[0]" in summary.values
    (gate,) = [r for r in summary.raw["configuration"]["root_module"]["resources"]
               if r["address"] == "terraform_data.wait_for_ready"]
    assert set(gate["depends_on"]) == {"module.scripts_bucket", "module.route53",
                                       "module.monitoring"}
    (provisioner,) = gate["provisioners"]
    interpreter = provisioner["expressions"]["interpreter"]["references"]
    assert "var.wait_for_ready_timeout" in interpreter
    assert "local.api_endpoint" in provisioner["expressions"]["command"]["references"]
    assert (inventory.ROOT / "tools" / "wait_ready.py").is_file()
    assert "terraform_data.wait_for_ready[0]" not in plan(plan_summary, "existing_image").values
    outputs = summary.outputs
    assert outputs["dashboard_url"] == ("https://us-east-1.console.aws.amazon.com/cloudwatch/"
                                        "home?region=us-east-1#dashboards/dashboard/llm-dev")
    assert outputs["log_group_name"] == "/ec2-inference/llm-dev"
    assert outputs["diagnostic_commands"]["cloudwatch_logs"] == (
        "aws logs tail /ec2-inference/llm-dev --region us-east-1 --follow")


# --- cross-variable rules and validations -------------------------------------------------

# Cross-variable rules are preconditions, checked once every variable is valid: one plan each.
PRECONDITIONS = {
    "https_without_domain": (
        {"enable_https": True, "acme_email": "ops@example.com"},
        "HTTPS needs a domain name",
    ),
    "https_without_email": (
        {"enable_https": True, "domain_name": "example.com", "route53_zone_id": "Z1"},
        "HTTPS needs acme_email",
    ),
    "max_timeout_below_default": (
        {"default_proxy_timeout": 300, "max_proxy_timeout": 60},
        "max_proxy_timeout must be greater than or equal to default_proxy_timeout",
    ),
    "tensor_parallel_exceeds_gpus": (
        {"use_gpu": True, "gpu_instance_type": "g5.2xlarge", "tensor_parallel_size": 2},
        "tensor_parallel_size (2) exceeds the 1 GPU(s) of g5.2xlarge",
    ),
    "tensor_parallel_without_gpu": (
        {"tensor_parallel_size": 2},
        "tensor_parallel_size must be 1 without a GPU",
    ),
    "nat_without_private_subnets": (
        {"enable_nat_gateway": True},
        "enable_nat_gateway needs enable_private_subnets = true",
    ),
}


@pytest.mark.parametrize("name", sorted(PRECONDITIONS))
def test_inconsistent_configuration_fails_with_its_message(plan_summary: Any, name: str) -> None:
    overrides, message = PRECONDITIONS[name]
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "cpu_no_dns", **overrides)
    assert message in " ".join(str(failure.value).split()), str(failure.value)


# Every validation of a root variable, each with a value it must refuse and its message.
# Terraform checks them all before it stops, so one plan refuses every value below at once.
VALIDATIONS = {
    "bad_region": ("region", "moon-1", "region must be an AWS region code"),
    "unknown_deployment_mode": (
        "deployment_mode",
        "kubernetes",
        'deployment_mode must be "instance" or "autoscaling"',
    ),
    "bad_name": ("name", "LLM_Endpoint", "name must be 2-20 characters"),
    "bad_environment": ("environment", "production-eu-1", "environment must be 1-10"),
    "image_without_tag": (
        "image_uri",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev",
        "image_uri must be an image reference with a tag or a digest",
    ),
    "domain_with_scheme": (
        "domain_name",
        "https://example.com",
        "domain_name must be a lowercase domain",
    ),
    "bad_acme_email": ("acme_email", "ops", "acme_email must be an email address"),
    "tensor_parallel_three": ("tensor_parallel_size", 3, "must be one of 1, 2, 4, 8"),
    "bad_allowed_cidr": (
        "allowed_cidr_blocks",
        ["0.0.0.0/99"],
        "allowed_cidr_blocks must contain IPv4 CIDR blocks",
    ),
    "gpu_memory_above_one": (
        "gpu_memory_utilization",
        1.5,
        "gpu_memory_utilization must be greater than 0 and at most 1",
    ),
    "bad_vpc_cidr": ("vpc_cidr", "10.20.0.0", "vpc_cidr must be an IPv4 CIDR block"),
    "bad_ssh_cidr": (
        "ssh_cidr_blocks",
        ["everywhere"],
        "ssh_cidr_blocks must contain IPv4 CIDR blocks",
    ),
    "bad_ami_id": ("ami_id", "ubuntu", "ami_id must look like ami-"),
    "small_root_volume": ("root_volume_size", 10, "root_volume_size must be at least 30 GiB"),
    "small_data_volume": ("data_volume_size", 5, "data_volume_size must be at least 10 GiB"),
    "instance_version_zero": (
        "instance_version",
        0,
        "instance_version must be a whole number >= 1",
    ),
    "bad_model_id": ("model_id", "../etc", "model_id must be a Hugging Face model id"),
    "tiny_context": ("max_model_len", 100, "max_model_len must be a whole number >= 256"),
    "unpinned_vllm_image": (
        "vllm_image",
        "vllm/vllm-openai:latest",
        "vllm_image must be an image reference pinned to a tag other than latest",
    ),
    "untagged_vllm_cpu_image": (
        "vllm_cpu_image",
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo",
        "vllm_cpu_image must be an image reference pinned to a tag other than latest",
    ),
    "extra_args_with_spaces": (
        "extra_vllm_args",
        ["--a b"],
        "extra_vllm_args entries may contain only",
    ),
    "short_startup_timeout": (
        "vllm_startup_timeout",
        10,
        "vllm_startup_timeout must be at least 60 seconds",
    ),
    "bad_hf_parameter": (
        "hf_token_parameter_name",
        "hf token",
        "hf_token_parameter_name must be an SSM parameter path",
    ),
    "bad_api_keys_parameter": (
        "api_keys_parameter_name",
        "api keys",
        "api_keys_parameter_name must be an SSM parameter path",
    ),
    "zero_default_timeout": (
        "default_proxy_timeout",
        0,
        "default_proxy_timeout must be greater than 0 seconds",
    ),
    "zero_max_timeout": (
        "max_proxy_timeout",
        0,
        "max_proxy_timeout must be greater than 0 seconds",
    ),
    "proxy_port_of_vllm": ("app_port", 8000, "app_port must be between 1024 and 65535"),
    "zero_concurrency": ("proxy_max_concurrency", 0, "proxy_max_concurrency must be at least 1"),
    "tiny_body_limit": ("proxy_max_body_bytes", 100, "proxy_max_body_bytes must be at least 1024"),
    "spot_price_zero": (
        "spot_max_price",
        "0",
        "spot_max_price must be a price in USD per hour greater than 0",
    ),
    "unix_cron_schedule": (
        "schedule",
        {"start": "0 8 * * 1-5"},
        "schedule.start and schedule.stop must be EventBridge cron expressions",
    ),
    "idle_stop_too_soon": (
        "idle_stop_minutes",
        2,
        "idle_stop_minutes must be a whole number of minutes >= 5",
    ),
    "plain_http_acme_server": (
        "acme_server",
        "http://acme.example.com/dir",
        "acme_server must be an https:// ACME directory URL",
    ),
    "negative_min_size": ("min_size", -1, "min_size must be a whole number >= 0"),
    "zero_max_size": ("max_size", 0, "max_size must be a whole number >= 1"),
    "fractional_desired": ("desired_capacity", 1.5, "desired_capacity must be a whole number"),
    "healthy_above_100": (
        "min_healthy_percentage",
        150,
        "min_healthy_percentage must be between 0 and 100",
    ),
    "negative_on_demand_base": (
        "on_demand_base_capacity",
        -1,
        "on_demand_base_capacity must be a whole number >= 0",
    ),
    "spot_type_not_a_type": (
        "spot_instance_types",
        ["g6 xlarge"],
        "spot_instance_types must hold EC2 instance types",
    ),
    "unknown_scaling_metric": (
        "scaling_metric",
        "gpu_utilization",
        'scaling_metric must be "in_flight_requests" or "alb_request_count"',
    ),
    "zero_scaling_target": ("scaling_target", 0, "scaling_target must be greater than 0"),
    "tiny_waf_rate_limit": ("waf_rate_limit", 5, "waf_rate_limit must be between 10"),
    "odd_waf_retention": (
        "waf_log_retention_days",
        10,
        "waf_log_retention_days must be null or one of CloudWatch's retention periods",
    ),
    "model_cache_url": (
        "model_cache_bucket",
        "s3://my-models",
        "model_cache_bucket must be an S3 bucket name",
    ),
    "log_retention_not_cloudwatchs": (
        "log_retention_days",
        42,
        "log_retention_days must be one of CloudWatch's retention values: 0 (forever), 1, 3",
    ),
    "log_key_by_alias": (
        "log_kms_key_arn",
        "alias/logs",
        "log_kms_key_arn must be the ARN of a KMS key",
    ),
    "bad_alarm_email": ("alarm_email", "ops at example", "alarm_email must be an email address"),
    "zero_unhealthy_minutes": (
        "unhealthy_alarm_minutes",
        0,
        "unhealthy_alarm_minutes must be a whole number from 1 to 60",
    ),
    "short_readiness_timeout": (
        "wait_for_ready_timeout",
        5,
        "wait_for_ready_timeout must be between 10 and 14400 seconds",
    ),
}


@pytest.fixture(scope="module")
def refused(plan_summary: Any) -> dict[str, str]:
    """{variable: Terraform's diagnostic} from one plan with every bad value of VALIDATIONS."""
    overrides = {variable: value for variable, value, _ in VALIDATIONS.values()}
    assert len(overrides) == len(VALIDATIONS), "one bad value per variable"
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "cpu_no_dns", **overrides)
    diagnostics = {}
    for block in failure.value.stderr.split("Error: Invalid value for variable")[1:]:
        named = re.search(r"var\.([a-z_0-9]+) is ", block)
        if named:
            diagnostics[named[1]] = " ".join(block.split())
    return diagnostics


@pytest.mark.parametrize("name", sorted(VALIDATIONS))
def test_invalid_value_is_refused_with_its_message(refused: dict[str, str], name: str) -> None:
    variable, _, message = VALIDATIONS[name]
    assert variable in refused, f"{variable} was not refused; refused: {sorted(refused)}"
    assert message in refused[variable], refused[variable]


def test_every_root_validation_has_a_negative_case() -> None:
    # The root owns every validation of what a user sets (the modules trust typed inputs):
    # each one is proved above to refuse a bad value with its message.
    variables = (inventory.ROOT / "variables.tf").read_text()
    blocks = dict(re.findall(r'variable "([a-z_0-9]+)" \{(.*?)\n\}', variables, re.S))
    validated = {name for name, block in blocks.items() if "validation {" in block}
    assert validated == {variable for variable, _, _ in VALIDATIONS.values()}
