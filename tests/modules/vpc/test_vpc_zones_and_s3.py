"""modules/vpc keeps its subnets in usable zones (the root passes the zones that offer the
instance type) and routes S3 through a free gateway endpoint, so an instance without a
public address yet can still fetch its scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/vpc"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def zones(summary: Any, tier: str = "public") -> list[str]:
    return [v["availability_zone"] for a, v in sorted(summary.values.items())
            if a.startswith(f"aws_subnet.{tier}[")]


def test_usable_zones_filter_looked_up_and_given_zones(plan_summary: Any) -> None:
    looked_up = plan(plan_summary, "lookup_azs", az_count=2,
                     usable_zones=["us-east-1c", "us-east-1e"])
    assert zones(looked_up) == ["us-east-1c", "us-east-1e"]
    assert looked_up.outputs["availability_zones"] == ["us-east-1c", "us-east-1e"]
    given = plan(plan_summary, "private_nat", usable_zones=["us-east-1b", "us-east-1c"])
    assert zones(given) == ["us-east-1b", "us-east-1c"]
    assert zones(given, "private") == ["us-east-1b", "us-east-1c"]
    assert zones(plan(plan_summary, "default")) == ["us-east-1a", "us-east-1b"]


def test_no_usable_zone_fails_naming_both_lists(plan_summary: Any) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "default", usable_zones=["us-east-1f"])
    message = " ".join(str(failure.value).split())
    assert "None of the availability zones us-east-1a, us-east-1b is usable" in message
    assert "(usable_zones: us-east-1f)" in message


def test_s3_gateway_endpoint_serves_every_route_table(plan_summary: Any) -> None:
    summary = plan(plan_summary, "private_nat")
    endpoint = summary.values["aws_vpc_endpoint.s3"]
    assert endpoint["service_name"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpc_endpoint_type"] == "Gateway"
    (config,) = [r for r in summary.raw["configuration"]["root_module"]["resources"]
                 if r["address"] == "aws_vpc_endpoint.s3"]
    references = config["expressions"]["route_table_ids"]["references"]
    assert "aws_route_table.public.id" in references
    assert "aws_route_table.private" in references
    assert summary.outputs["s3_endpoint_id"] is not None
