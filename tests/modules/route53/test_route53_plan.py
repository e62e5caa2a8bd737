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
        ({"ip_addresses": []}, "ip_addresses needs at least one address"),
        ({"ttl": -1}, "ttl must be between 0 and 86400 seconds"),
    ],
)
def test_invalid_configuration_fails_with_its_message(
    plan_summary: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "zone_id", **overrides)
    assert message in " ".join(str(failure.value).split())
