"""modules/ecr with real Terraform and the stand-in provider: the full lifecycle, and the
variable rules that a plan enforces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from testkit.tftest_cases import Applied, terraform

MODULE = "modules/ecr"


@pytest.mark.slow
def test_apply_then_replan_is_a_no_op_then_destroy(lifecycle: Callable[..., Applied]) -> None:
    applied = lifecycle(MODULE, {"name": "inference-proxy", "image_retention_count": 5,
                                 "tags": {"Component": "proxy"}})
    assert applied.replan_exit_code == 0, "a second plan after apply must be empty"
    assert applied.destroyed
    repository = applied.resources["aws_ecr_repository.this"]
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"] == [{"scan_on_push": True}]
    assert repository["force_delete"] is False
    outputs = applied.outputs
    assert outputs["repository_name"] == "inference-proxy"
    registry = outputs["registry_id"]
    assert outputs["repository_url"] == (
        f"{registry}.dkr.ecr.us-east-1.amazonaws.com/inference-proxy")
    assert outputs["repository_arn"].startswith("arn:aws:ecr:us-east-1:")
    policy = json.loads(applied.resources["aws_ecr_lifecycle_policy.this"]["policy"])
    (rule,) = policy["rules"]
    assert rule["selection"]["countNumber"] == 5
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["action"] == {"type": "expire"}


@pytest.mark.parametrize("count", [0, -1, 2.5])
def test_image_retention_count_must_be_a_positive_whole_number(
        plan_summary: Callable[..., Any], count: float) -> None:
    with pytest.raises(terraform.TerraformError) as failure:
        plan_summary(MODULE, name="proxy", image_retention_count=count)
    assert "image_retention_count must be a whole number greater than 0" in failure.value.stderr


def test_name_must_be_a_valid_repository_name(plan_summary: Callable[..., Any]) -> None:
    with pytest.raises(terraform.TerraformError) as failure:
        plan_summary(MODULE, name="Inference Proxy")
    assert "name must be 2-256 characters of lowercase letters" in failure.value.stderr
