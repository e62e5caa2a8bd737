"""terraform.tfvars.example lists every variable of the root module, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tools import docs

ROOT = Path(__file__).resolve().parents[3]


def test_example_sets_every_root_variable_and_only_those() -> None:
    example = (ROOT / "terraform.tfvars.example").read_text()
    assigned = re.findall(r"^([a-z_][a-z0-9_]*)\s*=", example, re.M)
    variables = [v.name for v in docs.read_module(ROOT)[0]]
    assert len(assigned) == len(set(assigned)), "a variable is set twice"
    assert sorted(assigned) == sorted(variables)


def test_example_shows_the_defaults_of_simple_variables() -> None:
    example = (ROOT / "terraform.tfvars.example").read_text()
    for variable in docs.read_module(ROOT)[0]:
        if variable.default is None or variable.default.startswith(("{", "[")):
            continue
        line = re.search(rf"^{variable.name}\s*=\s*(.*?)\s*(#.*)?$", example, re.M)
        assert line, variable.name
        assert line[1] == variable.default, (variable.name, line[1], variable.default)


def test_example_plans_as_it_is(plan_summary: Any) -> None:
    # A user who copies the example (and only fills in their network) gets a plan, not the
    # plain-HTTP refusal: the example narrows allowed_cidr_blocks instead of opting in.
    summary = plan_summary(".", tf_var_files=[str(ROOT / "terraform.tfvars.example")])
    assert summary.raw["variables"]["allow_plaintext_http"]["value"] is False
    assert summary.values["module.ec2.aws_instance.this[0]"]["instance_type"] == "g5.xlarge"
