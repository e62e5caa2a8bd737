"""modules/build applied by real Terraform core: its local-exec runs tools/build.py against
a loopback registry, an unchanged context plans nothing, a one-byte change plans a
replacement and pushes a new tag, and a failing build fails the apply. The module needs
no provider, so this runs without the AWS stand-in. Terraform runs through tftest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tftest

from testkit import plans
from testkit.registry import ROOT, Registry, tiny_context
from tools import build

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Root:
    """A throwaway root module that calls modules/build for one context."""

    def __init__(self, work: Path, registry: Registry, repository: str, context: Path) -> None:
        self.dir = work / "root"
        self.dir.mkdir()
        env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_CLI_CONFIG_FILE": str(work / "none.tfrc"),
        }
        config = {
            "module": {
                "build": {
                    # A relative source, as the root module uses: Terraform copies a module
                    # given by absolute path into .terraform/, away from tools/build.py.
                    "source": os.path.relpath(ROOT / "modules" / "build", self.dir),
                    "repository_url": f"{registry.address}/{repository}",
                    "source_dir": str(context),
                    "aws_region": "us-east-1",
                    "docker_network": "host",
                }
            },
            "output": {
                "image_uri": {"value": "${module.build.image_uri}"},
                "image_tag": {"value": "${module.build.image_tag}"},
            },
        }
        (self.dir / "main.tf.json").write_text(json.dumps(config))
        self.test = plans.terraform_test(self.dir, env)
        self.test.init()

    def apply(self) -> str:
        """The apply's output; tftest.TerraformTestError when it fails."""
        output: str = self.test.apply()
        return output

    def outputs(self) -> dict[str, str]:
        return dict(self.test.output())

    def plan_changes(self) -> list[tuple[str, list[str]]]:
        plan = self.test.plan(output=True)
        return [
            (address, change["change"]["actions"])
            for address, change in plan.resource_changes.items()
            if change["change"]["actions"] != ["no-op"]
        ]


def test_apply_pushes_then_replans_clean_and_rebuilds_on_change(
    registry: Registry, tmp_path: Path
) -> None:
    context = tiny_context(tmp_path / "ctx", "FROM scratch\nCOPY payload.txt /\n", "terraform")
    root = Root(tmp_path, registry, "tfbuild", context)

    applied = root.apply()
    tag = build.image_tag(context)
    assert '"status": "pushed"' in applied  # build.py's JSON line, via local-exec
    assert root.outputs() == {"image_uri": f"{registry.address}/tfbuild:{tag}", "image_tag": tag}
    assert registry.tags("tfbuild") == [tag]

    assert root.plan_changes() == []

    (context / "payload.txt").write_text("terraform!")
    assert root.plan_changes() == [("module.build.terraform_data.image", ["delete", "create"])]
    root.apply()
    new_tag = build.image_tag(context)
    assert root.outputs()["image_uri"] == f"{registry.address}/tfbuild:{new_tag}"
    assert sorted(registry.tags("tfbuild")) == sorted([tag, new_tag])


def test_failing_build_fails_the_apply(registry: Registry, tmp_path: Path) -> None:
    context = tiny_context(tmp_path / "ctx", "FROM scratch\nCOPY missing.txt /\n")
    root = Root(tmp_path, registry, "tfbroken", context)
    with pytest.raises(tftest.TerraformTestError) as failed:
        root.apply()
    assert "build.py: error:" in str(failed.value)
    assert registry.tags("tfbroken") == []
    # Nothing recorded as done: the resource is tainted and the next plan builds again.
    state = json.loads(root.test.execute_command("show", "-json").out)
    (image,) = state["values"]["root_module"]["child_modules"][0]["resources"]
    assert image["address"] == "module.build.terraform_data.image" and image["tainted"] is True
    assert root.plan_changes() == [("module.build.terraform_data.image", ["delete", "create"])]
