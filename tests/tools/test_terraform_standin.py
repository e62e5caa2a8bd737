"""The stand-in hashicorp/aws provider driven by real Terraform: what a plan knows, what an
apply invents (deterministically), what data sources answer, and that a second plan after
apply is empty."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools import terraform

CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 6.0" }
  }
}

provider "aws" {
  region = "eu-west-1"
  default_tags {
    tags = { Project = "ec2-inference", Owner = "tests" }
  }
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_availability_zones" "available" {}
data "aws_ssm_parameter" "ami" {
  name = "/aws/service/deeplearning/ami/x86_64/ubuntu-24.04/latest/ami-id"
}
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"]
}
data "aws_route53_zone" "zone" {
  name = "example.com."
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "Ec2Assume"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "read" {
  source_policy_documents = [data.aws_iam_policy_document.assume.json]
  statement {
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceVpc"
      values   = ["vpc-1"]
    }
  }
}

resource "aws_vpc" "this" {
  cidr_block = "10.42.0.0/16"
  tags       = { Name = "main", Owner = "vpc" }
}

resource "aws_subnet" "public" {
  count             = 2
  vpc_id            = aws_vpc.this.id
  cidr_block        = cidrsubnet(aws_vpc.this.cidr_block, 8, count.index)
  availability_zone = data.aws_availability_zones.available.names[count.index]
}

resource "aws_security_group" "web" {
  vpc_id = aws_vpc.this.id
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_eip" "this" {
  domain = "vpc"
}

resource "aws_s3_object" "script" {
  bucket  = "scripts"
  key     = "scripts/hello.sh"
  content = "hello"
}

output "account" { value = data.aws_caller_identity.current.account_id }
output "region" { value = data.aws_region.current.region }
output "partition" { value = data.aws_partition.current.partition }
output "azs" { value = data.aws_availability_zones.available.names }
output "ssm_ami" {
  value     = data.aws_ssm_parameter.ami.value
  sensitive = true
}
output "ami" { value = data.aws_ami.ubuntu.id }
output "zone_id" { value = data.aws_route53_zone.zone.zone_id }
output "read_policy" { value = data.aws_iam_policy_document.read.json }
output "vpc_id" { value = aws_vpc.this.id }
output "vpc_arn" { value = aws_vpc.this.arn }
output "vpc_tags_all" { value = aws_vpc.this.tags_all }
output "subnet_ids" { value = aws_subnet.public[*].id }
output "sg" { value = [aws_security_group.web.id, aws_security_group.web.description] }
output "public_ip" { value = aws_eip.this.public_ip }
output "etag" { value = aws_s3_object.script.etag }
"""


def _directory(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    directory = tmp_path_factory.mktemp(name)
    (directory / "main.tf").write_text(CONFIG)
    terraform.run(["init", "-input=false", "-no-color"], cwd=directory)
    return directory


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = _directory(tmp_path_factory, "standin-plan")
    terraform.run(["plan", "-input=false", "-no-color", "-out=plan"], cwd=directory)
    shown = terraform.run(["show", "-json", "plan"], cwd=directory)
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def _applied(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, Any]]:
    directory = _directory(tmp_path_factory, name)
    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve"], cwd=directory)
    outputs = json.loads(terraform.run(["output", "-json"], cwd=directory).stdout)
    return directory, {name: item["value"] for name, item in outputs.items()}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _applied(tmp_path_factory, "standin-apply")


def _change(plan: dict[str, Any], address: str) -> dict[str, Any]:
    (change,) = [c["change"] for c in plan["resource_changes"] if c["address"] == address]
    return change  # type: ignore[no-any-return]


def test_plan_merges_default_tags_into_tags_all(planned: dict[str, Any]) -> None:
    vpc = _change(planned, "aws_vpc.this")
    assert vpc["after"]["tags_all"] == {"Project": "ec2-inference", "Owner": "vpc",
                                        "Name": "main"}


def test_plan_leaves_computed_attributes_unknown_and_knows_the_region(
        planned: dict[str, Any]) -> None:
    vpc = _change(planned, "aws_vpc.this")
    assert vpc["after_unknown"]["id"] is True
    assert vpc["after_unknown"]["arn"] is True
    assert vpc["after"]["region"] == "eu-west-1"
    assert vpc["after"]["cidr_block"] == "10.42.0.0/16"
    sg = _change(planned, "aws_security_group.web")
    assert sg["after"]["description"] == "Managed by Terraform", "overlay default"


def test_apply_invents_aws_shaped_values(applied: tuple[Path, dict[str, Any]]) -> None:
    _, outputs = applied
    assert outputs["vpc_id"].startswith("vpc-")
    assert outputs["vpc_arn"] == f"arn:aws:ec2:eu-west-1:123456789012:vpc/{outputs['vpc_id']}"
    assert all(s.startswith("subnet-") for s in outputs["subnet_ids"])
    assert len(set(outputs["subnet_ids"])) == 2
    assert outputs["sg"][0].startswith("sg-")
    assert outputs["public_ip"].startswith("203.0.113.")
    assert outputs["etag"] == "5d41402abc4b2a76b9719d911017c592", "MD5 of the content"


def test_apply_is_deterministic(applied: tuple[Path, dict[str, Any]],
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    _, first = applied
    _, second = _applied(tmp_path_factory, "standin-apply-again")
    assert second["vpc_id"] == first["vpc_id"]
    assert second["subnet_ids"] == first["subnet_ids"]


def test_data_sources_answer_plausibly(applied: tuple[Path, dict[str, Any]]) -> None:
    _, outputs = applied
    assert outputs["account"] == "123456789012"
    assert outputs["region"] == "eu-west-1"
    assert outputs["partition"] == "aws"
    assert outputs["azs"][:3] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert outputs["ami"].startswith("ami-")
    assert outputs["ssm_ami"].startswith("ami-")
    assert outputs["zone_id"].startswith("Z")


def test_iam_policy_document_renders_iam_json(applied: tuple[Path, dict[str, Any]]) -> None:
    _, outputs = applied
    assert json.loads(outputs["read_policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Ec2Assume", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "ec2.amazonaws.com"}},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
             "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}},
        ],
    }


def test_second_plan_after_apply_is_empty_and_destroy_clears_state(
        applied: tuple[Path, dict[str, Any]]) -> None:
    directory, _ = applied
    replan = terraform.run(["plan", "-input=false", "-no-color", "-detailed-exitcode"],
                           cwd=directory, check=False)
    assert replan.returncode == 0, replan.stdout + replan.stderr
    terraform.run(["destroy", "-input=false", "-no-color", "-auto-approve"], cwd=directory)
    listed = terraform.run(["state", "list"], cwd=directory)
    assert listed.stdout.strip() == ""
