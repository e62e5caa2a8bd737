"""Plan a module case and summarize it; check or regenerate its inventory.

A module's tests live in tests/modules/<module>/: `tftest.yaml` names the cases, each case
is `<case>.tfvars` plus a `<case>.yaml` inventory with three optional sections:

    values:   {address: {attribute: value}}   a subset: listed keys must match
    counts:   {resource type: n, resources: n, modules: n}   exact
    outputs:  {name: value}                   a subset of the module's outputs

Unknown values (known after apply) appear as the string "(known after apply)".

    python -m testkit.inventory tests/modules/ecr/tftest.yaml defaults   # rewrite one case
    python -m testkit.inventory tests/modules/ecr/tftest.yaml            # rewrite every case
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import terraform

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = "(known after apply)"


@dataclass
class PlanSummary:
    """What a plan proposes: values per resource address, counts, outputs, the raw JSON."""

    values: dict[str, Any]
    counts: dict[str, int]
    outputs: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Case:
    """One case of a tftest.yaml: the module it plans and its files."""

    name: str
    module: Path
    tfvars: tuple[Path, ...]
    inventories: tuple[Path, ...]
    spec: Path

    def regenerate_command(self) -> str:
        spec = os.path.relpath(self.spec, ROOT)
        return f".venv/bin/python -m testkit.inventory {spec} {self.name}"


def load_cases(spec: Path) -> list[Case]:
    """The cases a tftest.yaml names. `module` defaults to modules/<dir name>; a case may
    list `tfvars` and `inventory` files (default <case>.tfvars and <case>.yaml)."""
    data = yaml.safe_load(spec.read_text()) or {}
    base = spec.parent
    module = ROOT / data.get("module", f"modules/{base.name}")
    cases = []
    for name, options in (data.get("tests") or {}).items():
        options = options or {}
        tfvars = tuple(base / f for f in options.get("tfvars", [f"{name}.tfvars"]))
        inventories = tuple(base / f for f in options.get("inventory", [f"{name}.yaml"]))
        cases.append(Case(name=name, module=module, tfvars=tfvars, inventories=inventories,
                          spec=spec))
    return cases


# --------------------------------------------------------------------------- planning


class Planner:
    """Plans modules in place; each module is initialised once into its own data dir."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env) if env is not None else terraform.terraform_env()
        self._initialised: dict[Path, dict[str, str]] = {}

    def _module_env(self, module: Path) -> dict[str, str]:
        module = module.resolve()
        if module not in self._initialised:
            data_dir = self.workdir / f"data-{len(self._initialised)}-{module.name}"
            env = {**self.env, "TF_DATA_DIR": str(data_dir)}
            if terraform.uses_standin(env):
                terraform.forget_stale_lock(module)
            terraform.run(["init", "-input=false", "-no-color"], cwd=module, env=env)
            self._initialised[module] = env
        return self._initialised[module]

    def plan(self, module: Path, tf_var_files: Sequence[str | Path] = (),
             tf_vars: Mapping[str, Any] | None = None) -> PlanSummary:
        env = self._module_env(module)
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            args = ["plan", "-input=false", "-no-color", "-lock=false", "-refresh=false",
                    f"-out={scratch}/plan"]
            args += [f"-var-file={Path(f).resolve()}" for f in tf_var_files]
            if tf_vars:
                extra = Path(scratch) / "vars.tfvars.json"
                extra.write_text(json.dumps(tf_vars))
                args.append(f"-var-file={extra}")
            terraform.run(args, cwd=module, env=env)
            shown = terraform.run(["show", "-json", "-no-color", f"{scratch}/plan"],
                                  cwd=module, env=env)
        return summarize(json.loads(shown.stdout))


def _merge_unknown(value: Any, unknown: Any) -> Any:
    if unknown is True:
        return UNKNOWN
    if isinstance(value, dict):
        marks = unknown if isinstance(unknown, dict) else {}
        merged = {k: _merge_unknown(v, marks.get(k)) for k, v in value.items()}
        for key, mark in marks.items():
            if key not in merged:
                merged[key] = _merge_unknown(None, mark)
        return merged
    if isinstance(value, list):
        items = unknown if isinstance(unknown, list) else []
        return [_merge_unknown(v, items[i] if i < len(items) else None)
                for i, v in enumerate(value)]
    return value


def summarize(plan: dict[str, Any]) -> PlanSummary:
    """Values (after the plan, unknowns marked), counts and outputs of a `show -json` plan."""
    values: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    modules: set[str] = set()
    for change in plan.get("resource_changes", []):
        if change.get("mode") != "managed" or change["change"]["actions"] == ["delete"]:
            continue
        after = change["change"].get("after") or {}
        values[change["address"]] = _merge_unknown(after, change["change"].get("after_unknown"))
        counts[change["type"]] += 1
        counts["resources"] += 1
        if change.get("module_address"):
            modules.add(change["module_address"])
    if modules:
        counts["modules"] = len(modules)
    outputs: dict[str, Any] = {}
    for name, change in (plan.get("output_changes") or {}).items():
        outputs[name] = _merge_unknown(change.get("after"), change.get("after_unknown"))
    return PlanSummary(values=values, counts=dict(counts), outputs=outputs, raw=plan)


# --------------------------------------------------------------------------- inventories


def _subset_errors(expected: Any, actual: Any, where: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a map, plan has {actual!r}"]
        errors = []
        for key, value in expected.items():
            if key not in actual:
                errors.append(f"{where}.{key}: missing from the plan")
            else:
                errors.extend(_subset_errors(value, actual[key], f"{where}.{key}"))
        return errors
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, plan has {actual!r}"]
        errors = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            errors.extend(_subset_errors(e, a, f"{where}[{index}]"))
        return errors
    if expected != actual:
        return [f"{where}: expected {expected!r}, plan has {actual!r}"]
    return []


def check_inventory(summary: PlanSummary, inventory: Mapping[str, Any]) -> list[str]:
    """Every difference between a plan summary and an inventory (empty when it matches)."""
    unknown_sections = set(inventory) - {"values", "counts", "outputs"}
    errors = [f"unknown inventory section {s!r}" for s in sorted(unknown_sections)]
    for address, expected in (inventory.get("values") or {}).items():
        if address not in summary.values:
            errors.append(f"values: {address} is not in the plan")
            continue
        errors.extend(_subset_errors(expected, summary.values[address], address))
    counts = inventory.get("counts")
    if counts is not None:
        for kind, number in counts.items():
            if summary.counts.get(kind, 0) != number:
                errors.append(f"counts.{kind}: expected {number}, plan has "
                              f"{summary.counts.get(kind, 0)}")
        extra = set(summary.counts) - set(counts)
        for kind in sorted(extra):
            errors.append(f"counts.{kind}: plan has {summary.counts[kind]}, inventory none")
    for name, expected in (inventory.get("outputs") or {}).items():
        if name not in summary.outputs:
            errors.append(f"outputs.{name}: not an output of the plan")
        else:
            errors.extend(_subset_errors(expected, summary.outputs[name], f"outputs.{name}"))
    return errors


def _prune(value: Any) -> Any:
    """Drop nulls and empty collections (an inventory lists what a case sets)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in sorted(value.items())}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def inventory_of(summary: PlanSummary) -> dict[str, Any]:
    return {
        "values": {address: _prune(v) for address, v in sorted(summary.values.items())},
        "counts": dict(sorted(summary.counts.items())),
        "outputs": {name: summary.outputs[name] for name in sorted(summary.outputs)},
    }


def write_inventory(case: Case, summary: PlanSummary) -> Path:
    target = case.inventories[0]
    header = (f"# Inventory of case {case.name!r} ({os.path.relpath(case.spec, ROOT)}): values "
              "are a subset, counts exact.\n# Regenerate: " + case.regenerate_command() + "\n")
    target.write_text(header + yaml.safe_dump(inventory_of(summary), sort_keys=False,
                                              width=100))
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate tftest inventories from plans.")
    parser.add_argument("spec", type=Path, help="tests/modules/<module>/tftest.yaml")
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    cases = load_cases(args.spec.resolve())
    unknown = set(args.cases) - {c.name for c in cases}
    if unknown:
        parser.error(f"no such case in {args.spec}: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="inventory-") as workdir:
        planner = Planner(Path(workdir))
        for case in cases:
            if args.cases and case.name not in args.cases:
                continue
            summary = planner.plan(case.module, case.tfvars)
            print(f"wrote {os.path.relpath(write_inventory(case, summary), ROOT)}",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
