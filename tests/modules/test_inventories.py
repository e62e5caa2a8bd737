"""The inventories: what the generator (testkit/inventory.py) leaves out and keeps, how
common.yaml and a case's file are checked together, and that every inventory in the
repository is exactly what the generator writes today (no hand edits, nothing stale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tftest
import yaml

from testkit import inventory, plans

SPECS = sorted((inventory.ROOT / "tests" / "modules").rglob("tftest.yaml"))


def change(address: str, after: dict[str, Any], unknown: dict[str, Any] | None = None,
           module: str | None = None) -> dict[str, Any]:
    kind = address.split(".")[-2]
    return {"address": address, "mode": "managed", "type": kind,
            **({"module_address": module} if module else {}),
            "change": {"actions": ["create"], "after": after, "after_unknown": unknown or {}}}


def summary_of(*changes: dict[str, Any], outputs: dict[str, Any] | None = None
               ) -> inventory.PlanSummary:
    return plans.summarize(tftest.TerraformPlanOutput({
        "resource_changes": list(changes),
        "output_changes": {k: {"after": v, "after_unknown": v is None}
                           for k, v in (outputs or {}).items()},
    }))


def case(name: str, focus: dict[str, list[str]] | None = None) -> inventory.Case:
    return inventory.Case(name=name, module=Path("."), tfvars=(), spec=Path("tftest.yaml"),
                          inventories=(Path(f"{name}.yaml"),), focus=focus or {})


INSTANCE = change(
    "module.ec2.aws_instance.this",
    {"instance_type": "g5.12xlarge", "tags": {"Name": "llm"}, "key_name": None,
     "security_groups": [], "metadata_options": [{"http_tokens": "required"}]},
    {"id": True, "arn": True, "metadata_options": [{"http_endpoint": True}]},
    module="module.ec2")
BUILD = change("module.build[0].terraform_data.image", {"triggers_replace": "3f2a9c"},
               module="module.build[0]")


def test_unknowns_nulls_and_empty_collections_are_left_out() -> None:
    written = inventory.inventory_of(summary_of(INSTANCE, outputs={"ip": None, "n": 1}),
                                     case("c"), {})
    assert written["values"] == {"module.ec2.aws_instance.this": {
        "instance_type": "g5.12xlarge", "tags": {"Name": "llm"},
        "metadata_options": [{"http_tokens": "required"}]}}
    assert written["outputs"] == {"n": 1}
    assert written["counts"] == {"aws_instance": 1, "modules": 1, "resources": 1}


def test_a_list_with_an_unknown_element_is_left_out_whole() -> None:
    # Lists are compared element by element: dropping one element would shift the rest.
    summary = summary_of(change("aws_vpc.this", {"azs": ["a", None]}, {"azs": [False, True]}))
    assert inventory.inventory_of(summary, case("c"), {})["values"] == {}


def test_exclude_leaves_values_out_but_keeps_counts() -> None:
    written = inventory.inventory_of(summary_of(INSTANCE, BUILD), case("c"),
                                     {"module.build[0].*": "hashes app/"})
    assert list(written["values"]) == ["module.ec2.aws_instance.this"]
    assert written["counts"]["terraform_data"] == 1


def test_focus_keeps_only_the_named_resources_and_attributes() -> None:
    focus = {"module.ec2.aws_instance.*": ["instance_type"], "nothing[*]": ["*"]}
    written = inventory.inventory_of(summary_of(INSTANCE, BUILD), case("c", focus), {})
    assert written["values"] == {"module.ec2.aws_instance.this": {"instance_type": "g5.12xlarge"}}
    everything_but = {"*": ["*", "-tags"]}
    written = inventory.inventory_of(summary_of(INSTANCE), case("c", everything_but), {})
    assert "tags" not in written["values"]["module.ec2.aws_instance.this"]
    assert "instance_type" in written["values"]["module.ec2.aws_instance.this"]


def test_brackets_in_focus_patterns_are_literal() -> None:
    # `[0]` in an address is not a character class.
    assert inventory._matches(['module.build[0].*'], "module.build[0].terraform_data.image")
    assert not inventory._matches(['module.build[0].*'], "module.build0.terraform_data.image")


def test_common_holds_what_every_case_plans_alike_and_cases_the_rest() -> None:
    cpu = change("aws_instance.this", {"instance_type": "c7i", "ebs_optimized": True})
    gpu = change("aws_instance.this", {"instance_type": "g5", "ebs_optimized": True})
    record = change("aws_route53_record.this", {"name": "llm.example.com"})
    first = inventory.inventory_of(summary_of(cpu), case("cpu"), {})
    second = inventory.inventory_of(summary_of(gpu, record), case("gpu"), {})
    common = inventory.common_of([first, second])
    assert common["values"] == {"aws_instance.this": {"ebs_optimized": True}}
    assert common["counts"] == {"aws_instance": 1}
    own = inventory.without(second, common)
    assert own["values"] == {"aws_instance.this": {"instance_type": "g5"},
                             "aws_route53_record.this": {"name": "llm.example.com"}}
    assert own["counts"] == {"aws_route53_record": 1, "resources": 2}
    # Checked together, the two files are exact again; either alone is not.
    merged = inventory.merge_inventories([common, own])
    assert inventory.check_inventory(summary_of(gpu, record), merged) == []
    assert inventory.check_inventory(summary_of(gpu, record), own) == [
        "counts.aws_instance: plan has 1, inventory none"]
    assert inventory.check_inventory(summary_of(cpu), merged) == [
        "aws_instance.this.instance_type: expected 'g5', plan has 'c7i'",
        "values: aws_route53_record.this is not in the plan",
        "counts.aws_route53_record: expected 1, plan has 0",
        "counts.resources: expected 2, plan has 1",
    ]


def test_one_case_is_refused_when_common_yaml_no_longer_holds(tmp_path: Path) -> None:
    spec_file = tmp_path / "tftest.yaml"
    spec_file.write_text("module: modules/ecr\ncommon: common.yaml\ntests:\n  a:\n  b:\n")
    (tmp_path / "common.yaml").write_text("values:\n  aws_ecr_repository.this:\n"
                                          "    name: old\n")
    spec = inventory.load_spec(spec_file)

    class Planned:
        def plan(self, module: Path, tfvars: Any) -> inventory.PlanSummary:
            return summary_of(change("aws_ecr_repository.this", {"name": "new"}))

    with pytest.raises(inventory.CommonOutdated, match="regenerate every case"):
        inventory.generate(spec, Planned(), ["a"])  # type: ignore[arg-type]
    texts = inventory.generate(spec, Planned())  # type: ignore[arg-type]
    assert set(texts) == {tmp_path / "common.yaml", tmp_path / "a.yaml", tmp_path / "b.yaml"}
    assert yaml.safe_load(texts[tmp_path / "common.yaml"])["values"] == {
        "aws_ecr_repository.this": {"name": "new"}}


@pytest.mark.parametrize("spec_file", SPECS, ids=lambda p: p.parent.name)
def test_every_inventory_is_what_the_generator_writes(
        spec_file: Path, _planner: inventory.Planner) -> None:
    spec = inventory.load_spec(spec_file)
    stale = [path.name for path, text in inventory.generate(spec, _planner).items()
             if not path.exists() or path.read_text() != text]
    assert not stale, (f"{', '.join(stale)} differ from what the generator writes (a hand "
                       f"edit, or a plan that changed); run {spec.regenerate_command()} and "
                       "review the diff")


def test_the_largest_inventory_stays_readable() -> None:
    sizes = {p.relative_to(inventory.ROOT): len(p.read_text().splitlines())
             for spec in SPECS for p in spec.parent.glob("*.yaml") if p.name != "tftest.yaml"}
    assert sizes and max(sizes.values()) < 300, sizes
