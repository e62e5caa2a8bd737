"""Shared machinery for module tests: planning cases, checking inventories, and the
apply -> no-op replan -> destroy lifecycle in a temporary copy. See docs/DEVELOPMENT.md."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# tools/ holds scripts, not a package: import them the way they import each other.
from testkit import inventory
from tools import terraform

ROOT = inventory.ROOT
PlanSummary = inventory.PlanSummary


class CaseFile(pytest.File):
    """A tests/modules/<module>/tftest.yaml: one test item per case it names."""

    def collect(self) -> list[CaseItem]:
        return [CaseItem.from_parent(self, name=case.name, case=case)
                for case in inventory.load_cases(self.path)]


class InventoryMismatch(Exception):
    """A plan differs from its case inventory."""


class CaseItem(pytest.Item):
    """Plans one case and checks it against the case's inventory files."""

    def __init__(self, *, case: inventory.Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        planner: inventory.Planner = self.config.stash[PLANNER_KEY]()
        summary = planner.plan(self.case.module, self.case.tfvars)
        errors = []
        for path in self.case.inventories:
            if not path.exists():
                errors.append(f"{path.name}: missing inventory file")
                continue
            errors += inventory.check_inventory(summary, _yaml(path))
        if errors:
            raise InventoryMismatch("\n".join(errors))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, InventoryMismatch):
            return (f"case {self.case.name!r} of {self.case.spec.relative_to(ROOT)} differs "
                    f"from its inventory:\n{excinfo.value}\n\nIf the new plan is right, "
                    f"regenerate the inventory and review the diff:\n  "
                    f"{self.case.regenerate_command()}")
        if isinstance(excinfo.value, terraform.TerraformError):
            return f"case {self.case.name!r}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"tftest case {self.case.name}"


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


PLANNER_KEY = pytest.StashKey[Any]()


# --------------------------------------------------------------------------- lifecycle


@dataclass
class Applied:
    """What an apply left behind, and the proof that a second plan is empty."""

    outputs: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    replan_exit_code: int
    destroyed: bool


def _state_resources(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """address -> values for every resource in a `show -json` state module, recursively."""
    found = {r["address"]: r["values"] for r in module.get("resources", [])}
    for child in module.get("child_modules", []):
        found.update(_state_resources(child))
    return found


def copy_module(module: str | Path, target: Path, extra: Sequence[str] = ()) -> Path:
    """Copy a module (and the modules/ tree it may reference) into `target`, keeping the
    relative layout; returns the module's directory in the copy."""
    source = (ROOT / module).resolve()
    relative = source.relative_to(ROOT)
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*",
                                    "__pycache__")
    for part in {"modules", str(relative), *extra}:
        if part == ".":
            for item in ROOT.glob("*.tf"):
                shutil.copy2(item, target / item.name)
            continue
        origin = ROOT / part
        if origin.is_dir():
            shutil.copytree(origin, target / part, ignore=ignore, dirs_exist_ok=True)
    return target / relative


def apply_replan_destroy(module: str | Path, workdir: Path,
                         tf_vars: Mapping[str, Any] | None = None,
                         extra: Sequence[str] = ()) -> Applied:
    """init, apply, plan (must be a no-op: exit code 0 with -detailed-exitcode), destroy,
    all in a temporary copy of the module under `workdir`."""
    copy = copy_module(module, workdir, extra)
    env = terraform.terraform_env()
    var_args = []
    if tf_vars:
        var_file = workdir / "case.tfvars.json"
        var_file.write_text(json.dumps(tf_vars))
        var_args = [f"-var-file={var_file}"]
    terraform.run(["init", "-input=false", "-no-color"], cwd=copy, env=env)
    terraform.run(["apply", "-input=false", "-no-color", "-auto-approve", *var_args],
                  cwd=copy, env=env)
    outputs = json.loads(terraform.run(["output", "-json"], cwd=copy, env=env).stdout)
    state = json.loads(terraform.run(["show", "-json"], cwd=copy, env=env).stdout)
    resources = _state_resources(state.get("values", {}).get("root_module", {}))
    replan = terraform.run(["plan", "-input=false", "-no-color", "-detailed-exitcode",
                            *var_args], cwd=copy, env=env, check=False)
    if replan.returncode not in (0, 2):
        raise terraform.TerraformError(["plan"], replan.returncode, replan.stdout,
                                       replan.stderr)
    terraform.run(["destroy", "-input=false", "-no-color", "-auto-approve", *var_args],
                  cwd=copy, env=env)
    remaining = terraform.run(["state", "list"], cwd=copy, env=env, check=False)
    return Applied(
        outputs={name: item["value"] for name, item in outputs.items()},
        resources=resources,
        replan_exit_code=replan.returncode,
        destroyed=remaining.returncode == 0 and not remaining.stdout.strip(),
    )

