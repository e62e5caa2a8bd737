"""Module test cases and their inventories: what a plan must contain, written so that a
reviewer reads what each case decides, and regenerated with one command.

A module's tests live in tests/modules/<module>/. `tftest.yaml` names the cases:

    module: modules/ec2            # default modules/<dir name>; "." = the root module
    common: common.yaml            # optional: what every case plans alike is written there
    exclude:                       # optional: left out of every inventory, with the reason
      "module.build[0].*": hashes app/, changes with every edit of the proxy
    focus:                         # optional: every inventory holds only these
      "aws_instance.this": [instance_type, metadata_options]
      "aws_s3_object.script[*]": [key]
    tests:
      multi_gpu:
        description: one line on what the case is about (written into its inventory)
        module: examples/x         # optional: this case plans another module
        focus:                     # added to the focus above, for this case only
          'aws_s3_object.script["vllm.service"]': [content]
        tfvars: [a.tfvars]         # optional, default <case>.tfvars
        inventory: [a.yaml]        # optional, default [common.yaml,] <case>.yaml

Address patterns are literal except `*` (any text). A focus lists attribute names, `"*"`
for all, `"-name"` to leave one out; without any focus an inventory holds every known
value. Outputs are always written (they are what a user reads), unless `exclude` names
them as `output.<name>`.

An inventory (`<case>.yaml`, merged with `common.yaml` when the spec has one) has three
sections: `values` (address -> attributes; a subset, lists element by element), `counts`
(per resource type plus `resources` and `modules`; exact) and `outputs` (a subset). The
generator writes known values only: unknowns ("known after apply"), nulls and empty
collections are left out, and so is whatever `exclude` names.

    python -m testkit.inventory tests/modules/root/tftest.yaml              # every case
    python -m testkit.inventory tests/modules/root/tftest.yaml multi_gpu    # one case
    python -m testkit.inventory tests/modules                               # every spec
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testkit.plans import UNKNOWN, Planner, PlanSummary

__all__ = [
    "UNKNOWN",
    "Case",
    "PlanSummary",
    "Planner",
    "Spec",
    "check_inventory",
    "load_cases",
    "load_spec",
]

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("values", "counts", "outputs")
Focus = dict[str, list[str]]


@dataclass(frozen=True)
class Case:
    """One case of a tftest.yaml: the module it plans, its files and its focus."""

    name: str
    module: Path
    tfvars: tuple[Path, ...]
    inventories: tuple[Path, ...]
    spec: Path
    description: str = ""
    focus: Focus = field(default_factory=dict)
    common: bool = False

    @property
    def inventory(self) -> Path:
        """The case's own inventory file (the generator writes it)."""
        return self.inventories[-1]

    def regenerate_command(self) -> str:
        spec = os.path.relpath(self.spec, ROOT)
        # With a common.yaml, one case's plan may change what is common: regenerate all.
        suffix = "" if self.common else f" {self.name}"
        return f".venv/bin/python -m testkit.inventory {spec}{suffix}"


@dataclass(frozen=True)
class Spec:
    """A tftest.yaml: its cases and what their inventories hold."""

    path: Path
    module: Path
    cases: tuple[Case, ...]
    common: Path | None
    exclude: dict[str, str]
    focus: Focus

    def regenerate_command(self) -> str:
        return f".venv/bin/python -m testkit.inventory {os.path.relpath(self.path, ROOT)}"


def _focus(raw: Any, where: str) -> Focus:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, list | str) for v in raw.values()):
        raise ValueError(f"{where}: focus must map address patterns to attribute lists")
    return {str(k): [v] if isinstance(v, str) else [str(a) for a in v] for k, v in raw.items()}


def load_spec(path: Path) -> Spec:
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"module", "common", "exclude", "focus", "tests"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    base = path.parent
    module = ROOT / data.get("module", f"modules/{base.name}")
    common = base / data["common"] if data.get("common") else None
    spec_focus = _focus(data.get("focus"), str(path))
    cases = []
    for name, options in (data.get("tests") or {}).items():
        options = options or {}
        default_inventories = [*([common.name] if common else []), f"{name}.yaml"]
        case_focus = _focus(options.get("focus"), f"{path}: {name}")
        cases.append(Case(
            name=name, module=ROOT / options["module"] if "module" in options else module,
            spec=path,
            tfvars=tuple(base / f for f in options.get("tfvars", [f"{name}.tfvars"])),
            inventories=tuple(base / f for f in options.get("inventory", default_inventories)),
            description=str(options.get("description") or ""),
            focus=_merge_focus(spec_focus, case_focus) if case_focus else spec_focus,
            common=common is not None))
    return Spec(path=path, module=module, cases=tuple(cases), common=common,
                exclude={str(k): str(v) for k, v in (data.get("exclude") or {}).items()},
                focus=spec_focus)


def load_cases(spec: Path) -> list[Case]:
    return list(load_spec(spec).cases)


def _merge_focus(first: Focus, second: Focus) -> Focus:
    merged = {k: list(v) for k, v in first.items()}
    for pattern, attributes in second.items():
        merged[pattern] = [*merged.get(pattern, []), *attributes]
    return merged


# --------------------------------------------------------------------------- checking


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


def merge_inventories(inventories: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One inventory from several (common.yaml + the case's): values merged per address."""
    merged: dict[str, Any] = {}
    for inventory in inventories:
        for section, content in inventory.items():
            target = merged.setdefault(section, {})
            if not isinstance(content, dict):
                target.update({"": content})  # reported as a malformed section below
                continue
            for key, value in content.items():
                if section == "values" and isinstance(value, dict):
                    target.setdefault(key, {}).update(value)
                else:
                    target[key] = value
    return merged


def check_inventory(summary: PlanSummary, inventory: Mapping[str, Any]) -> list[str]:
    """Every difference between a plan summary and an inventory (empty when it matches)."""
    errors = [f"unknown inventory section {s!r}" for s in sorted(set(inventory) - set(SECTIONS))]
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
        for kind in sorted(set(summary.counts) - set(counts)):
            errors.append(f"counts.{kind}: plan has {summary.counts[kind]}, inventory none")
    for name, expected in (inventory.get("outputs") or {}).items():
        if name not in summary.outputs:
            errors.append(f"outputs.{name}: not an output of the plan")
        else:
            errors.extend(_subset_errors(expected, summary.outputs[name], f"outputs.{name}"))
    return errors


def read_inventories(paths: Iterable[Path]) -> tuple[dict[str, Any], list[str]]:
    """The merged inventory of `paths`, and the files that are missing."""
    found, missing = [], []
    for path in paths:
        if path.exists():
            found.append(yaml.safe_load(path.read_text()) or {})
        else:
            missing.append(f"{path.name}: missing inventory file")
    return merge_inventories(found), missing


def check_case(case: Case, summary: PlanSummary) -> list[str]:
    inventory, errors = read_inventories(case.inventories)
    return errors + check_inventory(summary, inventory)


# --------------------------------------------------------------------------- writing

_DROP = object()


def _known(value: Any) -> Any:
    """The value without unknowns, nulls and empty collections (_DROP when nothing is left,
    or when a list has an unknown element: lists are compared element by element)."""
    if value is None or value == UNKNOWN:
        return _DROP
    if isinstance(value, dict):
        kept = {k: _known(v) for k, v in sorted(value.items())}
        kept = {k: v for k, v in kept.items() if v is not _DROP}
        return kept or _DROP
    if isinstance(value, list):
        items = [_known(v) for v in value]
        if any(i is _DROP and not isinstance(v, dict) for i, v in zip(items, value, strict=True)):
            return _DROP
        items = [{} if i is _DROP else i for i in items]
        return items or _DROP
    return value


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part)
                              for part in re.split(r"(\*)", text)) + r"\Z")


def _matches(patterns: Iterable[str], address: str) -> list[str]:
    return [p for p in patterns if _pattern(p).match(address)]


def _focused(attributes: dict[str, Any], selectors: list[str]) -> dict[str, Any]:
    everything = "*" in selectors
    left_out = {s[1:] for s in selectors if s.startswith("-")}
    chosen = {s for s in selectors if s != "*" and not s.startswith("-")}
    return {k: v for k, v in attributes.items()
            if (everything or k in chosen) and k not in left_out}


def inventory_of(summary: PlanSummary, case: Case, exclude: Mapping[str, str]
                 ) -> dict[str, Any]:
    """The case's full inventory: known values within its focus, counts, known outputs."""
    values: dict[str, Any] = {}
    for address in sorted(summary.values):
        if _matches(exclude, address):
            continue
        attributes = _known(summary.values[address])
        if attributes is _DROP:
            continue
        if case.focus:
            patterns = _matches(case.focus, address)
            if not patterns:
                continue
            attributes = _focused(attributes, [a for p in patterns for a in case.focus[p]])
        if attributes:
            values[address] = attributes
    outputs = {}
    for name in sorted(summary.outputs):
        output = f"output.{name}"
        if _matches(exclude, output):
            continue
        value = _known(summary.outputs[name])
        if value is not _DROP:
            outputs[name] = value
    return {"values": values, "counts": dict(sorted(summary.counts.items())),
            "outputs": outputs}


def common_of(inventories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What every inventory holds alike: attributes per address, counts, outputs."""
    first, rest = inventories[0], inventories[1:]
    values: dict[str, Any] = {}
    for address, attributes in first["values"].items():
        shared = {k: v for k, v in attributes.items()
                  if all(other["values"].get(address, {}).get(k, _DROP) == v for other in rest)}
        if shared:
            values[address] = shared
    sections: dict[str, Any] = {"values": values}
    for section in ("counts", "outputs"):
        sections[section] = {k: v for k, v in first[section].items()
                             if all(other[section].get(k, _DROP) == v for other in rest)}
    return sections


def without(inventory: Mapping[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    """`inventory` less what `common` already states."""
    values = {}
    for address, attributes in inventory["values"].items():
        shared = (common.get("values") or {}).get(address, {})
        own = {k: v for k, v in attributes.items() if shared.get(k, _DROP) != v}
        if own:
            values[address] = own
    result: dict[str, Any] = {"values": values}
    for section in ("counts", "outputs"):
        shared = common.get(section) or {}
        result[section] = {k: v for k, v in inventory[section].items()
                           if shared.get(k, _DROP) != v}
    return result


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (rendered files) as literal blocks, readable in a diff."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(header: Sequence[str], command: str, inventory: Mapping[str, Any]) -> str:
    body = {s: inventory[s] for s in SECTIONS if inventory.get(s)}
    text = yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=4096,
                     allow_unicode=True) if body else "{}\n"
    lines = [wrapped for line in header
             for wrapped in textwrap.wrap(line, 96, subsequent_indent="  ",
                                          break_on_hyphens=False, break_long_words=False)]
    lines += ["Regenerate (no hand edits):", f"  {command}"]
    return "".join(f"# {line}\n" for line in lines) + text


def _left_out(spec: Spec) -> list[str]:
    lines = ["Left out: unknown values (known after apply), nulls and empty collections."]
    lines += [f"Left out: {pattern}: {reason}" for pattern, reason in spec.exclude.items()]
    return lines


def case_text(spec: Spec, case: Case, inventory: Mapping[str, Any]) -> str:
    relative = os.path.relpath(spec.path, ROOT)
    header = [f"Inventory of case {case.name!r} ({relative}): values and outputs are a "
              "subset, counts exact."]
    if case.description:
        header.append(f"The case: {case.description}")
    if spec.common:
        header.append(f"Checked together with {spec.common.name}, which holds what every case "
                      "plans alike.")
    return _dump([*header, *_left_out(spec)], case.regenerate_command(), inventory)


def common_text(spec: Spec, common: Mapping[str, Any]) -> str:
    header = [f"What every case of {os.path.relpath(spec.path, ROOT)} plans alike; each case's "
              "inventory adds what it decides.",
              "Values and outputs are a subset; counts are exact together with the case's.",
              *_left_out(spec)]
    return _dump(header, spec.regenerate_command(), common)


class CommonOutdated(Exception):
    """common.yaml no longer holds for a case: every case must be regenerated together."""


def generate(spec: Spec, planner: Planner, names: Sequence[str] = ()) -> dict[Path, str]:
    """{inventory file: its text} for the named cases (all when empty), plus common.yaml
    when every case is generated. One named case is written against the common.yaml on
    disk, and refused (CommonOutdated) when its plan contradicts it."""
    chosen = [c for c in spec.cases if not names or c.name in names]
    full = {c.name: inventory_of(planner.plan(c.module, c.tfvars), c, spec.exclude)
            for c in chosen}
    texts: dict[Path, str] = {}
    common: dict[str, Any] = {}
    if spec.common is not None and len(chosen) == len(spec.cases):
        common = common_of(list(full.values()))
        texts[spec.common] = common_text(spec, common)
    elif spec.common is not None:
        common, _ = read_inventories([spec.common])
        for case in chosen:
            stale = without({k: common.get(k) or {} for k in SECTIONS}, full[case.name])
            listed = [f"{section}.{key}" for section in SECTIONS for key in stale[section]]
            if listed:
                raise CommonOutdated(
                    f"{spec.common.name} no longer holds for case {case.name!r} "
                    f"({', '.join(listed[:5])}); regenerate every case: "
                    f"{spec.regenerate_command()}")
    for case in chosen:
        texts[case.inventory] = case_text(spec, case, without(full[case.name], common))
    return texts


def specs_under(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("tftest.yaml"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate tftest inventories from plans.")
    parser.add_argument("spec", type=Path,
                        help="tests/modules/<module>/tftest.yaml, or a folder: every spec in it")
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    args = parser.parse_args(argv)
    paths = specs_under(args.spec.resolve())
    if not paths:
        parser.error(f"no tftest.yaml at or under {args.spec}")
    if args.cases and len(paths) > 1:
        parser.error("name cases only together with one tftest.yaml")
    with tempfile.TemporaryDirectory(prefix="inventory-") as workdir:
        planner = Planner(Path(workdir))
        for path in paths:
            spec = load_spec(path)
            unknown = set(args.cases) - {c.name for c in spec.cases}
            if unknown:
                parser.error(f"no such case in {args.spec}: {', '.join(sorted(unknown))}")
            try:
                texts = generate(spec, planner, args.cases)
            except CommonOutdated as error:
                print(error, file=sys.stderr)
                return 1
            for target, text in texts.items():
                target.write_text(text)
                print(f"wrote {os.path.relpath(target, ROOT)} ({len(text.splitlines())} lines)",
                      file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
