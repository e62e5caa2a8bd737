"""modules/route53 with real Terraform: one A record to the given address, in a zone
given by ID (no lookup) or looked up by name; the zone is required."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/route53"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def test_an_alias_record_points_at_the_load_balancer(plan_summary: Any) -> None:
    # The autoscaling mode: no address, an alias that answers only while targets are healthy.
    alias = {"name": "llm-dev-alb-1234.us-east-1.elb.amazonaws.com", "zone_id": "Z35SXDOTRQ7X7K"}
    record = plan(plan_summary, "zone_id", ip_addresses=[], alias=alias).values[
        "aws_route53_record.this"]
    assert record["alias"] == [{**alias, "evaluate_target_health": True}]
    assert record.get("records") is None and record.get("ttl") is None
    assert record["type"] == "A"


def test_record_points_the_name_at_the_address(plan_summary: Any) -> None:
    summary = plan(plan_summary, "zone_id")
    record = summary.values["aws_route53_record.this"]
    assert record["zone_id"] == "Z0123456789ABCDEFGHIJ"
    assert record["name"] == "llm.example.com"
    assert record["type"] == "A"
    assert record["records"] == ["203.0.113.10"]
    assert record["ttl"] == 60
    assert not summary.raw.get("prior_state", {}).get("values", {}).get("root_module", {}).get(
        "resources"
    ), "an explicit zone_id must not read any data source"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"zone_id": None, "zone_name": None}, "Set zone_id or zone_name"),
        ({"record_name": "not a name"}, "record_name must be a fully qualified domain name"),
        ({"ip_addresses": []}, "either ip_addresses (at least one) or an alias"),
        ({"alias": {"name": "lb.example.com", "zone_id": "Z35SXDOTRQ7X7K"}},
         "either ip_addresses (at least one) or an alias, not both"),
        ({"ttl": -1}, "ttl must be between 0 and 86400 seconds"),
    ],
)
def test_invalid_configuration_fails_with_its_message(
    plan_summary: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "zone_id", **overrides)
    assert message in " ".join(str(failure.value).split())
