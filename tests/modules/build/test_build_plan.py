"""modules/build's inputs are checked at plan time, with messages that say what to pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/build"


def plan(plan_summary: Any, **tf_vars: Any) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / "ecr.tfvars")], **tf_vars)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"repository_url": "inference-proxy"}, "repository_url must look like host"),
        ({"repository_url": "https://example.com/x"}, "repository_url must look like host"),
        ({"source_dir": str(HERE)}, "source_dir must be a directory containing a Dockerfile"),
    ],
    ids=["no-host", "scheme", "no-dockerfile"],
)
def test_bad_inputs_fail_the_plan_with_a_clear_message(
    plan_summary: Any, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(TerraformError, match=message):
        plan(plan_summary, **overrides)


def test_a_changed_file_changes_the_planned_tag(plan_summary: Any, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    first = plan(plan_summary, source_dir=str(context)).outputs["image_tag"]
    (context / "Dockerfile").write_text("FROM scratch\n\n")
    second = plan(plan_summary, source_dir=str(context)).outputs["image_tag"]
    assert first != second
    assert first.endswith("-amd64") and second.endswith("-amd64")
    assert len(first) == len(second) == len("0123456789abcdef-amd64")


def test_the_platform_reaches_the_tag_and_the_build_command(plan_summary: Any) -> None:
    amd64 = plan(plan_summary)
    arm64 = plan(plan_summary, platform="linux/arm64")
    assert amd64.outputs["image_tag"].endswith("-amd64")
    assert arm64.outputs["image_tag"] == amd64.outputs["image_tag"].replace("-amd64", "-arm64")
    triggers = arm64.values["terraform_data.image"]["triggers_replace"]
    assert triggers["platform"] == "linux/arm64"
    with pytest.raises(TerraformError, match="platform must be one of linux/amd64, linux/arm64"):
        plan(plan_summary, platform="linux/386")


def test_a_python_that_does_not_exist_fails_the_plan(plan_summary: Any) -> None:
    with pytest.raises(TerraformError, match="python is /nowhere/python3, which does not exist"):
        plan(plan_summary, python="/nowhere/python3")
