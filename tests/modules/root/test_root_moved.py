"""An existing deployment keeps its resources now that modules/ec2 also serves the autoscaling
mode. The single instance and what belongs to it gained `count` (a new address, `[0]`), and
modules/ec2/moved.tf maps the old addresses to the new ones.

The old layout is the current code with that step undone: the `count` lines of the moved
resources removed, their `[0]` / `[count.index]` references made bare and moved.tf deleted
(the layout modules/ec2 had up to commit 5556e842933b, when it created these resources
unconditionally). Undoing the step on today's code, rather than checking out that commit,
keeps the test about the move alone while other changes land in the same files. The old
layout is applied on the stand-in, the current code put in its place, and the plan must move
exactly these resources and change nothing. (Terraform would also move a resource that
gains count to [0] without the blocks; the test holds the outcome, whichever does it.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from testkit import plans
from testkit.tftest_cases import copy_module

HERE = Path(__file__).resolve().parent
VAR_FILES = [str(HERE / "existing_image.tfvars")]
RESOURCES = ("terraform_data.instance_version", "aws_instance.this", "aws_ebs_volume.data",
             "aws_volume_attachment.data", "aws_eip.this", "aws_eip_association.this")
MOVED = {f"module.ec2.{resource}": f"module.ec2.{resource}[0]" for resource in RESOURCES}
COUNT_LINE = "  count = local.single_instance ? 1 : 0\n"

pytestmark = pytest.mark.slow


def undo_the_move(module: Path) -> None:
    """Turn modules/ec2 (a copy) back into the layout without `count` on RESOURCES."""
    (module / "moved.tf").unlink()
    counts_removed = []
    for tf in sorted(module.glob("*.tf")):
        text = tf.read_text()
        for resource in RESOURCES:
            kind, name = resource.split(".")
            # The header, any comment lines (checkov skips), then the count line.
            block = re.compile(rf'(resource "{kind}" "{name}" {{\n(?:\s*#[^\n]*\n)*)'
                               + re.escape(COUNT_LINE))
            text, found = block.subn(r"\1", text)
            counts_removed += [resource] * found
            text = re.sub(re.escape(resource) + r"\[(0|count\.index)\]", resource, text)
        tf.write_text(text)
    assert sorted(counts_removed) == sorted(RESOURCES), (
        "each moved resource starts with the count line this test removes; if that changed, "
        f"change undo_the_move too (found {counts_removed})")


def test_an_existing_single_instance_deployment_plans_only_moves(tmp_path: Path) -> None:
    copy = tmp_path / "deployment"
    copy_module(".", copy, extra=["app"])
    undo_the_move(copy / "modules" / "ec2")
    test = plans.terraform_test(copy)
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=VAR_FILES)
    before = set(MOVED) & set(test.execute_command("state", "list").out.split())
    assert before == set(MOVED), "the old layout holds the resources at their old addresses"

    # The current code in place of the old, with the old state.
    copy_module("modules/ec2", copy)
    assert (copy / "modules" / "ec2" / "moved.tf").exists()
    try:
        with plans.terraform_errors("plan"):
            test.execute_command("plan", "-input=false", "-no-color", "-out=moved.tfplan",
                                 *(f"-var-file={f}" for f in VAR_FILES))
            plan: dict[str, Any] = json.loads(
                test.execute_command("show", "-json", "moved.tfplan").out)
        changed = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]
                   if c["change"]["actions"] != ["no-op"]}
        assert changed == {}, f"the move must change nothing: {changed}"
        moves = {c["previous_address"]: c["address"] for c in plan["resource_changes"]
                 if c.get("previous_address")}
        assert moves == MOVED
    finally:
        with plans.terraform_errors("destroy"):
            test.destroy(tf_var_file=VAR_FILES)
