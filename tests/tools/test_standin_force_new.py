"""The stand-in plans replacements where terraform-provider-aws 6.62 would (ForceNew, from
the checked table testkit/standin_aws/force_new.yaml), stores aws_instance.user_data as its
SHA-1 like the provider, and answers AMI lookups and instance type offerings per input."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from testkit.standin_aws import force_new, install
from testkit.standin_aws.cty import UNKNOWN
from tools import terraform

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(install.install().schema.read_text())  # type: ignore[no-any-return]


def resource_types_the_modules_use() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("*.tf"), *ROOT.glob("modules/*/*.tf")]:
        found |= set(re.findall(r'^resource\s+"(aws_[a-z0-9_]+)"', path.read_text(), re.M))
    return found


# --- the table --------------------------------------------------------------------------


def test_every_resource_type_the_modules_use_has_an_entry(schema: dict[str, Any]) -> None:
    used = resource_types_the_modules_use()
    assert "aws_volume_attachment" in used and "aws_eip_association" in used  # the scan works
    missing = used - set(force_new.load(schema))
    assert not missing, f"add to force_new.yaml (from the provider's Go source): {missing}"


def test_every_path_in_the_table_exists_in_the_provider_schema(schema: dict[str, Any]) -> None:
    rules = force_new.load(schema)  # raises, naming the entry, on a path the schema lacks
    assert "instance_id" in rules["aws_volume_attachment"].force_new
    assert "root_block_device.encrypted" in rules["aws_instance"].force_new
    assert rules["aws_instance"].when == {"user_data": "user_data_replace_on_change",
                                          "user_data_base64": "user_data_replace_on_change"}


@pytest.mark.parametrize(("entry", "message"), [
    ("aws_ebs_volume:\n    force_new: [availability_zone, sise]", "no attribute or block 'sise'"),
    ("aws_instance:\n    force_new: [root_device.encrypted]", "no block 'root_device'"),
    ("aws_made_up:\n    force_new: [name]", "aws_made_up: no such resource type"),
    ("aws_instance:\n    when: {user_data: ami}", "must name a top-level bool argument"),
])
def test_a_wrong_entry_fails_loading_and_names_itself(
        schema: dict[str, Any], tmp_path: Path, entry: str, message: str) -> None:
    table = tmp_path / "force_new.yaml"
    table.write_text(f"resources:\n  {entry}\n")
    with pytest.raises(force_new.ForceNewError, match=re.escape(message)):
        force_new.load(schema, table)


# --- what a plan gets back ----------------------------------------------------------------


def test_requires_replace_names_changed_force_new_paths_only(schema: dict[str, Any]) -> None:
    rules = force_new.load(schema)
    block = schema["resource_schemas"]["aws_instance"]["block"]
    prior = {"ami": "ami-1", "instance_type": "g5.xlarge", "user_data": "a" * 40,
             "user_data_replace_on_change": False,
             "root_block_device": [{"encrypted": True, "volume_size": 100}]}

    def replace(**changes: Any) -> list[tuple[str | int, ...]]:
        return force_new.requires_replace(block, rules["aws_instance"], prior,
                                          {**prior, **changes})

    assert replace(instance_type="g5.2xlarge") == []  # stop, modify, start: in place
    assert replace(ami="ami-2") == [("ami",)]
    assert replace(subnet_id=UNKNOWN) == [("subnet_id",)]  # unknown counts as a change
    assert replace(root_block_device=[{"encrypted": True, "volume_size": 200}]) == []
    assert replace(root_block_device=[{"encrypted": False, "volume_size": 100}]) == [
        ("root_block_device", 0, "encrypted")]
    assert replace(user_data="b" * 40) == []
    assert replace(user_data="b" * 40, user_data_replace_on_change=True) == [("user_data",)]
    assert force_new.requires_replace(block, rules["aws_instance"], None, prior) == []


STANDIN_CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 6.0" }
  }
}

variable "generation" { default = 1 }
variable "volume_size" { default = 10 }
variable "user_data" { default = "#!/bin/bash\\necho one\\n" }
variable "replace_on_user_data" { default = false }

resource "aws_instance" "this" {
  ami                         = "ami-0123456789abcdef0"
  instance_type               = "c7i.large"
  user_data                   = var.user_data
  user_data_replace_on_change = var.replace_on_user_data
  tags                        = { Generation = tostring(var.generation) }
}

resource "aws_ebs_volume" "data" {
  availability_zone = "us-east-1a"
  size              = var.volume_size
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.this.id
}

locals {
  dlami  = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04"
  ubuntu = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2"
}
data "aws_ssm_parameter" "gpu_ami" { name = "${local.dlami}/latest/ami-id" }
data "aws_ssm_parameter" "cpu_ami" { name = "${local.ubuntu}/ami-id" }
data "aws_ec2_instance_type_offerings" "scarce" {
  location_type = "availability-zone"
  filter {
    name   = "instance-type"
    values = ["p4d.24xlarge"]
  }
}
data "aws_ec2_instance_type_offerings" "common" {
  location_type = "availability-zone"
  filter {
    name   = "instance-type"
    values = ["g5.xlarge"]
  }
}

output "amis" {
  value = [for ami in [data.aws_ssm_parameter.gpu_ami, data.aws_ssm_parameter.cpu_ami] :
  ami.insecure_value]
}
output "scarce_zones" { value = data.aws_ec2_instance_type_offerings.scarce.locations }
output "common_zones" { value = data.aws_ec2_instance_type_offerings.common.locations }
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("standin-force-new")
    (directory / "main.tf").write_text(STANDIN_CONFIG)
    terraform.run(["init", "-input=false", "-no-color"], cwd=directory)
    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve"], cwd=directory)
    return directory


def planned_actions(directory: Path, *variables: str) -> dict[str, list[str]]:
    args = [arg for variable in variables for arg in ("-var", variable)]
    terraform.run(["plan", "-input=false", "-no-color", "-out=next.tfplan", *args], cwd=directory)
    plan = json.loads(terraform.run(["show", "-json", "next.tfplan"], cwd=directory).stdout)
    return {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]
            if c["change"]["actions"] != ["no-op"]}


def test_instance_user_data_is_stored_as_its_sha1(applied: Path) -> None:
    state = json.loads(terraform.run(["show", "-json"], cwd=applied).stdout)
    (instance,) = [r for r in state["values"]["root_module"]["resources"]
                   if r["address"] == "aws_instance.this"]
    assert instance["values"]["user_data"] == hashlib.sha1(
        b"#!/bin/bash\necho one\n", usedforsecurity=False).hexdigest()


def test_an_update_the_provider_makes_in_place_stays_in_place(applied: Path) -> None:
    assert planned_actions(applied, "volume_size=20") == {"aws_ebs_volume.data": ["update"]}
    assert planned_actions(applied, "generation=2") == {"aws_instance.this": ["update"]}
    assert planned_actions(applied, "user_data=echo two") == {"aws_instance.this": ["update"]}


def test_a_force_new_change_replaces_and_replaces_what_follows(applied: Path) -> None:
    actions = planned_actions(applied, "user_data=echo two", "replace_on_user_data=true")
    # user_data_replace_on_change turns user_data into ForceNew; the attachment's
    # instance_id then changes, and it is ForceNew too.
    assert actions == {"aws_instance.this": ["delete", "create"],
                       "aws_volume_attachment.data": ["delete", "create"]}


def test_gpu_and_cpu_ami_parameters_answer_differently(applied: Path) -> None:
    outputs = json.loads(terraform.run(["output", "-json"], cwd=applied).stdout)
    gpu, cpu = outputs["amis"]["value"]
    assert gpu.startswith("ami-") and cpu.startswith("ami-") and gpu != cpu


def test_instance_type_offerings_leave_out_zones_without_the_type(applied: Path) -> None:
    outputs = json.loads(terraform.run(["output", "-json"], cwd=applied).stdout)
    assert outputs["scarce_zones"]["value"] == ["us-east-1b", "us-east-1c"]
    assert outputs["common_zones"]["value"] == [f"us-east-1{x}" for x in "abcdef"]
