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
    assert len(first) == len(second) == 16
