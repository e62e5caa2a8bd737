"""The one renderer of the instance's files: what Terraform would upload, byte for byte.

The template lint (tools/lint_templates.py), the local demo's NGINX site (tools/demo.py),
the HTTPS end-to-end test and the boot harness all take the instance's files from here:
a copy of the root module planned with real Terraform core (tools/terraform.py; the
stand-in aws provider offline), and the rendered bytes read from the plan: the content of
every `aws_s3_object` the scripts bucket uploads (named as on the instance, without the
`scripts/` prefix) plus the bootstrap under BOOTSTRAP, from the root output `user_data`
(the instance's `user_data` attribute holds only its SHA-1, as with the real provider).

    renderer = Renderer(workdir)              # copies the root module, runs `init` once
    files = renderer.render({"use_gpu": False, "image_uri": IMAGE_URI, ...})
    files["nginx-site.conf"], files[BOOTSTRAP]

Every template input must be known at plan time, so callers pin `image_uri` and `ami_id`
(PINNED_TFVARS has both).

The boot harness (testkit/instance) needs what an *apply* leaves behind, so `Deployment`
applies the same copy of the root module and reads the files from the state: each
`aws_s3_object` content, and the bootstrap from the root output `user_data` (EC2 and the
provider keep only a hash of the instance's user_data). A second `apply()` with other
variables is a second `terraform apply` in the same directory, as a user would run it.

    deployment = Deployment(workdir)
    applied = deployment.apply({...})         # applied.files, applied.outputs
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import terraform as tf

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "bootstrap (user_data)"
# The scripts bucket's list of every file with its SHA-256, which the instance polls.
MANIFEST = "manifest"
# The root module's output with the bootstrap text.
USER_DATA_OUTPUT = "user_data"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789ab"
AMI_ID = "ami-0123456789abcdef0"
# Pinned so that the plan needs no lookups and every template input is known.
PINNED_TFVARS: Mapping[str, Any] = {"ami_id": AMI_ID, "image_uri": IMAGE_URI}
# What a root-module plan reads (copied, so nothing is written into the work tree: no
# .terraform, no lock file).
PLAN_INPUTS = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "modules", "app")


class RenderError(RuntimeError):
    """Terraform failed, or the plan does not carry the rendered files."""


def copy_root(destination: Path) -> Path:
    """A copy of the root module (and what it references) in `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(
        ".terraform*", "*.tfstate*", "README.md", "__pycache__", "*.egg-info"
    )
    for name in PLAN_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination / name)
    return destination


def artifacts_from_plan(plan: Mapping[str, Any]) -> dict[str, str]:
    """{file name on the instance: content} from a `show -json` plan, plus BOOTSTRAP (the
    root output `user_data`)."""
    artifacts: dict[str, str] = {}
    for change in plan.get("resource_changes", []):
        after = change.get("change", {}).get("after") or {}
        unknown = change.get("change", {}).get("after_unknown") or {}
        if change.get("type") == "aws_s3_object":
            key = after.get("key", "")
            name = key.split("/", 1)[1] if key.startswith("scripts/") else key
            if unknown.get("content") or after.get("content") is None:
                raise RenderError(f"the content of {change['address']} is unknown at plan time")
            artifacts[name] = after["content"]
    output = (plan.get("output_changes") or {}).get(USER_DATA_OUTPUT) or {}
    if output.get("after_unknown"):
        raise RenderError(f"the output {USER_DATA_OUTPUT} is unknown at plan time")
    if isinstance(output.get("after"), str):
        artifacts[BOOTSTRAP] = output["after"]
    if BOOTSTRAP not in artifacts or len(artifacts) < 2:
        raise RenderError(f"the plan has no output {USER_DATA_OUTPUT} or no scripts: "
                          f"{sorted(artifacts)}")
    return artifacts


class Renderer:
    """One initialised copy of the root module; each render() is one plan of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = copy_root(workdir / "root")
        self.env = tf.terraform_env()
        self._run("init", "-input=false", "-no-color")

    def _run(self, *args: str) -> str:
        try:
            return tf.run(args, cwd=self.root, env=self.env).stdout
        except tf.TerraformError as error:
            raise RenderError(str(error)) from error

    def plan(self, tfvars: Mapping[str, Any]) -> dict[str, Any]:
        """The `show -json` plan of the root module with `tfvars`."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            var_file = Path(scratch) / "case.tfvars.json"
            var_file.write_text(json.dumps(dict(tfvars)))
            plan_file = Path(scratch) / "plan"
            # -lock=false: plans run two at a time against the one read-only copy.
            self._run("plan", "-input=false", "-no-color", "-lock=false",
                      f"-var-file={var_file}", f"-out={plan_file}")
            shown: dict[str, Any] = json.loads(self._run("show", "-json", str(plan_file)))
        return shown

    def render(self, tfvars: Mapping[str, Any]) -> dict[str, str]:
        return artifacts_from_plan(self.plan(tfvars))


@dataclass(frozen=True)
class Applied:
    """What one `terraform apply` left behind: the instance's files and the root outputs."""

    files: dict[str, str]
    outputs: dict[str, Any]
    resources: dict[str, dict[str, Any]]


def _state_resources(module: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = {r["address"]: r["values"] for r in module.get("resources", [])}
    for child in module.get("child_modules", []):
        found.update(_state_resources(child))
    return found


def artifacts_from_state(state: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, str]:
    """{file name on the instance: content} from a `show -json` state, plus BOOTSTRAP from
    the root output `user_data`."""
    resources = _state_resources(state.get("values", {}).get("root_module", {}))
    artifacts: dict[str, str] = {}
    for address, values in resources.items():
        if ".aws_s3_object." in f".{address}" and values.get("key", "").startswith("scripts/"):
            artifacts[values["key"].split("/", 1)[1]] = values["content"]
    user_data = outputs.get("user_data")
    if not isinstance(user_data, str) or not artifacts:
        raise RenderError(f"the state has no scripts or the root output user_data is missing: "
                          f"{sorted(artifacts)}")
    artifacts[BOOTSTRAP] = user_data
    return artifacts


class Deployment:
    """One copy of the root module with its own state: apply(), then apply() again. Made
    once in `workdir` (copy + init); a later Deployment of the same workdir reuses it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.env = tf.terraform_env()
        if not (self.root / ".terraform").is_dir():
            copy_root(self.root)
            self._run("init", "-input=false", "-no-color")

    def _run(self, *args: str) -> str:
        try:
            return tf.run(args, cwd=self.root, env=self.env).stdout
        except tf.TerraformError as error:
            raise RenderError(str(error)) from error

    def apply(self, tfvars: Mapping[str, Any]) -> Applied:
        var_file = self.workdir / "deployment.tfvars.json"
        var_file.write_text(json.dumps(dict(tfvars)))
        self._run("apply", "-input=false", "-no-color", "-auto-approve", f"-var-file={var_file}")
        outputs = {name: item["value"]
                   for name, item in json.loads(self._run("output", "-json")).items()}
        state: dict[str, Any] = json.loads(self._run("show", "-json"))
        return Applied(artifacts_from_state(state, outputs), outputs,
                       _state_resources(state.get("values", {}).get("root_module", {})))


def render_many(cases: Mapping[str, Mapping[str, Any]], workdir: Path,
                parallel: int = 2) -> dict[str, dict[str, str]]:
    """{case name: files} for several tfvars sets: one init, then one plan per case (two
    at a time on this 2-core machine)."""
    renderer = Renderer(workdir)
    names: Sequence[str] = list(cases)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        rendered = list(pool.map(lambda name: renderer.render(cases[name]), names))
    return dict(zip(names, rendered, strict=True))


def render_one(tfvars: Mapping[str, Any]) -> dict[str, str]:
    """The files of one configuration, rendered in a throwaway directory."""
    with tempfile.TemporaryDirectory(prefix="ec2i-render-") as tmp:
        return Renderer(Path(tmp)).render(tfvars)
