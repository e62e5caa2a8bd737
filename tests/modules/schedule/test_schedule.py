"""modules/schedule with real Terraform and the stand-in provider: the role may start and stop
exactly the one instance (and, with a customer managed key on its volumes, create grants for
AWS resources on that key), only EventBridge Scheduler of this account and group may assume
it, each schedule calls the EC2 API with the instance's id; and the full lifecycle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testkit.tftest_cases import Applied

HERE = Path(__file__).resolve().parent
MODULE = "modules/schedule"
INSTANCE_ID = "i-0123456789abcdef0"
INSTANCE_ARN = f"arn:aws:ec2:us-east-1:123456789012:instance/{INSTANCE_ID}"


def plan(plan_summary: Callable[..., Any], case: str) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / "common.tfvars"),
                                              str(HERE / f"{case}.tfvars")])


def statements(document: str) -> list[dict[str, Any]]:
    return json.loads(document)["Statement"]  # type: ignore[no-any-return]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_role_starts_and_stops_only_this_instance(plan_summary: Callable[..., Any]) -> None:
    summary = plan(plan_summary, "working_hours")
    (statement,) = statements(summary.values["aws_iam_role_policy.this"]["policy"])
    assert statement["Effect"] == "Allow"
    assert sorted(as_list(statement["Action"])) == ["ec2:StartInstances", "ec2:StopInstances"]
    assert as_list(statement["Resource"]) == [INSTANCE_ARN]
    assert "Condition" not in statement


def test_a_customer_managed_volume_key_gets_a_grant_for_aws_resources_only(
        plan_summary: Callable[..., Any]) -> None:
    summary = plan(plan_summary, "stop_only_kms")
    found = {s["Sid"]: s for s in statements(summary.values["aws_iam_role_policy.this"]["policy"])}
    assert set(found) == {"StartStopThisInstance", "GrantForEncryptedVolumes"}
    grant = found["GrantForEncryptedVolumes"]
    assert as_list(grant["Action"]) == ["kms:CreateGrant"]
    assert as_list(grant["Resource"]) == [
        "arn:aws:kms:us-east-1:123456789012:key/0b6a3c56-1d2e-4f5a-9b8c-7d6e5f4a3b2c"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_only_scheduler_of_this_account_and_group_assumes_the_role(
        plan_summary: Callable[..., Any]) -> None:
    summary = plan(plan_summary, "working_hours")
    (trust,) = statements(summary.values["aws_iam_role.this"]["assume_role_policy"])
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/llm-dev/*"},
    }


@pytest.mark.parametrize(("case", "actions"), [("working_hours", {"start", "stop"}),
                                               ("stop_only_kms", {"stop"})])
def test_each_schedule_calls_the_ec2_api_for_this_instance(
        plan_summary: Callable[..., Any], case: str, actions: set[str]) -> None:
    summary = plan(plan_summary, case)
    schedules = {a.split('"')[1]: v for a, v in summary.values.items()
                 if a.startswith("aws_scheduler_schedule.this[")}
    assert set(schedules) == actions
    for action, schedule in schedules.items():
        (target,) = schedule["target"]
        assert target["arn"] == f"arn:aws:scheduler:::aws-sdk:ec2:{action}Instances"
        assert json.loads(target["input"]) == {"InstanceIds": [INSTANCE_ID]}
        assert schedule["group_name"] == "llm-dev"
        assert schedule["flexible_time_window"][0]["mode"] == "OFF"
        assert schedule["schedule_expression"].startswith("cron(")
        assert not schedule["schedule_expression"].startswith("cron(cron(")


@pytest.mark.slow
def test_apply_then_replan_is_a_no_op_then_destroy(lifecycle: Callable[..., Applied]) -> None:
    applied = lifecycle(MODULE, {
        "name": "llm-dev", "region": "us-east-1", "account_id": "123456789012",
        "partition": "aws", "instance_id": INSTANCE_ID, "instance_arn": INSTANCE_ARN,
        "volume_kms_key_id": None,
        "schedule": {"start": "0 8 ? * MON-FRI *", "stop": "0 20 ? * MON-FRI *",
                     "timezone": "Europe/Berlin"},
    })
    assert applied.replan_exit_code == 0, "a second plan after apply must be empty"
    assert applied.destroyed
    role_arn = applied.outputs["role_arn"]
    for action in ("start", "stop"):
        schedule = applied.resources[f'aws_scheduler_schedule.this["{action}"]']
        assert schedule["target"][0]["role_arn"] == role_arn
        assert applied.outputs["schedule_arns"][action] == schedule["arn"]
