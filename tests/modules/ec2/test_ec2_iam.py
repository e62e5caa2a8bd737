"""The instance role, statement by statement (the stand-in renders aws_iam_policy_document
to the IAM JSON the real data source produces): it reads its two SSM parameters and no
other, not even through a broader policy attached later, and Session Manager works
without AmazonSSMManagedInstanceCore (which allows ssm:GetParameter(s) on "*")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
MODULE = "modules/ec2"
PARAMETERS = "arn:aws:ssm:us-east-1:123456789012:parameter"


def files(case: str) -> list[str]:
    return [str(HERE / "common.tfvars"), str(HERE / f"{case}.tfvars")]


def statements(summary: Any) -> dict[str, dict[str, Any]]:
    policy = summary.values["aws_iam_role_policy.this"]["policy"]
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


@pytest.fixture(scope="module")
def policy(plan_summary: Any) -> dict[str, dict[str, Any]]:
    return statements(plan_summary(MODULE, tf_var_files=files("gpu_https")))


def test_the_policy_has_exactly_these_statements(policy: dict[str, dict[str, Any]]) -> None:
    assert list(policy) == ["ReadScripts", "ListScripts", "EcrAuthorization", "EcrPull",
                            "ReadSecrets", "FindDataVolume", "CreateApiKeys",
                            "SessionManagerRegister", "SessionManagerChannels",
                            "NoOtherParameters", "NeverOverwriteApiKeys"]


def test_scripts_and_image_are_read_from_this_deployment_only(
        policy: dict[str, dict[str, Any]]) -> None:
    assert policy["ReadScripts"] == {
        "Sid": "ReadScripts", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::llm-dev-123456789012-us-east-1/scripts/*"}
    # update.sh's one `aws s3 cp --recursive` lists the scripts' prefix, nothing else.
    assert policy["ListScripts"] == {
        "Sid": "ListScripts", "Effect": "Allow", "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::llm-dev-123456789012-us-east-1",
        "Condition": {"StringLike": {"s3:prefix": "scripts/*"}}}
    assert policy["EcrAuthorization"] == {
        "Sid": "EcrAuthorization", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
        "Resource": "*"}
    assert policy["EcrPull"]["Effect"] == "Allow"
    assert as_set(policy["EcrPull"]["Action"]) == {
        "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert policy["EcrPull"]["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/llm-dev"


def test_the_data_volume_is_found_by_reading_volume_metadata_only(
        policy: dict[str, dict[str, Any]]) -> None:
    # setup-data-volume.sh: `aws ec2 describe-volumes` for the volume at /dev/sdf.
    assert policy["FindDataVolume"] == {
        "Sid": "FindDataVolume", "Effect": "Allow", "Action": "ec2:DescribeVolumes",
        "Resource": "*"}


def test_secrets_are_the_deployments_own_two_parameters(
        policy: dict[str, dict[str, Any]]) -> None:
    own = {f"{PARAMETERS}/llm-dev/hf_token", f"{PARAMETERS}/llm-dev/api_keys"}
    assert policy["ReadSecrets"]["Effect"] == "Allow"
    assert as_set(policy["ReadSecrets"]["Action"]) == {"ssm:GetParameter"}
    assert as_set(policy["ReadSecrets"]["Resource"]) == own
    # Every way to read a parameter is denied on everything else, whatever else is attached.
    deny = policy["NoOtherParameters"]
    assert deny["Effect"] == "Deny"
    assert as_set(deny["Action"]) == {"ssm:GetParameter", "ssm:GetParameters",
                                      "ssm:GetParametersByPath", "ssm:GetParameterHistory"}
    assert as_set(deny["NotResource"]) == own
    assert "Resource" not in deny


def test_the_api_keys_parameter_can_be_created_but_never_overwritten(
        policy: dict[str, dict[str, Any]]) -> None:
    keys = f"{PARAMETERS}/llm-dev/api_keys"
    assert policy["CreateApiKeys"] == {"Sid": "CreateApiKeys", "Effect": "Allow",
                                       "Action": "ssm:PutParameter", "Resource": keys}
    assert policy["NeverOverwriteApiKeys"] == {
        "Sid": "NeverOverwriteApiKeys", "Effect": "Deny", "Action": "ssm:PutParameter",
        "Resource": keys, "Condition": {"StringEquals": {"ssm:Overwrite": "true"}}}


def test_session_manager_gets_only_what_it_needs(policy: dict[str, dict[str, Any]]) -> None:
    assert policy["SessionManagerRegister"] == {
        "Sid": "SessionManagerRegister", "Effect": "Allow",
        "Action": "ssm:UpdateInstanceInformation",
        "Resource": "arn:aws:ec2:us-east-1:123456789012:instance/*"}
    channels = policy["SessionManagerChannels"]
    assert channels["Effect"] == "Allow" and channels["Resource"] == "*"
    assert as_set(channels["Action"]) == {
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}


def test_no_allow_reaches_a_parameter_outside_the_deny(policy: dict[str, dict[str, Any]]) -> None:
    for sid, statement in policy.items():
        if statement["Effect"] != "Allow":
            continue
        actions = as_set(statement["Action"])
        assert not {a for a in actions if a.startswith("ssm:Get")} or as_set(
            statement["Resource"]) <= as_set(policy["NoOtherParameters"]["NotResource"]), sid
        assert "*" not in actions and "ssm:*" not in actions, sid


def test_no_managed_policy_is_attached(plan_summary: Any) -> None:
    for case in ("gpu_https", "cpu_no_https"):
        summary = plan_summary(MODULE, tf_var_files=files(case))
        assert not [a for a in summary.values if a.startswith("aws_iam_role_policy_attachment")]
        assert summary.counts.get("aws_iam_role_policy") == 1


def test_given_parameter_names_replace_the_defaults_everywhere(plan_summary: Any) -> None:
    summary = plan_summary(MODULE, tf_var_files=files("gpu_https"),
                           hf_token_parameter_name="/team/hf", api_keys_parameter_name="/team/k")
    policy = statements(summary)
    own = {f"{PARAMETERS}/team/hf", f"{PARAMETERS}/team/k"}
    assert as_set(policy["ReadSecrets"]["Resource"]) == own
    assert as_set(policy["NoOtherParameters"]["NotResource"]) == own
    env = summary.outputs["scripts"]["scripts/inference.env"]
    assert "HF_TOKEN_PARAMETER='/team/hf'" in env and "API_KEYS_PARAMETER='/team/k'" in env
