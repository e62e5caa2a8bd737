"""modules/scripts_bucket with real Terraform: private, encrypted, versioned, TLS-only,
one object per script; the bucket policy is checked after an apply (it names the bucket
ARN, which is only known then)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
MODULE = "modules/scripts_bucket"


def plan(plan_summary: Any, case: str, **tf_vars: Any) -> Any:
    return plan_summary(MODULE, tf_var_files=[str(HERE / f"{case}.tfvars")], **tf_vars)


def test_bucket_is_private_encrypted_and_versioned(plan_summary: Any) -> None:
    values = plan(plan_summary, "default").values
    block = values["aws_s3_bucket_public_access_block.this"]
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[setting] is True, setting
    (ownership,) = values["aws_s3_bucket_ownership_controls.this"]["rule"]
    assert ownership["object_ownership"] == "BucketOwnerEnforced"
    (rule,) = values["aws_s3_bucket_server_side_encryption_configuration.this"]["rule"]
    (default,) = rule["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] == "AES256"
    (versioning,) = values["aws_s3_bucket_versioning.this"]["versioning_configuration"]
    assert versioning["status"] == "Enabled"
    (lifecycle,) = values["aws_s3_bucket_lifecycle_configuration.this"]["rule"]
    assert lifecycle["noncurrent_version_expiration"][0]["noncurrent_days"] == 30


def test_kms_key_switches_encryption_to_sse_kms(plan_summary: Any) -> None:
    values = plan(plan_summary, "kms").values
    (rule,) = values["aws_s3_bucket_server_side_encryption_configuration.this"]["rule"]
    (default,) = rule["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert rule["bucket_key_enabled"] is True
    assert values["aws_s3_bucket.this"]["force_destroy"] is False


def test_one_object_per_script_with_its_content(plan_summary: Any) -> None:
    summary = plan(plan_summary, "default")
    objects = {
        v["key"]: v for a, v in summary.values.items() if a.startswith("aws_s3_object.script[")
    }
    assert set(objects) == {"scripts/main-setup.sh", "scripts/nginx-site.conf"}
    assert objects["scripts/main-setup.sh"]["content"] == "#!/bin/bash\necho setup\n"
    assert objects["scripts/main-setup.sh"]["content_type"] == "text/x-shellscript"
    assert summary.outputs["object_keys"] == ["scripts/main-setup.sh", "scripts/nginx-site.conf"]


def test_manifest_lists_every_script_with_its_sha256_and_is_uploaded_last(
        plan_summary: Any) -> None:
    summary = plan(plan_summary, "default")
    manifest = summary.values["aws_s3_object.manifest"]
    scripts = {"main-setup.sh": "#!/bin/bash\necho setup\n",
               "nginx-site.conf": "server { listen 80; }\n"}
    assert manifest["key"] == "scripts/manifest" == summary.outputs["manifest_key"]
    # sha256sum's format, so the instance checks its files with `sha256sum -c`.
    assert manifest["content"] == "".join(
        f"{hashlib.sha256(content.encode()).hexdigest()}  {name}\n"
        for name, content in sorted(scripts.items()))
    (config,) = [r for r in summary.raw["configuration"]["root_module"]["resources"]
                 if r["address"] == "aws_s3_object.manifest"]
    assert config["depends_on"] == ["aws_s3_object.script"]


def test_a_script_named_manifest_is_refused(plan_summary: Any) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "default", scripts={"scripts/manifest": "x"})
    assert "scripts/manifest is the bucket's own object" in " ".join(str(failure.value).split())


def test_bucket_policy_denies_every_request_without_tls(lifecycle: Any) -> None:
    applied = lifecycle(
        MODULE,
        tf_vars={
            "bucket_name": "llm-dev-123456789012-us-east-1",
            "scripts": {"scripts/a.sh": "#!/bin/bash\n"},
        },
    )
    assert applied.replan_exit_code == 0, "a second plan after apply must be empty"
    assert applied.destroyed
    policy = json.loads(applied.resources["aws_s3_bucket_policy.this"]["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] in ("s3:*", ["s3:*"])
    assert statement["Principal"] in ("*", {"AWS": "*"})
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket_arn = applied.resources["aws_s3_bucket.this"]["arn"]
    assert sorted(statement["Resource"]) == sorted([bucket_arn, f"{bucket_arn}/*"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scripts": {"other/x.sh": "x"}}, 'Every key of scripts must look like "scripts/'),
        ({"bucket_name": "Not_A_Bucket"}, "bucket_name must be 3-63 characters"),
        ({"noncurrent_version_retention_days": 0}, "must be at least 1"),
    ],
)
def test_invalid_configuration_fails_with_its_message(
    plan_summary: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TerraformError) as failure:
        plan(plan_summary, "default", **overrides)
    assert message in " ".join(str(failure.value).split())
