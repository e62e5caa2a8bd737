"""The whole deployment through a real Terraform lifecycle (stand-in provider): apply, a
second plan that is empty, an instance_version bump that replaces only the instance (the
new one first; the Elastic IP association and the data volume attachment move to it, the
address and the volume stay), and destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.tftest_cases import copy_module
from tools import terraform

HERE = Path(__file__).resolve().parent


def actions(plan: dict[str, Any]) -> dict[str, list[str]]:
    return {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}


def state_resources(copy: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    state = json.loads(terraform.run(["show", "-json"], cwd=copy, env=env).stdout)
    found: dict[str, dict[str, Any]] = {}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            found[resource["address"]] = resource["values"]
        for child in module.get("child_modules", []):
            walk(child)

    walk(state.get("values", {}).get("root_module", {}))
    return found


@pytest.mark.slow
def test_apply_replan_replace_by_instance_version_destroy(tmp_path: Path) -> None:
    # app/ too: modules/build validates source_dir even when the build is off.
    copy = copy_module(".", tmp_path, extra=["app"])
    env = terraform.terraform_env()
    var_file = f"-var-file={HERE / 'existing_image.tfvars'}"
    terraform.run(["init", "-input=false", "-no-color"], cwd=copy, env=env)
    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve", var_file], cwd=copy,
                  env=env)
    before = state_resources(copy, env)
    instance = before["module.ec2.aws_instance.this"]
    association = before["module.ec2.aws_eip_association.this"]
    assert association["instance_id"] == instance["id"]

    replan = terraform.run(["plan", "-input=false", "-no-color", "-detailed-exitcode", var_file],
                           cwd=copy, env=env, check=False)
    assert replan.returncode == 0, f"a second plan after apply must be empty:\n{replan.stdout}"

    terraform.run(["plan", "-input=false", "-no-color", "-out=bump.tfplan", var_file,
                   "-var", "instance_version=2"], cwd=copy, env=env)
    bump = json.loads(terraform.run(["show", "-json", "bump.tfplan"], cwd=copy, env=env).stdout)
    changed = {a: acts for a, acts in actions(bump).items() if acts != ["no-op"]}
    # create_before_destroy: the new instance exists before the old one goes.
    assert changed.pop("module.ec2.aws_instance.this") == ["create", "delete"]
    assert changed.pop("module.ec2.terraform_data.instance_version") == ["update"]
    # The association and the attachment move to the new instance: AWS replaces them
    # (instance_id forces a new one), which the stand-in cannot know and plans as an
    # update; either way their instance_id becomes the new, unknown instance ID.
    movers = ("module.ec2.aws_eip_association.this", "module.ec2.aws_volume_attachment.data")
    for address in movers:
        assert changed.pop(address) in (["update"], ["delete", "create"]), address
        (change,) = [c for c in bump["resource_changes"] if c["address"] == address]
        assert change["change"]["after_unknown"].get("instance_id") is True, address
    # Nothing else changes: not the Elastic IP, not the data volume, not the scripts.
    assert changed == {}

    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve", "bump.tfplan"],
                  cwd=copy, env=env)
    after = state_resources(copy, env)
    new_instance = after["module.ec2.aws_instance.this"]
    assert new_instance["id"] != instance["id"]
    # The address and the model volume survive; both now belong to the new instance.
    assert after["module.ec2.aws_eip.this"]["id"] == before["module.ec2.aws_eip.this"]["id"]
    assert after["module.ec2.aws_eip_association.this"]["instance_id"] == new_instance["id"]
    volume = "module.ec2.aws_ebs_volume.data"
    assert after[volume]["id"] == before[volume]["id"]
    assert after["module.ec2.aws_volume_attachment.data"]["instance_id"] == new_instance["id"]

    terraform.run(["destroy", "-input=false", "-no-color", "-auto-approve", var_file,
                   "-var", "instance_version=2"], cwd=copy, env=env)
    remaining = terraform.run(["state", "list"], cwd=copy, env=env, check=False)
    assert not remaining.stdout.strip(), remaining.stdout
