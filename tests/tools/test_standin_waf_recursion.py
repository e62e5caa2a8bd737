"""WAFv2 rule statements in the stand-in's schema: recursive in terraform-provider-aws, which
builds them level by level up to a fixed depth (internal/service/wafv2/consts.go,
generate_statement_models.go: 3 levels of and/or/not). The generator unrolls the cyclic
binding of aws_wafv2_web_acl_rule to that depth and grafts the same statement into
aws_wafv2_web_acl and aws_wafv2_rule_group, whose bindings only say `any`; real Terraform
then accepts a statement as deep as the provider does and refuses one level more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.cache import cache_dir
from testkit.standin_aws import install, schema_gen
from tools import terraform

LOGICAL = {"and_statement", "or_statement", "not_statement", "scope_down_statement"}
NESTED_ONLY_AT_ROOT = {"managed_rule_group_statement", "rate_based_statement",
                       "rule_group_reference_statement"}


WAF_TYPES = {"aws_wafv2_web_acl", "aws_wafv2_rule_group", "aws_wafv2_web_acl_rule"}


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    return json.loads(install.install().schema.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The three WAFv2 types with rule statements, generated (two of them are not served)."""
    return schema_gen.generate(install.wheel(cache_dir()), only=WAF_TYPES)


def test_the_web_acl_is_served_and_the_unused_statement_trees_are_not(
        served: dict[str, Any]) -> None:
    assert "aws_wafv2_web_acl" in served["resource_schemas"]
    assert set(served["not_served"]) == {"aws_wafv2_web_acl_rule", "aws_wafv2_rule_group"}
    assert not WAF_TYPES & set(served["unclassified"])


def statement(schema: dict[str, Any], tf_type: str) -> dict[str, Any]:
    block = schema["resource_schemas"][tf_type]["block"]
    rule = block["block_types"]["rule"]["block"] if tf_type != "aws_wafv2_web_acl_rule" else block
    return rule["block_types"]["statement"]  # type: ignore[no-any-return]


def logical_depth(block: dict[str, Any], depth: int = 0) -> int:
    deepest = depth
    for name, child in block.get("block_types", {}).items():
        deepest = max(deepest, logical_depth(child["block"], depth + (name in LOGICAL)))
    return deepest


@pytest.mark.parametrize("tf_type", ["aws_wafv2_web_acl", "aws_wafv2_rule_group",
                                     "aws_wafv2_web_acl_rule"])
def test_statements_nest_exactly_as_deep_as_the_provider_allows(
        schema: dict[str, Any], tf_type: str) -> None:
    assert tf_type not in schema["unclassified"]
    root = statement(schema, tf_type)
    assert logical_depth(root["block"]) == 3
    assert (root.get("min_items"), root.get("max_items")) == (1, 1) or (
        tf_type == "aws_wafv2_web_acl_rule")
    innermost = root["block"]
    for _ in range(3):
        innermost = innermost["block_types"]["and_statement"]["block"]["block_types"][
            "statement"]["block"]
    assert "and_statement" not in innermost["block_types"]  # level 0: leaf statements only
    assert "byte_match_statement" in innermost["block_types"]


def test_web_acl_statements_have_the_sdk_shape(schema: dict[str, Any]) -> None:
    web_acl = statement(schema, "aws_wafv2_web_acl")["block"]["block_types"]
    assert set(web_acl) >= NESTED_ONLY_AT_ROOT
    nested = web_acl["or_statement"]["block"]["block_types"]["statement"]["block"]
    assert not NESTED_ONLY_AT_ROOT & set(nested["block_types"])
    rate = web_acl["rate_based_statement"]["block"]["attributes"]
    assert rate["limit"] == {"required": True, "type": "number"}
    assert rate["aggregate_key_type"] == {"optional": True, "default": "IP", "type": "string"}
    managed = web_acl["managed_rule_group_statement"]["block"]
    assert managed["attributes"]["vendor_name"]["required"] is True
    # The rule group offers neither managed rule groups nor references at its root.
    group = statement(schema, "aws_wafv2_rule_group")["block"]["block_types"]
    assert "rate_based_statement" in group
    assert not {"managed_rule_group_statement", "rule_group_reference_statement"} & set(group)


def test_an_unbounded_cycle_still_fails_loudly(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    # Without the provider's depth, the cyclic binding is refused, naming the path.
    source = next(text for path, text in schema_gen.iter_sources(install.wheel(
        install.cache_dir())) if path.endswith("waf/aws-wafv2-web-acl-rule.js"))
    parsed = schema_gen.parse_source("aws-wafv2-web-acl-rule.js", source)
    assert parsed is not None
    monkeypatch.setattr(schema_gen, "RECURSION", {})
    with pytest.raises(schema_gen.SchemaError, match=r"statement\.and_statement\.statement.*"
                                                       r"nesting deeper than 24 levels"):
        schema_gen.Builder(parsed).block(parsed.main_entries, parsed.main, "")


def web_acl(statement_hcl: str) -> str:
    return f"""
terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws", version = "~> 6.0" }}
  }}
}}

resource "aws_wafv2_web_acl" "this" {{
  name  = "nested"
  scope = "REGIONAL"
  default_action {{
    allow {{}}
  }}
  rule {{
    name     = "nested"
    priority = 1
    action {{
      block {{}}
    }}
    statement {{
{statement_hcl}
    }}
    visibility_config {{
      cloudwatch_metrics_enabled = false
      metric_name                = "nested"
      sampled_requests_enabled   = false
    }}
  }}
  visibility_config {{
    cloudwatch_metrics_enabled = false
    metric_name                = "acl"
    sampled_requests_enabled   = false
  }}
}}
"""


def nested_and(levels: int) -> str:
    leaf = 'geo_match_statement {\n  country_codes = ["NL"]\n}'
    text = leaf
    for _ in range(levels):
        text = f"and_statement {{\n  statement {{\n{text}\n  }}\n  statement {{\n{leaf}\n  }}\n}}"
    return text


def test_terraform_accepts_three_levels_and_refuses_a_fourth(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(web_acl(nested_and(3)))
    terraform.run(["init", "-input=false", "-no-color"], cwd=tmp_path)
    terraform.run(["validate", "-no-color"], cwd=tmp_path)
    (tmp_path / "main.tf").write_text(web_acl(nested_and(4)))
    refused = terraform.run(["validate", "-no-color"], cwd=tmp_path, check=False)
    assert refused.returncode != 0
    assert 'Blocks of type "and_statement" are not expected here' in refused.stderr
