"""modules/ec2 on the network and in what it runs: egress limited to what the instance
speaks, no plain HTTP to the open internet unless asked for, port 80 never redirecting API
calls in HTTPS mode, the vLLM release of vllm.version for the instance's architecture, and
a pinned image run as given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/ec2"
VLLM_VERSION = (HERE.parents[2] / "modules/ec2/vllm.version").read_text().strip()


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    files = [str(HERE / "common.tfvars"), str(HERE / f"{case}.tfvars")]
    return plan_summary(MODULE, tf_var_files=files, **tf_vars)


def plan_error(plan_summary: Any, case: str, **tf_vars: Any) -> str:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, case, **tf_vars)
    return " ".join(str(failure.value).split())


def script(summary: Any, name: str) -> str:
    return summary.outputs["scripts"][f"scripts/{name}"]  # type: ignore[no-any-return]


# --- egress -------------------------------------------------------------------------------


def test_egress_is_tcp_443_and_80_only(plan_summary: Any) -> None:
    summary = plan(plan_summary, "gpu_https")
    egress = [v for a, v in summary.values.items()
              if a.startswith("aws_vpc_security_group_egress_rule.")]
    assert sorted((r["ip_protocol"], r["from_port"], r["to_port"], r["cidr_ipv4"])
                  for r in egress) == [("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0")]


# --- plain HTTP to the internet -------------------------------------------------------------

WAYS_OUT = ("enable_https = true", "narrow allowed_cidr_blocks", "allow_plaintext_http = true")


@pytest.mark.parametrize("cidrs", [["0.0.0.0/0"], ["10.0.0.0/16", "0.0.0.0/1"]])
def test_plain_http_to_a_wide_cidr_is_refused_naming_the_three_ways_out(
        plan_summary: Any, cidrs: list[str]) -> None:
    message = plan_error(plan_summary, "cpu_no_https", allow_plaintext_http=False,
                         allowed_cidr_blocks=cidrs)
    assert "the API key and every prompt would cross the internet in clear text" in message
    assert f"open to {next(c for c in cidrs if int(c.split('/')[1]) < 16)}" in message
    for way in WAYS_OUT:
        assert way in message, way


@pytest.mark.parametrize("overrides", [
    {"allow_plaintext_http": True},
    {"allow_plaintext_http": False, "allowed_cidr_blocks": ["198.51.100.0/24", "10.1.0.0/16"]},
], ids=["explicit-opt-in", "narrow-cidrs"])
def test_plain_http_plans_when_opted_in_or_narrow(plan_summary: Any,
                                                  overrides: dict[str, Any]) -> None:
    summary = plan(plan_summary, "cpu_no_https", **overrides)
    assert "listen 80 default_server;" in script(summary, "nginx-site.conf")


def test_https_port_80_answers_api_routes_with_json_403_never_a_redirect(
        plan_summary: Any) -> None:
    site = script(plan(plan_summary, "gpu_https"), "nginx-site.conf")
    port_80 = site[:site.index("listen 443 ssl;")]
    match = re.search(r"location (~ \^/\(v1/\|tokenize\$[^{]*)\{(.*?)\n    \}", port_80, re.S)
    assert match, port_80
    assert "detokenize$|pooling$|score$|rerank$|classify$" in match[1]
    body = match[2]
    assert "default_type application/json;" in body
    assert re.search(r"return 403 '\{\"error\": \{\"message\": \"[^']*https://llm.example.com",
                     body)
    assert '"code": "https_required"' in body
    assert "301" not in body
    # Everything else on port 80 still moves to HTTPS; the ACME challenge stays.
    assert "return 301 https://$host$request_uri;" in port_80
    assert "/.well-known/acme-challenge/" in port_80


# --- what runs: the tested vLLM release, for the instance's architecture -----------------


def test_default_vllm_images_are_the_release_in_vllm_version(plan_summary: Any) -> None:
    gpu = plan(plan_summary, "ami_lookup")
    assert f"vllm/vllm-openai:v{VLLM_VERSION}" in script(gpu, "vllm.service")
    assert f"VLLM_IMAGE='vllm/vllm-openai:v{VLLM_VERSION}'" in script(gpu, "inference.env")
    cpu = plan(plan_summary, "cpu_no_https")
    assert (f"public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v{VLLM_VERSION}"
            in script(cpu, "vllm.service"))
    arm = plan(plan_summary, "cpu_no_https", architecture="arm64", instance_type="c7g.4xlarge")
    assert (f"public.ecr.aws/q9t5s3a7/vllm-arm64-cpu-release-repo:v{VLLM_VERSION}"
            in script(arm, "vllm.service"))
    # A pinned image wins, registry port and all.
    pinned = plan(plan_summary, "gpu_https")
    assert "registry.example.com:5000/mirror/vllm-openai:v0.32.0" in script(pinned, "vllm.service")


def test_graviton_cpu_instances_look_up_the_arm64_ubuntu_ami(plan_summary: Any) -> None:
    summary = plan(plan_summary, "cpu_no_https", architecture="arm64", instance_type="c7g.4xlarge",
                   ami_id=None)
    (read,) = [r for r in summary.raw["prior_state"]["values"]["root_module"]["resources"]
               if r["address"] == "data.aws_ssm_parameter.ami[0]"]
    assert read["values"]["name"] == (
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id")
    assert summary.values["aws_instance.this[0]"]["ami"] == read["values"]["insecure_value"]


def test_a_graviton_gpu_instance_is_refused(plan_summary: Any) -> None:
    message = plan_error(plan_summary, "ami_lookup", architecture="arm64",
                         instance_type="g5g.xlarge")
    assert "GPU instances must be x86_64: g5g.xlarge is a Graviton (arm64) type" in message


def test_a_pinned_vllm_image_reaches_the_unit(plan_summary: Any) -> None:
    # Which references are accepted is the root's validation (vllm_image, vllm_cpu_image:
    # tests/modules/root/test_root_plan.py and test_root_patterns.py); the module runs it.
    image = "127.0.0.1:5000/vllm@sha256:" + "ab" * 32
    vllm = {"image": image, "model_id": "a/b", "max_model_len": 8192,
            "gpu_memory_utilization": 0.9, "tensor_parallel_size": 1, "extra_args": [],
            "startup_timeout": 3600}
    summary = plan(plan_summary, "cpu_no_https", vllm=vllm)
    assert image in script(summary, "vllm.service")
