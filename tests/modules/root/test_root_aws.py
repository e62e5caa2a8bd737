"""The root module against what a real AWS account does to it: no plain HTTP to the open
internet by default, zones that offer the instance type, per-deployment secrets, no silent
Route53 takeover, S3 reachable before the Elastic IP exists, the image built for the
instance's platform, the AMI looked up for the right path, the account's vCPU quota."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit import inventory
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
ROOT_MODULE = "."
VLLM_VERSION = (HERE.parents[2] / "modules/ec2/vllm.version").read_text().strip()
SCARCE_GPU = "p4d.24xlarge"  # the stand-in offers it in us-east-1b and us-east-1c only


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(ROOT_MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def plan_error(plan_summary: Any, case: str, **tf_vars: Any) -> str:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, case, **tf_vars)
    return " ".join(str(failure.value).split())


def scripts(summary: Any) -> dict[str, str]:
    return {values["key"].removeprefix("scripts/"): values["content"]
            for address, values in summary.values.items()
            if address.startswith("module.scripts_bucket.aws_s3_object.script[")}


def data_read(summary: Any, address: str) -> dict[str, Any]:
    def walk(module: dict[str, Any]) -> dict[str, Any] | None:
        for resource in module.get("resources", []):
            if resource["address"] == address:
                return resource["values"]  # type: ignore[no-any-return]
        for child in module.get("child_modules", []):
            if (found := walk(child)) is not None:
                return found
        return None

    found = walk(summary.raw["prior_state"]["values"]["root_module"])
    assert found is not None, f"{address} was not read at plan time"
    return found


# --- plain HTTP (issue item 2) ------------------------------------------------------------


def test_the_defaults_refuse_plain_http_to_the_internet_naming_the_ways_out(
        plan_summary: Any) -> None:
    message = plan_error(plan_summary, "explicit_ami", allow_plaintext_http=False)
    assert "clear text, open to 0.0.0.0/0" in message
    for way in ("set domain_name, acme_email and enable_https = true",
                "narrow allowed_cidr_blocks to your own networks",
                "allow_plaintext_http = true"):
        assert way in message, way


def test_each_way_out_plans(plan_summary: Any) -> None:
    assert plan(plan_summary, "gpu_https_dns").outputs["api_endpoint"] == "https://llm.example.com"
    narrow = plan(plan_summary, "cpu_no_dns")  # allowed_cidr_blocks = ["198.51.100.0/24"]
    assert narrow.values["module.ec2.aws_vpc_security_group_ingress_rule.http[\"198.51.100.0/24\"]"]
    opted_in = plan(plan_summary, "explicit_ami")  # allow_plaintext_http = true
    assert opted_in.raw["variables"]["allow_plaintext_http"]["value"] is True


# --- availability zones (item 6) -----------------------------------------------------------


def zone_of_instance(summary: Any) -> str:
    volume = summary.values["module.ec2.aws_ebs_volume.data[0]"]["availability_zone"]
    (subnet,) = [v for a, v in summary.values.items()
                 if a.startswith("module.vpc.aws_subnet.public[") and
                 v["availability_zone"] == volume]
    return str(subnet["availability_zone"])


def test_looked_up_zones_are_those_offering_the_instance_type(plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami", gpu_instance_type=SCARCE_GPU,
                   availability_zones=[])
    zones = [v["availability_zone"] for a, v in sorted(summary.values.items())
             if a.startswith("module.vpc.aws_subnet.public[")]
    assert zones == ["us-east-1b", "us-east-1c"]  # not us-east-1a, the region's first zone
    assert zone_of_instance(summary) == "us-east-1b"
    # Without a scarce type the first zones of the region are taken, as before.
    common = plan(plan_summary, "explicit_ami", availability_zones=[])
    assert zone_of_instance(common) == "us-east-1a"


def test_given_zones_skip_those_without_the_instance_type(plan_summary: Any) -> None:
    # explicit_ami.tfvars gives ["us-east-1a", "us-east-1b"]; only b offers p4d.24xlarge.
    summary = plan(plan_summary, "explicit_ami", gpu_instance_type=SCARCE_GPU)
    assert summary.counts["aws_subnet"] == 1
    assert zone_of_instance(summary) == "us-east-1b"


def test_given_zones_none_of_which_offers_the_type_fail_naming_the_zones(
        plan_summary: Any) -> None:
    message = plan_error(plan_summary, "explicit_ami", gpu_instance_type=SCARCE_GPU,
                         availability_zones=["us-east-1a", "us-east-1d"])
    assert "None of the availability zones us-east-1a, us-east-1d is usable" in message
    assert "usable_zones: us-east-1b, us-east-1c" in message


def test_a_type_the_region_does_not_offer_fails_with_the_lookup_command(
        plan_summary: Any) -> None:
    message = plan_error(plan_summary, "cpu_no_dns", instance_type="u7in-32tb.224xlarge")
    assert "u7in-32tb.224xlarge is not offered in any availability zone of us-east-1" in message
    assert "aws ec2 describe-instance-type-offerings --region us-east-1" in message


# --- secrets per deployment (item 10) ------------------------------------------------------


def test_default_parameter_names_belong_to_the_deployment(plan_summary: Any) -> None:
    dev = plan(plan_summary, "explicit_ami")
    prod = plan(plan_summary, "explicit_ami", environment="prod")
    assert dev.outputs["api_keys_parameter_name"] == "/llm-dev/api_keys"
    assert dev.outputs["hf_token_parameter_name"] == "/llm-dev/hf_token"
    assert prod.outputs["api_keys_parameter_name"] == "/llm-prod/api_keys"
    assert "--name /llm-prod/api_keys " in prod.outputs["api_key_command"]
    named = plan(plan_summary, "gpu_https_dns", environment="prod")  # a known endpoint
    assert "--name /llm-prod/api_keys " in named.outputs["diagnostic_commands"]["list_models"]
    assert "API_KEYS_PARAMETER='/llm-prod/api_keys'" in scripts(prod)["inference.env"]
    # The instance policy follows the names: tests/modules/ec2/test_ec2_iam.py.


# --- Route53 (item 4) ----------------------------------------------------------------------


def test_an_existing_record_is_not_taken_over_unless_asked(plan_summary: Any) -> None:
    record = "module.route53[0].aws_route53_record.this"
    assert plan(plan_summary, "gpu_https_dns").values[record]["allow_overwrite"] is False
    opted = plan(plan_summary, "gpu_https_dns", route53_allow_overwrite=True)
    assert opted.values[record]["allow_overwrite"] is True


# --- S3 before the Elastic IP (item 12, Terraform part) ------------------------------------


def test_s3_is_reached_through_a_gateway_endpoint_the_instance_waits_for(
        plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami")
    endpoint = summary.values["module.vpc.aws_vpc_endpoint.s3"]
    assert endpoint["service_name"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpc_endpoint_type"] == "Gateway"
    vpc = summary.raw["configuration"]["root_module"]["module_calls"]["vpc"]["module"]
    routes = vpc["resources"]
    (config,) = [r for r in routes if r["address"] == "aws_vpc_endpoint.s3"]
    assert "aws_route_table.public.id" in config["expressions"]["route_table_ids"]["references"]
    # The instance's subnet id comes from an output that waits for the endpoint.
    assert "aws_vpc_endpoint.s3" in vpc["outputs"]["public_subnet_ids"]["depends_on"]


# --- the platform and the AMI (items 3, 7) --------------------------------------------------


def test_the_cpu_ami_comes_from_the_ubuntu_parameter_and_differs_from_the_gpu_one(
        plan_summary: Any) -> None:
    cpu = plan(plan_summary, "cpu_no_dns")
    read = data_read(cpu, "module.ec2.data.aws_ssm_parameter.ami[0]")
    assert read["name"] == (
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id")
    assert cpu.values["module.ec2.aws_instance.this[0]"]["ami"] == read["insecure_value"]
    gpu = plan(plan_summary, "gpu_https_dns")
    gpu_read = data_read(gpu, "module.ec2.data.aws_ssm_parameter.ami[0]")
    assert "deeplearning" in gpu_read["name"]
    assert gpu_read["insecure_value"] != read["insecure_value"]


@pytest.mark.parametrize(("instance_type", "architecture"), [
    ("c7g.4xlarge", "arm64"), ("c7i.4xlarge", "x86_64"),
])
def test_graviton_types_get_an_arm64_image_ami_and_vllm(
        plan_summary: Any, instance_type: str, architecture: str) -> None:
    # Which types are Graviton: test_root_patterns.py, on many types at once.
    summary = plan(plan_summary, "cpu_no_dns", instance_type=instance_type, image_uri=None,
                   ami_id=None)
    platform = "linux/arm64" if architecture == "arm64" else "linux/amd64"
    triggers = summary.values["module.build[0].terraform_data.image"]["triggers_replace"]
    assert triggers["platform"] == platform
    read = data_read(summary, "module.ec2.data.aws_ssm_parameter.ami[0]")
    assert ("/arm64/" in read["name"]) == (architecture == "arm64")
    vllm = scripts_or_unknown(summary)
    if vllm is not None:
        assert ("vllm-arm64-cpu-release-repo" in vllm) == (architecture == "arm64")


def scripts_or_unknown(summary: Any) -> str | None:
    unit = scripts(summary).get("vllm.service")
    return None if unit in (None, inventory.UNKNOWN) else unit


def test_the_default_vllm_is_the_tested_release(plan_summary: Any) -> None:
    unit = scripts(plan(plan_summary, "explicit_ami"))["vllm.service"]
    assert f"vllm/vllm-openai:v{VLLM_VERSION} " in unit


# --- image references (item 10b): the pattern itself is tested in test_root_patterns.py ---


def test_image_uri_accepts_a_registry_with_a_port_and_refuses_an_unpinned_image(
        plan_summary: Any) -> None:
    image = "registry.example.com:5000/team/proxy:1.2"
    assert plan(plan_summary, "explicit_ami", image_uri=image).outputs["image_uri"] == image
    message = plan_error(plan_summary, "explicit_ami",
                         image_uri="registry.example.com:5000/team/proxy")
    assert "image_uri must be an image reference with a tag or a digest" in message


# --- vCPU quota (item 9) ------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "family"), [
    ({}, "G and VT"),
    ({"gpu_instance_type": SCARCE_GPU, "availability_zones": []}, "P"),
    ({"use_gpu": False, "instance_type": "c7i.4xlarge"}, "Standard"),
])
def test_the_quota_command_names_the_instance_family(plan_summary: Any,
                                                     overrides: dict[str, Any],
                                                     family: str) -> None:
    command = plan(plan_summary, "explicit_ami", **overrides).outputs["instance_quota_command"]
    assert command.startswith("aws service-quotas list-service-quotas --region us-east-1 "
                              "--service-code ec2 ")
    assert f"contains(QuotaName, 'On-Demand {family}')" in command
