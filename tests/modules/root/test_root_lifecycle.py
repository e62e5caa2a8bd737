"""The whole deployment through a real Terraform lifecycle on tftest (stand-in provider):
apply, the instance's IAM policy as applied (it is "known after apply" in every plan), a
second plan that is empty, an instance_version bump that replaces only the instance (the
new one first; the Elastic IP association and the data volume attachment move to it, the
address and the volume stay), and destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit import plans
from testkit.tftest_cases import copy_module, replan_exit_code, state_list, state_resources

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"  # the stand-in's aws_caller_identity


def actions(plan: Any) -> dict[str, list[str]]:
    return {address: c["change"]["actions"] for address, c in plan.resource_changes.items()}


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def check_instance_policy(state: dict[str, dict[str, Any]]) -> None:
    """The applied inline policy, statement by statement: exactly what the boot needs, on
    this deployment's own bucket prefix, repository and parameters."""
    role = state["module.ec2.aws_iam_role.this"]
    policy = state["module.ec2.aws_iam_role_policy.this"]
    assert policy["role"] == role["id"]
    assert state["module.ec2.aws_iam_instance_profile.this"]["role"] == role["name"]
    (assume,) = json.loads(role["assume_role_policy"])["Statement"]
    assert assume["Effect"] == "Allow"
    assert as_set(assume["Action"]) == {"sts:AssumeRole"}
    assert assume["Principal"] == {"Service": "ec2.amazonaws.com"}

    document = json.loads(policy["policy"])
    statements = {s["Sid"]: s for s in document["Statement"]}
    bucket = state["module.scripts_bucket.aws_s3_bucket.this"]["bucket"]
    repository = state["module.ecr.aws_ecr_repository.this"]["arn"]
    parameter = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/inference"
    expected = {
        "ReadScripts": ("Allow", {"s3:GetObject"}, {f"arn:aws:s3:::{bucket}/scripts/*"}),
        "EcrAuthorization": ("Allow", {"ecr:GetAuthorizationToken"}, {"*"}),
        "EcrPull": (
            "Allow",
            {"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
             "ecr:GetDownloadUrlForLayer"},
            {repository},
        ),
        "ReadSecrets": ("Allow", {"ssm:GetParameter"},
                        {f"{parameter}/hf_token", f"{parameter}/api_keys"}),
        "CreateApiKeys": ("Allow", {"ssm:PutParameter"}, {f"{parameter}/api_keys"}),
        "NeverOverwriteApiKeys": ("Deny", {"ssm:PutParameter"}, {f"{parameter}/api_keys"}),
    }
    assert set(statements) == set(expected)
    for sid, (effect, allowed, resources) in expected.items():
        statement = statements[sid]
        assert statement["Effect"] == effect, sid
        assert as_set(statement["Action"]) == allowed, sid
        assert as_set(statement["Resource"]) == resources, sid
        assert statement.get("Condition") == (
            {"StringEquals": {"ssm:Overwrite": "true"}} if sid == "NeverOverwriteApiKeys"
            else None), sid
    # The bucket and repository are this deployment's (names from the applied resources,
    # not a wildcard that would also match another deployment's).
    assert bucket == f"llm-dev-{ACCOUNT}-us-east-1"
    assert repository.startswith(f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/llm-dev")
    attached = state["module.ec2.aws_iam_role_policy_attachment.ssm_core"]
    assert attached["role"] == role["name"]
    assert attached["policy_arn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


@pytest.mark.slow
def test_apply_replan_replace_by_instance_version_destroy(tmp_path: Path) -> None:
    # app/ too: modules/build validates source_dir even when the build is off.
    copy = copy_module(".", tmp_path, extra=["app"])
    test = plans.terraform_test(copy)
    var_files = [str(HERE / "existing_image.tfvars")]
    bumped = [*var_files, *plans.var_files(tmp_path, (), {"instance_version": 2})]
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=var_files)
    before = state_resources(test)
    check_instance_policy(before)
    instance = before["module.ec2.aws_instance.this"]
    association = before["module.ec2.aws_eip_association.this"]
    assert association["instance_id"] == instance["id"]

    assert replan_exit_code(test, var_files) == 0, "a second plan after apply must be empty"

    with plans.terraform_errors("plan"):
        bump = test.plan(output=True, tf_var_file=bumped)
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
        change = bump.resource_changes[address]
        assert change["change"]["after_unknown"].get("instance_id") is True, address
    # Nothing else changes: not the Elastic IP, not the data volume, not the scripts.
    assert changed == {}

    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=bumped)
    after = state_resources(test)
    new_instance = after["module.ec2.aws_instance.this"]
    assert new_instance["id"] != instance["id"]
    # The address and the model volume survive; both now belong to the new instance.
    assert after["module.ec2.aws_eip.this"]["id"] == before["module.ec2.aws_eip.this"]["id"]
    assert after["module.ec2.aws_eip_association.this"]["instance_id"] == new_instance["id"]
    volume = "module.ec2.aws_ebs_volume.data"
    assert after[volume]["id"] == before[volume]["id"]
    assert after["module.ec2.aws_volume_attachment.data"]["instance_id"] == new_instance["id"]
    check_instance_policy(after)

    with plans.terraform_errors("destroy"):
        test.destroy(tf_var_file=bumped)
    assert state_list(test) == []
