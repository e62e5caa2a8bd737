"""The cost controls planned with the root module (issue 15): Spot (a persistent request that
stops on an interruption), working hours (modules/schedule, wired to the instance), the idle
stop (its timer rendered only when it is on), the instance's shutdown behaviour, the
cost-allocation tags on every resource, and every refusal of a setting that cannot work."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from testkit import inventory, render
from testkit.plans import data_sources
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
INSTANCE = "module.ec2.aws_instance.this[0]"
IDLE_FILES = {"idle-stop.sh", "inference-idle-stop.service", "inference-idle-stop.timer"}
SPOT_FILES = {"spot-notice.sh", "inference-spot-notice.service", "inference-spot-notice.timer"}
WORKING_HOURS = {"start": "0 8 ? * MON-FRI *", "stop": "0 20 ? * MON-FRI *",
                 "timezone": "Europe/Berlin"}


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(".", tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def plan_error(plan_summary: Any, case: str, **tf_vars: Any) -> str:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, case, **tf_vars)
    return " ".join(str(failure.value).split())


def scripts(summary: Any) -> dict[str, str]:
    return render.artifacts_from_plan(summary.raw)


@pytest.fixture(scope="module")
def default(plan_summary: Any) -> Any:
    return plan(plan_summary, "explicit_ami")


@pytest.fixture(scope="module")
def cost(plan_summary: Any) -> Any:
    return plan(plan_summary, "cost_controls")


# --- the defaults: On-Demand, always on, never terminated --------------------------------


def test_by_default_on_demand_without_schedule_or_idle_stop(default: Any) -> None:
    instance = default.values[INSTANCE]
    assert not instance.get("instance_market_options")
    assert not [a for a in default.values if a.startswith("module.schedule")]
    files = set(scripts(default))
    assert not files & (IDLE_FILES | SPOT_FILES)
    services = scripts(default)["setup-services.sh"]
    # Nothing to start; a timer an earlier apply turned on is stopped and removed.
    assert "timers_on=()" in services
    assert "timers_off=(inference-idle-stop inference-spot-notice )" in services
    assert default.outputs["schedule"] is None
    # No Spot lookup when Spot is off (plans stay free of lookups they do not need).
    assert not [a for a in data_sources(default.raw) if "aws_ec2_instance_type.spot" in a]


@pytest.mark.parametrize("case", ["explicit_ami", "cost_controls"])
def test_the_machine_powering_itself_off_stops_the_instance_never_terminates(
        plan_summary: Any, case: str) -> None:
    assert plan(plan_summary, case).values[INSTANCE][
        "instance_initiated_shutdown_behavior"] == "stop"


def test_start_command_starts_this_instance(default: Any) -> None:
    # The instance id is known after apply; the command is built from it and the region.
    assert default.outputs["start_command"] == inventory.UNKNOWN
    output = default.raw["configuration"]["root_module"]["outputs"]["start_command"]
    assert set(output["expression"]["references"]) >= {"module.ec2.instance_id", "var.region"}
    assert (inventory.ROOT / "outputs.tf").read_text().count(
        '"aws ec2 start-instances --region ${var.region} --instance-ids '
        '${module.ec2.instance_id}"') == 1


# --- Spot ----------------------------------------------------------------------------------


def test_spot_is_a_persistent_request_that_stops_on_interruption(cost: Any) -> None:
    (market,) = cost.values[INSTANCE]["instance_market_options"]
    assert market["market_type"] == "spot"
    (spot,) = market["spot_options"]
    assert spot["spot_instance_type"] == "persistent"
    assert spot["instance_interruption_behavior"] == "stop"
    assert spot["max_price"] == "0.60"
    # No expiry: the request lasts as long as the instance (a persistent request that
    # expires or is cancelled takes its stopped instance with it).
    assert not spot.get("valid_until")
    assert "module.ec2.data.aws_ec2_instance_type.spot[0]" in data_sources(cost.raw)


def test_spot_without_a_price_pays_at_most_the_on_demand_price(plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami", use_spot=True)
    (market,) = summary.values[INSTANCE]["instance_market_options"]
    assert not market["spot_options"][0].get("max_price")
    assert set(scripts(summary)) >= SPOT_FILES
    assert not IDLE_FILES & set(scripts(summary))
    quota = summary.outputs["instance_quota_command"]
    assert "contains(QuotaName, 'Spot') && contains(QuotaName, 'G and VT')" in quota


def test_the_spot_notice_timer_polls_imds_and_drains_the_proxy(cost: Any) -> None:
    files = scripts(cost)
    timer = files["inference-spot-notice.timer"]
    assert "OnUnitActiveSec=5s" in timer and "WantedBy=timers.target" in timer
    script = files["spot-notice.sh"]
    assert "imds meta-data/spot/instance-action" in script
    assert "systemctl stop inference-proxy.service" in script
    assert "ExecStart=/opt/inference/scripts/spot-notice.sh" in files[
        "inference-spot-notice.service"]


# --- working hours -------------------------------------------------------------------------


def test_working_hours_start_and_stop_this_instance(cost: Any) -> None:
    schedules = {a: v for a, v in cost.values.items()
                 if a.startswith("module.schedule[0].aws_scheduler_schedule.this[")}
    assert set(schedules) == {f'module.schedule[0].aws_scheduler_schedule.this["{action}"]'
                              for action in ("start", "stop")}
    start = schedules['module.schedule[0].aws_scheduler_schedule.this["start"]']
    stop = schedules['module.schedule[0].aws_scheduler_schedule.this["stop"]']
    assert start["schedule_expression"] == "cron(0 8 ? * MON-FRI *)"
    # Written as cron(...) in the tfvars: taken as it is, not wrapped twice.
    assert stop["schedule_expression"] == "cron(0 20 ? * MON-FRI *)"
    assert start["schedule_expression_timezone"] == "Europe/Berlin"
    assert start["target"][0]["arn"] == "arn:aws:scheduler:::aws-sdk:ec2:startInstances"
    assert stop["target"][0]["arn"] == "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"
    # The instance id is known after apply; the wiring is the instance module's outputs.
    call = cost.raw["configuration"]["root_module"]["module_calls"]["schedule"]["expressions"]
    assert call["instance_arn"]["references"][0] == "module.ec2.instance_arn"
    assert call["instance_id"]["references"][0] == "module.ec2.instance_id"
    unknown = inventory.UNKNOWN  # the ARNs are known after apply
    assert cost.outputs["schedule"] == {"schedule_arns": {"start": unknown, "stop": unknown},
                                        "role_arn": unknown}


def test_a_stop_only_schedule_has_one_schedule(plan_summary: Any) -> None:
    summary = plan(plan_summary, "explicit_ami", schedule={"stop": "0 20 * * ? *"})
    schedules = [a for a in summary.values if ".aws_scheduler_schedule.this[" in a]
    assert schedules == ['module.schedule[0].aws_scheduler_schedule.this["stop"]']
    assert summary.values[schedules[0]]["schedule_expression_timezone"] == "UTC"


# --- idle stop -----------------------------------------------------------------------------


def test_the_idle_timer_is_rendered_only_when_idle_stop_is_on(cost: Any) -> None:
    files = scripts(cost)
    assert set(files) >= IDLE_FILES
    assert "threshold=$((30 * 60))" in files["idle-stop.sh"]
    assert "OnUnitActiveSec=1min" in files["inference-idle-stop.timer"]
    services = files["setup-services.sh"]
    assert "timers_on=(inference-idle-stop inference-spot-notice )" in services
    assert "timers_off=()" in services
    assert "inference-idle-stop.timer inference-spot-notice.timer" in files["check-services.sh"]
    # It powers the machine off; the instance's shutdown behaviour makes that a stop.
    assert re.search(r"^shutdown --poweroff now ", files["idle-stop.sh"], re.M)


# --- cost-allocation tags ------------------------------------------------------------------


def test_every_taggable_resource_carries_the_cost_allocation_tag(cost: Any) -> None:
    """Every resource whose type takes tags gets the provider's default_tags merged with the
    user's `tags` (tags_all); the few types AWS cannot tag are named here, so a new
    untaggable type is a decision, not an accident."""
    untaggable = {"aws_iam_role_policy", "aws_route", "aws_route_table_association",
                  "aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning",
                  "aws_s3_bucket_server_side_encryption_configuration",
                  "aws_s3_bucket_policy", "aws_s3_bucket_ownership_controls",
                  "aws_s3_bucket_lifecycle_configuration", "aws_ecr_lifecycle_policy",
                  "aws_volume_attachment", "aws_eip_association", "aws_scheduler_schedule",
                  "aws_default_security_group", "terraform_data",
                  # tags_all is not in the provider schema of a CloudWatch dashboard
                  "aws_cloudwatch_dashboard"}
    resources = [c for c in cost.raw["resource_changes"] if c["mode"] == "managed"
                 and not c["address"].startswith("module.build[")]
    checked = 0
    for change in resources:
        after = change["change"]["after"] or {}
        if "tags_all" not in after and change["type"] not in untaggable:
            raise AssertionError(f"{change['address']} has no tags_all and is not known "
                                 "to be untaggable")
        if "tags_all" in after:
            tags = after["tags_all"] or {}
            assert tags.get("CostCenter") == "ml-platform-1234", change["address"]
            assert tags.get("Project") == "ec2-inference", change["address"]
            checked += 1
    assert checked >= 30


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", [
    "0 8 * * MON-FRI *",        # a value in both day fields
    "0 8 ? * ? *",              # ? in both
    "0 8 * * MON-FRI",          # five fields (Unix cron)
    "rate(1 hour)",             # not a cron expression
    "0 8 ? * MON-FRI * extra",  # seven fields
])
def test_a_bad_cron_expression_is_refused(plan_summary: Any, expression: str) -> None:
    message = plan_error(plan_summary, "explicit_ami",
                         schedule={**WORKING_HOURS, "start": expression})
    assert "schedule.start and schedule.stop must be EventBridge cron expressions" in message


def test_a_schedule_without_start_or_stop_is_refused(plan_summary: Any) -> None:
    message = plan_error(plan_summary, "explicit_ami", schedule={"timezone": "UTC"})
    assert "schedule needs start, stop or both" in message


def test_a_bad_time_zone_is_refused(plan_summary: Any) -> None:
    message = plan_error(plan_summary, "explicit_ami",
                         schedule={**WORKING_HOURS, "timezone": "+01:00"})
    assert "schedule.timezone must be an IANA time zone" in message


@pytest.mark.parametrize("minutes", [0, 4, 4.5])
def test_idle_minutes_below_five_or_fractional_are_refused(plan_summary: Any,
                                                           minutes: float) -> None:
    message = plan_error(plan_summary, "explicit_ami", idle_stop_minutes=minutes)
    assert "idle_stop_minutes must be a whole number of minutes >= 5" in message


@pytest.mark.parametrize("price", ["0", "-1", "cheap", "$0.50"])
def test_a_bad_spot_price_is_refused(plan_summary: Any, price: str) -> None:
    message = plan_error(plan_summary, "explicit_ami", use_spot=True, spot_max_price=price)
    assert "spot_max_price must be a price in USD per hour greater than 0" in message


@pytest.mark.parametrize("instance_type", ["mac2.metal", "u-6tb1.metal"])
def test_spot_with_a_type_that_cannot_stop_on_spot_is_refused(plan_summary: Any,
                                                              instance_type: str) -> None:
    message = plan_error(plan_summary, "explicit_ami", use_gpu=False, use_spot=True,
                         instance_type=instance_type, allowed_cidr_blocks=["198.51.100.0/24"])
    assert f"use_spot: {instance_type} cannot run as a Spot instance that stops on an " \
           "interruption" in message
    assert "EC2 offers it for on-demand" in message
    # The same type On-Demand plans.
    plan(plan_summary, "explicit_ami", use_gpu=False, instance_type=instance_type,
         allowed_cidr_blocks=["198.51.100.0/24"])


def test_a_spot_price_without_spot_is_refused(plan_summary: Any) -> None:
    message = plan_error(plan_summary, "explicit_ami", spot_max_price="0.60")
    assert "spot_max_price is set but use_spot is false" in message


def test_the_schedule_module_gets_the_volume_key(cost: Any) -> None:
    # The root has no customer managed key: the default aws/ebs key needs no KMS grant
    # (modules/schedule's own tests cover a key).
    call = cost.raw["configuration"]["root_module"]["module_calls"]["schedule"]["expressions"]
    assert call["volume_kms_key_id"]["references"][0] == "module.ec2.volume_kms_key_id"
    assert json.dumps(cost.values).count("kms:CreateGrant") == 0


# --- the autoscaling mode ------------------------------------------------------------------


def test_in_the_autoscaling_mode_spot_is_the_groups_mix_with_the_price_cap_and_the_notice(
        plan_summary: Any) -> None:
    """Spot there is modules/autoscaling's mixed-instances policy (one-time requests the
    group replaces); spot_max_price caps it too, and the instances drain on the notice."""
    summary = plan_summary(".", tf_var_files=[
        str(HERE.parent / "root_autoscaling" / "spot_one_instance.tfvars")],
        spot_max_price="0.60")
    group = summary.values["module.autoscaling[0].aws_autoscaling_group.this"]
    (policy,) = group["mixed_instances_policy"]
    (distribution,) = policy["instances_distribution"]
    assert distribution["spot_max_price"] == "0.60"
    assert not [a for a in summary.values if a.startswith("module.ec2.aws_instance.")]
    assert set(scripts(summary)) >= SPOT_FILES
    assert summary.outputs["start_command"] is None
