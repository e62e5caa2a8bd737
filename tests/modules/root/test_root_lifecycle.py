"""The whole deployment through a real Terraform lifecycle (stand-in provider, which plans
replacements from terraform-provider-aws's ForceNew table): apply, an empty second plan, an
instance_version bump with the actions and the order AWS would see, a launch that fails
half way (GPU capacity errors are common) and the documented way back, and destroy.
docs/OPERATIONS.md "Replacing the instance" describes what these tests pin down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testkit.tftest_cases import copy_module
from tools import terraform

HERE = Path(__file__).resolve().parent
VAR_FILE = f"-var-file={HERE / 'existing_image.tfvars'}"
INSTANCE = "module.ec2.aws_instance.this"
ATTACHMENT = "module.ec2.aws_volume_attachment.data"
ASSOCIATION = "module.ec2.aws_eip_association.this"
VERSION = "module.ec2.terraform_data.instance_version"

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    copy: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, **env: str) -> Any:
        return terraform.run(list(args), cwd=self.copy, env={**self.env, **env}, check=check)

    def state(self) -> dict[str, dict[str, Any]]:
        shown = json.loads(self.run("show", "-json").stdout)
        found: dict[str, dict[str, Any]] = {}

        def walk(module: dict[str, Any]) -> None:
            for resource in module.get("resources", []):
                found[resource["address"]] = resource["values"]
            for child in module.get("child_modules", []):
                walk(child)

        walk(shown.get("values", {}).get("root_module", {}))
        return found

    def plan(self, *variables: str) -> dict[str, Any]:
        args = [arg for variable in variables for arg in ("-var", variable)]
        self.run("plan", "-input=false", "-no-color", "-out=next.tfplan", VAR_FILE, *args)
        return json.loads(self.run("show", "-json", "next.tfplan").stdout)  # type: ignore[no-any-return]

    def apply_events(self, **env: str) -> tuple[int, list[tuple[str, str, str]]]:
        """Apply next.tfplan; (exit code, [(event, address, action)] in the order Terraform
        reported them)."""
        done = self.run("apply", "-input=false", "-json", "next.tfplan", check=False, **env)
        events = []
        for line in done.stdout.splitlines():
            message = json.loads(line)
            if message.get("type") in ("apply_start", "apply_complete", "apply_errored"):
                hook = message["hook"]
                events.append((message["type"], hook["resource"]["addr"], hook["action"]))
        return done.returncode, events


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployment]:
    # app/ too: modules/build validates source_dir even when the build is off.
    deployment = Deployment(copy_module(".", tmp_path, extra=["app"]), terraform.terraform_env())
    deployment.run("init", "-input=false", "-no-color")
    deployment.run("apply", "-input=false", "-no-color", "-auto-approve", VAR_FILE)
    yield deployment
    deployment.run("destroy", "-input=false", "-no-color", "-auto-approve", VAR_FILE,
                   check=False)


def changes(plan: dict[str, Any]) -> dict[str, tuple[list[str], str | None]]:
    return {c["address"]: (c["change"]["actions"], c.get("action_reason"))
            for c in plan["resource_changes"] if c["change"]["actions"] != ["no-op"]}


def position(events: list[tuple[str, str, str]], event: str, address: str, action: str) -> int:
    return events.index((event, address, action))


def test_apply_replan_replace_by_instance_version_destroy(deployed: Deployment) -> None:
    before = deployed.state()
    assert before[ASSOCIATION]["instance_id"] == before[INSTANCE]["id"]
    replan = deployed.run("plan", "-input=false", "-no-color", "-detailed-exitcode", VAR_FILE,
                          check=False)
    assert replan.returncode == 0, f"a second plan after apply must be empty:\n{replan.stdout}"

    bump = changes(deployed.plan("instance_version=2"))
    # The new instance is created before the old one goes (create_before_destroy) ...
    assert bump.pop(INSTANCE) == (["create", "delete"], "replace_by_triggers")
    assert bump.pop(VERSION) == (["update"], None)
    # ... but the volume attachment and the address association are replaced delete-first:
    # instance_id forces a new one (ForceNew in the provider), and a volume cannot be
    # attached to two instances at once.
    assert bump.pop(ATTACHMENT) == (["delete", "create"], "replace_because_cannot_update")
    assert bump.pop(ASSOCIATION) == (["delete", "create"], "replace_because_cannot_update")
    # Nothing else changes: not the Elastic IP, not the data volume, not the scripts.
    assert bump == {}

    code, events = deployed.apply_events()
    assert code == 0, events
    done = "apply_complete"
    for mover in (ATTACHMENT, ASSOCIATION):
        # The old one goes (the attachment's delete stops the old instance first) before the
        # new one is made, and the new one needs the new instance ...
        assert position(events, done, mover, "delete") < position(events, "apply_start", mover,
                                                                   "create")
        assert position(events, done, INSTANCE, "create") < position(events, "apply_start",
                                                                      mover, "create")
        # ... and the old instance is terminated last.
        assert position(events, done, mover, "create") < position(events, "apply_start",
                                                                   INSTANCE, "delete")

    after = deployed.state()
    new_instance = after[INSTANCE]
    assert new_instance["id"] != before[INSTANCE]["id"]
    # The address and the model volume survive; both now belong to the new instance.
    assert after["module.ec2.aws_eip.this"]["id"] == before["module.ec2.aws_eip.this"]["id"]
    assert after[ASSOCIATION]["instance_id"] == new_instance["id"]
    volume = "module.ec2.aws_ebs_volume.data"
    assert after[volume]["id"] == before[volume]["id"]
    assert after[ATTACHMENT]["instance_id"] == new_instance["id"]

    deployed.run("destroy", "-input=false", "-no-color", "-auto-approve", VAR_FILE,
                 "-var", "instance_version=2")
    remaining = deployed.run("state", "list", check=False)
    assert not remaining.stdout.strip(), remaining.stdout


def test_a_failed_launch_leaves_the_old_instance_detached_and_apply_reattaches_it(
        deployed: Deployment) -> None:
    before = deployed.state()
    deployed.plan("instance_version=2")
    # RunInstances answers InsufficientInstanceCapacity, as it often does for GPU types.
    code, events = deployed.apply_events(EC2I_STANDIN_FAIL_CREATE="aws_instance")
    assert code != 0
    assert ("apply_errored", INSTANCE, "create") in events
    # The detach and the disassociation did not wait for the new instance: the old instance
    # (stopped by the detach) has no data volume and no public address now.
    after = deployed.state()
    assert ATTACHMENT not in after and ASSOCIATION not in after
    assert after[INSTANCE]["id"] == before[INSTANCE]["id"]

    # Documented recovery: the same apply again keeps the old instance (instance_version 2
    # is recorded, so nothing is replaced), updates its user_data (the bootstrap names the
    # version), which the provider does with a stop, a modify and a start, so the stopped
    # instance runs again, and puts the data volume and the Elastic IP back on it. The
    # replacement is retried later with instance_version 3.
    recovery = changes(deployed.plan("instance_version=2"))
    assert recovery == {INSTANCE: (["update"], None), ATTACHMENT: (["create"], None),
                        ASSOCIATION: (["create"], None)}
    code, events = deployed.apply_events()
    assert code == 0, events
    restored = deployed.state()
    assert restored[ATTACHMENT]["instance_id"] == before[INSTANCE]["id"]
    assert restored[ASSOCIATION]["instance_id"] == before[INSTANCE]["id"]
    retry = changes(deployed.plan("instance_version=3"))
    assert retry[INSTANCE] == (["create", "delete"], "replace_by_triggers")
