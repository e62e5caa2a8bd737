"""Shared machinery for module tests, on tftest: each tftest.yaml case as a pytest item
that plans and checks its inventory, and the apply -> no-op replan -> destroy lifecycle in
a temporary copy. See docs/DEVELOPMENT.md."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tftest

from testkit import inventory, plans
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
        errors = inventory.check_case(self.case, summary)
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


PLANNER_KEY = pytest.StashKey[Any]()


# --------------------------------------------------------------------------- lifecycle


@dataclass
class Applied:
    """What an apply left behind, and the proof that a second plan is empty."""

    outputs: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    replan_exit_code: int
    destroyed: bool


def state_resources(test: tftest.TerraformTest) -> dict[str, dict[str, Any]]:
    """address -> values of every resource in the state (`show -json`), modules included."""
    with plans.terraform_errors("show"):
        state = json.loads(test.execute_command("show", "-json").out)
    found: dict[str, dict[str, Any]] = {}

    def walk(module: dict[str, Any]) -> None:
        found.update({r["address"]: r["values"] for r in module.get("resources", [])})
        for child in module.get("child_modules", []):
            walk(child)

    walk(state.get("values", {}).get("root_module", {}))
    return found


def replan_exit_code(test: tftest.TerraformTest, var_files: Sequence[str]) -> int:
    """`plan -detailed-exitcode`: 0 when the state matches the configuration, 2 when not."""
    with plans.terraform_errors("plan"):
        done = test.execute_command("plan", "-input=false", "-no-color", "-detailed-exitcode",
                                    *(f"-var-file={f}" for f in var_files))
    code: int = done.retcode
    return code


def state_list(test: tftest.TerraformTest) -> list[str]:
    with plans.terraform_errors("state"):
        return [line for line in test.execute_command("state", "list").out.splitlines() if line]


def copy_module(module: str | Path, target: Path, extra: Sequence[str] = ()) -> Path:
    """Copy a module (and the modules/ tree it may reference) into `target`, keeping the
    relative layout; returns the module's directory in the copy."""
    source = (ROOT / module).resolve()
    relative = source.relative_to(ROOT)
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*",
                                    "__pycache__")
    target.mkdir(parents=True, exist_ok=True)
    for part in sorted({"modules", str(relative), *extra}):
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
    all through tftest in a temporary copy of the module under `workdir`."""
    copy = copy_module(module, workdir, extra)
    test = plans.terraform_test(copy)
    files = plans.var_files(workdir, (), tf_vars)
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=files)
    with plans.terraform_errors("output"):
        outputs = dict(test.output())
    resources = state_resources(test)
    replan = replan_exit_code(test, files)
    with plans.terraform_errors("destroy"):
        test.destroy(tf_var_file=files)
    return Applied(outputs={name: outputs[name] for name in outputs}, resources=resources,
                   replan_exit_code=replan, destroyed=not state_list(test))
