"""Replacement (ForceNew) as terraform-provider-aws 6.62 plans it, from force_new.yaml.

The real provider answers PlanResourceChange with the paths of changed ForceNew arguments
as RequiresReplace; Terraform core then plans a delete and a create (in the order the
resource's create_before_destroy asks for). The stand-in does the same for the types the
table lists; the table is checked against the generated schema when it is loaded, so a
misspelt path or a type the schema does not know fails loudly instead of planning an
in-place update where AWS would replace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cty import UNKNOWN

TABLE = Path(__file__).with_name("force_new.yaml")

Json = dict[str, Any]
# An attribute path as Terraform's AttributePath spells it: names and list indexes.
AttrPath = tuple[str | int, ...]


class ForceNewError(Exception):
    """The table names a type or a path the schema does not have (named in the message)."""


@dataclass(frozen=True)
class Rule:
    """ForceNew paths of one resource type; `when` maps a path to the boolean argument
    that must be true for it to force a new resource (CustomizeDiff ForceNewIf)."""

    force_new: tuple[str, ...] = ()
    when: Mapping[str, str] = field(default_factory=dict)


def load(schema: Json, table: Path = TABLE) -> dict[str, Rule]:
    """The checked table: {resource type: Rule}."""
    raw = yaml.safe_load(table.read_text()) or {}
    unknown_sections = set(raw) - {"resources"}
    if unknown_sections:
        raise ForceNewError(f"{table.name}: unknown sections {sorted(unknown_sections)}")
    rules: dict[str, Rule] = {}
    for tf_type, entry in (raw.get("resources") or {}).items():
        resource = schema["resource_schemas"].get(tf_type)
        if resource is None:
            raise ForceNewError(f"{table.name}: {tf_type}: no such resource type in the schema")
        entry = entry or {}
        unknown_keys = set(entry) - {"force_new", "when"}
        if unknown_keys:
            raise ForceNewError(f"{table.name}: {tf_type}: unknown keys {sorted(unknown_keys)}")
        paths = tuple(entry.get("force_new") or ())
        when = dict(entry.get("when") or {})
        for path in (*paths, *when):
            _check_path(resource["block"], path, tf_type)
        for path, flag in when.items():
            attr = resource["block"]["attributes"].get(flag)
            if attr is None or attr.get("type") != "bool":
                raise ForceNewError(f"{table.name}: {tf_type}.{path}: when {flag!r} must name a "
                                    "top-level bool argument")
        rules[tf_type] = Rule(paths, when)
    return rules


def _check_path(block: Json, dotted: str, tf_type: str) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = block.get("block_types", {}).get(part)
        if child is None:
            raise ForceNewError(f"{TABLE.name}: {tf_type}.{dotted}: no block {part!r}")
        block = child["block"]
    last = parts[-1]
    if last not in block.get("attributes", {}) and last not in block.get("block_types", {}):
        raise ForceNewError(f"{TABLE.name}: {tf_type}.{dotted}: no attribute or block {last!r}")


def requires_replace(block: Json, rule: Rule, prior: Json | None,
                     planned: Json | None) -> list[AttrPath]:
    """The ForceNew paths whose planned value differs from the prior state (an unknown
    planned value counts as a change, as it does for the real provider)."""
    if prior is None or planned is None:
        return []
    active = [*rule.force_new,
              *(path for path, flag in rule.when.items() if planned.get(flag) is True)]
    found: list[AttrPath] = []
    for dotted in active:
        found += _changed(block, dotted.split("."), prior, planned, ())
    return found


def _changed(block: Json, parts: list[str], prior: Any, planned: Any,
             prefix: AttrPath) -> list[AttrPath]:
    name, rest = parts[0], parts[1:]
    old = prior.get(name) if isinstance(prior, dict) else None
    new = planned.get(name) if isinstance(planned, dict) else None
    here = (*prefix, name)
    if not rest:
        return [] if _same(old, new) else [here]
    child = block["block_types"][name]
    mode = child["nesting_mode"]
    if mode == "single":
        if old is None or new is None or new is UNKNOWN:
            return [] if _same(old, new) else [here]
        return _changed(child["block"], rest, old, new, here)
    if mode == "list" and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found: list[AttrPath] = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            found += _changed(child["block"], rest, before, after, (*here, index))
        return found
    # Sets, maps, and lists that gained or lost elements: compare the forced attribute
    # across all elements; a difference replaces on the whole block.
    return [] if _same(_project(old, rest), _project(new, rest)) else [here]


def _project(value: Any, rest: list[str]) -> Any:
    if value is None or value is UNKNOWN:
        return value
    elements = value.values() if isinstance(value, dict) else value
    projected = []
    for element in elements:
        for part in rest:
            element = element.get(part) if isinstance(element, dict) else None
        projected.append(element)
    return sorted(projected, key=repr)


def _same(old: Any, new: Any) -> bool:
    if old is UNKNOWN or new is UNKNOWN:
        return False
    if old in (None, [], {}) and new in (None, [], {}):
        return True  # SDKv2 has no difference between null and empty
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)
