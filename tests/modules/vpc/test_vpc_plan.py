"""modules/vpc planned with real Terraform: subnets per zone, no public IPs on launch, a
rule-less default security group, NAT only with private subnets, and the validations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/vpc"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def of_type(summary: Any, resource_type: str) -> dict[str, Any]:
    return {a: v for a, v in summary.values.items() if a.split("[")[0] == resource_type}


def test_public_subnets_only_by_default(plan_summary: Any) -> None:
    summary = plan(plan_summary, "default")
    subnets = of_type(summary, "aws_subnet.public")
    assert [s["cidr_block"] for s in subnets.values()] == ["10.20.0.0/24", "10.20.1.0/24"]
    assert [s["availability_zone"] for s in subnets.values()] == ["us-east-1a", "us-east-1b"]
    assert all(s["map_public_ip_on_launch"] is False for s in subnets.values())
    assert not of_type(summary, "aws_subnet.private")
    assert not of_type(summary, "aws_nat_gateway.this")
    assert summary.outputs["private_subnet_ids"] == []
    assert summary.outputs["nat_gateway_id"] is None


def test_default_security_group_has_no_rules(plan_summary: Any) -> None:
    default_group = plan(plan_summary, "default").values["aws_default_security_group.this"]
    assert default_group["ingress"] == []
    assert default_group["egress"] == []


def test_private_subnets_route_through_one_nat_gateway(plan_summary: Any) -> None:
    summary = plan(plan_summary, "private_nat")
    private = of_type(summary, "aws_subnet.private")
    assert [s["cidr_block"] for s in private.values()] == [
        "10.20.100.0/24",
        "10.20.101.0/24",
        "10.20.102.0/24",
    ]
    assert len(of_type(summary, "aws_nat_gateway.this")) == 1
    assert summary.values["aws_route.private_nat[0]"]["destination_cidr_block"] == "0.0.0.0/0"
    assert len(of_type(summary, "aws_route_table_association.private")) == 3


def test_zones_are_looked_up_only_when_not_given(plan_summary: Any) -> None:
    def reads_zones(summary: Any) -> bool:
        return any(
            change["address"] == "data.aws_availability_zones.available[0]"
            for change in summary.raw.get("resource_changes", [])
        ) or any(
            r["address"] == "data.aws_availability_zones.available[0]"
            for r in summary.raw.get("prior_state", {})
            .get("values", {})
            .get("root_module", {})
            .get("resources", [])
        )

    assert reads_zones(plan(plan_summary, "lookup_azs"))
    assert not reads_zones(plan(plan_summary, "default"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"enable_nat_gateway": True},
            "enable_nat_gateway needs enable_private_subnets = true",
        ),
        ({"cidr_block": "10.0.0.0/24"}, "cidr_block must be a valid IPv4 CIDR block"),
        ({"cidr_block": "10.0.0.0"}, "cidr_block must be a valid IPv4 CIDR block"),
        ({"az_count": 7}, "az_count must be a whole number between 1 and 6"),
        ({"name": "Bad_Name"}, "name must start with a lowercase letter"),
    ],
)
def test_invalid_configuration_fails_with_its_message(
    plan_summary: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "default", **overrides)
    assert message in " ".join(str(failure.value).split())
