"""`terraform validate` through tools/terraform.py enforces the generated hashicorp/aws
schema: each mistake below is rejected with Terraform's own diagnostic."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools import terraform

PROVIDER = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 6.0" }
  }
}
"""

VALID = """
resource "aws_ecr_repository" "this" {
  name                 = "proxy"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
}
"""


@pytest.fixture(scope="module")
def validate(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[int, str]]:
    """validate(hcl) -> (exit code, output) in one directory initialised once."""
    directory = tmp_path_factory.mktemp("validate")
    (directory / "versions.tf").write_text(PROVIDER)
    env = terraform.terraform_env()
    terraform.run(["init", "-input=false", "-no-color", "-backend=false"], cwd=directory,
                  env=env)

    def run(hcl: str) -> tuple[int, str]:
        (directory / "main.tf").write_text(hcl)
        done = terraform.run(["validate", "-no-color"], cwd=directory, env=env, check=False)
        return done.returncode, done.stdout + done.stderr

    return run


def test_a_valid_configuration_passes(validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate(VALID)
    assert code == 0, output
    assert "Success! The configuration is valid." in output


def test_unknown_argument_is_rejected(validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate(VALID.replace('name                 = "proxy"',
                                          'nmae                 = "proxy"'))
    assert code == 1
    assert "Error: Unsupported argument" in output
    assert 'An argument named "nmae" is not expected here.' in output


def test_unknown_block_is_rejected(validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate(VALID.replace("image_scanning_configuration {",
                                          "image_scaning_configuration {"))
    assert code == 1
    assert "Error: Unsupported block type" in output
    assert 'Blocks of type "image_scaning_configuration" are not expected here.' in output


def test_missing_required_argument_is_rejected(
        validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate(VALID.replace('  name                 = "proxy"\n', ""))
    assert code == 1
    assert "Error: Missing required argument" in output
    assert 'The argument "name" is required, but no definition was found.' in output


def test_wrong_type_is_rejected(validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate(VALID.replace("scan_on_push = true", 'scan_on_push = "often"'))
    assert code == 1
    assert "Error: Incorrect attribute value type" in output
    assert 'Inappropriate value for attribute "scan_on_push": a bool is required.' in output


def test_too_many_blocks_are_rejected(validate: Callable[[str], tuple[int, str]]) -> None:
    twice = "  image_scanning_configuration {\n    scan_on_push = false\n  }\n}"
    code, output = validate(VALID.rstrip().removesuffix("}") + twice)
    assert code == 1
    assert "Error: Too many image_scanning_configuration blocks" in output


def test_missing_required_block_is_rejected(
        validate: Callable[[str], tuple[int, str]]) -> None:
    code, output = validate("""
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = "b"
}
""")
    assert code == 1
    assert 'Insufficient rule blocks' in output
