"""The patterns the modules ship, evaluated by Terraform's own regex engine (RE2) on many
inputs in one provider-less plan: image references as Docker reads them (the same pattern
in the root's image_uri, vllm_image and vllm_cpu_image validations) and the Graviton rule
that picks the instance's architecture. The variables' wiring and messages are tested
with real plans in test_root_aws.py and tests/modules/ec2/test_ec2_exposure.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from testkit import plans

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "0123456789abcdef" * 4


def shipped_pattern(path: Path, anchor: str) -> str:
    """The HCL string literal inside `regex("...")` on the line that holds `anchor`."""
    (line,) = [line for line in path.read_text().splitlines()
               if anchor in line and 'regex("' in line]
    start = line.index('regex("') + len('regex("')
    end = start
    while line[end] != '"' or line[end - 1] == "\\":
        end += 1
    return line[start:end]


def evaluate(pattern: str, values: list[str], work: Path) -> list[bool]:
    """can(regex(pattern, value)) for each value, as Terraform computes it."""
    work.mkdir()
    (work / "main.tf").write_text(
        'variable "values" {\n  type = list(string)\n}\n'
        f'output "matches" {{\n  value = [for v in var.values : can(regex("{pattern}", v))]\n}}\n')
    (work / "values.tfvars.json").write_text(json.dumps({"values": values}))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": str(work / "none.tfrc")}
    test = plans.terraform_test(work, env)
    with plans.terraform_errors("init"):
        test.init(backend=False)
    with plans.terraform_errors("plan"):
        plan = test.plan(output=True, tf_var_file=[str(work / "values.tfvars.json")])
    return list(plan.outputs["matches"])


IMAGE_PATTERN = shipped_pattern(ROOT / "variables.tf", "var.image_uri")

ACCEPTED = [
    "registry.example.com:5000/team/proxy:1.2",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:3f2a9c1d0e5b7a88-amd64",
    f"123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev@{DIGEST}",
    f"ghcr.io/org/team/proxy:1.2@{DIGEST}",
    "localhost:5000/proxy:dev",
    "localhost/proxy:dev",
    "127.0.0.1:5000/proxy:v1",
    "[2001:db8::1]:5000/proxy:v1",
    "proxy:v1",
    "vllm/vllm-openai:v0.32.0",
    "my-registry:5000/a__b/c.d-e:T_1.x",
    "proxy:" + "x" * 128,
]
REFUSED = [
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev",  # neither tag nor digest
    "registry.example.com:5000/team/proxy",
    "Team/proxy:1.2",                                        # paths are lowercase
    "registry.example.com:port/proxy:1",
    "proxy:has space",
    "proxy:" + "x" * 129,                                    # tags have at most 128
    "proxy@sha256:0123",                                     # a digest has 32+ hex digits
    "https://registry.example.com/proxy:1",
    "proxy:-leading-dash",
    "registry.example.com/team//proxy:1",
    "",
]


def test_the_image_pattern_is_the_same_for_image_uri_and_the_vllm_images() -> None:
    for variable in ("var.vllm_image", "var.vllm_cpu_image"):
        assert shipped_pattern(ROOT / "variables.tf", variable) == IMAGE_PATTERN, variable


def test_image_references_are_read_as_docker_reads_them(tmp_path: Path) -> None:
    results = evaluate(IMAGE_PATTERN, ACCEPTED + REFUSED, tmp_path / "images")
    assert dict(zip(ACCEPTED + REFUSED, results, strict=True)) == {
        **dict.fromkeys(ACCEPTED, True), **dict.fromkeys(REFUSED, False)}


ARM64 = ["c7g.4xlarge", "m7gd.2xlarge", "c6gn.large", "im4gn.large", "is4gen.large",
         "x2gd.xlarge", "hpc7g.4xlarge", "c8g.large", "r8g.large", "t4g.small", "g5g.xlarge",
         "a1.large"]
X86_64 = ["c7i.4xlarge", "m7i-flex.large", "c7a.large", "g5.xlarge", "g4dn.xlarge",
          "g6e.12xlarge", "p4d.24xlarge", "p4de.24xlarge", "inf2.xlarge", "trn1n.32xlarge",
          "u7i-12tb.224xlarge", "gr6.4xlarge", "x2idn.16xlarge", "z1d.large", "dl1.24xlarge"]


def test_graviton_types_and_only_they_are_arm64(tmp_path: Path) -> None:
    pattern = shipped_pattern(ROOT / "main.tf", "local.instance_type)) ? \"arm64\"")
    assert re.search(r"a1\|", pattern)
    results = evaluate(pattern, ARM64 + X86_64, tmp_path / "arch")
    assert dict(zip(ARM64 + X86_64, results, strict=True)) == {
        **dict.fromkeys(ARM64, True), **dict.fromkeys(X86_64, False)}
