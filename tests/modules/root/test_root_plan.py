"""The root module planned with real Terraform: how the modules are wired per case, the
outputs a user reads next, the cross-variable rules, and that no secret reaches the plan."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from testkit import inventory
from tools import terraform
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
ROOT_MODULE = "."
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(ROOT_MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def scripts(summary: Any) -> dict[str, str]:
    return {
        values["key"].removeprefix("scripts/"): values["content"]
        for address, values in summary.values.items()
        if address.startswith("module.scripts_bucket.aws_s3_object.script[")
    }


def in_module(summary: Any, module: str) -> list[str]:
    return [a for a in summary.values if a.startswith(f"module.{module}.")]


def test_cpu_without_dns_serves_http_on_the_elastic_ip(plan_summary: Any) -> None:
    summary = plan(plan_summary, "cpu_no_dns")
    instance = summary.values["module.ec2.aws_instance.this"]
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
    assert summary.values["module.ec2.aws_instance.this"]["instance_type"] == "g5.xlarge"
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


def data_sources(raw: dict[str, Any]) -> set[str]:
    """Addresses of every data source the plan read or will read."""
    found = {c["address"] for c in raw.get("resource_changes", []) if c.get("mode") == "data"}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            if resource.get("mode") == "data":
                found.add(resource["address"])
        for child in module.get("child_modules", []):
            walk(child)

    walk(raw.get("prior_state", {}).get("values", {}).get("root_module", {}))
    return found


def test_explicit_ami_id_skips_every_ami_lookup(plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami")
    assert summary.values["module.ec2.aws_instance.this"]["ami"] == "ami-0123456789abcdef0"
    assert not [a for a in data_sources(summary.raw) if "aws_ssm_parameter" in a]
    # Without it, the AMI comes from the DLAMI's SSM public parameter.
    lookup = plan(plan_summary, "gpu_https_dns")
    assert "module.ec2.data.aws_ssm_parameter.ami[0]" in data_sources(lookup.raw)


def test_multi_gpu_splits_the_model_across_four_gpus(plan_summary: Any) -> None:
    summary = plan(plan_summary, "multi_gpu")
    assert summary.values["module.ec2.aws_instance.this"]["instance_type"] == "g5.12xlarge"
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


def test_bootstrap_under_2kb_and_scripts_bucket_name_is_shared(plan_summary: Any) -> None:
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
    assert len(user_data.encode()) < 2048
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


# --- no secret anywhere -------------------------------------------------------------------

CANARIES = {
    "HF_TOKEN": "hf_CanaryTokenThatMustNeverAppear0001",
    "AWS_SECRET_ACCESS_KEY": "CanarySecretAccessKeyThatMustNeverAppear02",
    "PROXY_API_KEYS": "sk-canary-api-key-that-must-never-appear-03",
}
SECRET_SHAPES = [
    re.compile(r"hf_[A-Za-z0-9]{20,}"),
    re.compile(r"sk-[A-Za-z0-9-]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
]


@pytest.mark.parametrize("case", ["cpu_no_dns", "gpu_https_dns", "multi_gpu"])
def test_no_secret_value_appears_anywhere_in_the_plan(
    case: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Secrets that sit in the environment Terraform runs in must not leak into the plan,
    # and nothing in the plan may look like a token, a key or an API key.
    env = terraform.terraform_env({**os.environ, **CANARIES})
    planner = inventory.Planner(tmp_path_factory.mktemp("secrets"), env=env)
    summary = planner.plan(inventory.ROOT, [HERE / f"{case}.tfvars"])
    text = json.dumps(summary.raw)
    for name, value in CANARIES.items():
        assert value not in text, f"{name} leaked into the plan"
    for shape in SECRET_SHAPES:
        assert not shape.search(text), shape.pattern
    for name, variable in summary.raw.get("variables", {}).items():
        if re.search(r"token|secret|password|api_key", name) and variable.get("value") is not None:
            assert name.endswith("_parameter_name"), f"variable {name} carries a secret"
    assert not any(o.get("sensitive") for o in summary.raw.get("output_changes", {}).values())


# --- cross-variable rules and validations -------------------------------------------------

NEGATIVE = {
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
    "bad_region": ({"region": "moon-1"}, "region must be an AWS region code"),
    "bad_name": ({"name": "LLM_Endpoint"}, "name must be 2-20 characters"),
    "bad_environment": ({"environment": "production-eu-1"}, "environment must be 1-10"),
    "image_without_tag": (
        {"image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev"},
        "image_uri must be an image reference with a tag or a digest",
    ),
    "domain_with_scheme": (
        {"domain_name": "https://example.com"},
        "domain_name must be a lowercase domain",
    ),
    "bad_acme_email": ({"acme_email": "ops"}, "acme_email must be an email address"),
    "tensor_parallel_three": ({"tensor_parallel_size": 3}, "must be one of 1, 2, 4, 8"),
    "bad_allowed_cidr": (
        {"allowed_cidr_blocks": ["0.0.0.0/99"]},
        "allowed_cidr_blocks must contain IPv4 CIDR blocks",
    ),
    "gpu_memory_above_one": (
        {"gpu_memory_utilization": 1.5},
        "gpu_memory_utilization must be greater than 0 and at most 1",
    ),
    "nat_without_private_subnets": (
        {"enable_nat_gateway": True},
        "enable_nat_gateway needs enable_private_subnets = true",
    ),
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_invalid_configuration_fails_with_its_message(plan_summary: Any, name: str) -> None:
    overrides, message = NEGATIVE[name]
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "cpu_no_dns", **overrides)
    assert message in " ".join(str(failure.value).split()), str(failure.value)
