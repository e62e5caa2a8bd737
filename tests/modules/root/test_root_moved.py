"""An existing deployment keeps its resources when modules/ec2 gains the autoscaling mode:
the root module as it was before the move (taken from git) is applied on the stand-in, the
current code is put in its place, and the plan must move the single instance and what
belongs to it to their new addresses (modules/ec2/moved.tf) and change nothing else."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from testkit import plans
from testkit.tftest_cases import copy_module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VAR_FILES = [str(HERE / "existing_image.tfvars")]
# The last commit whose modules/ec2 created the instance unconditionally (main when the
# autoscaling mode was started). CI checks out the whole history (.github/workflows/test.yml).
BEFORE_THE_MOVE = "5556e842933b23f3f0cdd4c0bd01fa26bfd5e8f9"
MOVED = {
    f"module.ec2.{resource}": f"module.ec2.{resource}[0]"
    for resource in ("terraform_data.instance_version", "aws_instance.this",
                     "aws_ebs_volume.data", "aws_volume_attachment.data", "aws_eip.this",
                     "aws_eip_association.this")
}

pytestmark = pytest.mark.slow


def export_commit(commit: str, target: Path) -> None:
    """The root module, modules/ and app/ of `commit`, written under `target`."""
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                           check=False, capture_output=True)
    assert known.returncode == 0, (
        f"commit {commit} is not in this clone: the test needs the history (git fetch "
        "--unshallow, or actions/checkout with fetch-depth: 0)")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "main.tf", "variables.tf",
         "outputs.tf", "versions.tf", "modules", "app"],
        check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def test_an_existing_single_instance_deployment_plans_only_moves(tmp_path: Path) -> None:
    copy = tmp_path / "deployment"
    export_commit(BEFORE_THE_MOVE, copy)
    test = plans.terraform_test(copy)
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=VAR_FILES)
    before = set(MOVED) & {line for line in test.execute_command("state", "list").out.split()}
    assert before == set(MOVED), "the old layout holds the resources at their old addresses"

    # The current code in place of the old, with the old state.
    for stale in ("modules", "app"):
        shutil.rmtree(copy / stale)
    copy_module(".", copy, extra=["app"])
    try:
        with plans.terraform_errors("init"):
            test.init()
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
