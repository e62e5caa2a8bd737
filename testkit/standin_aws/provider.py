"""What the stand-in provider does with values: plan, apply, read, data sources.

It behaves like an SDKv2 provider with no AWS behind it: a plan keeps the configuration,
marks computed attributes that have no value yet as unknown and fills in tags_all from the
provider's default_tags; an apply replaces every unknown with a deterministic fake value
(ids, ARNs, addresses derived from the resource's own arguments); a read returns the state
unchanged, so a second plan after apply is empty. Replacement follows the ForceNew table of
force_new.yaml (force_new.py), and values the provider stores transformed (a StateFunc, such
as aws_instance.user_data kept as its SHA-1) are planned transformed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from . import fakes, force_new
from .cty import UNKNOWN

Json = dict[str, Any]


class Provider:
    """One configured provider instance: the schema plus region and default tags."""

    def __init__(self, schema: Json) -> None:
        self.schema = schema
        self.region = "us-east-1"
        self.default_tags: dict[str, str] = {}
        self._issued: dict[str, int] = {}
        self._lock = threading.Lock()
        self.force_new = force_new.load(schema)

    def resource_block(self, tf_type: str) -> Json:
        return self.schema["resource_schemas"][tf_type]["block"]  # type: ignore[no-any-return]

    def data_block(self, tf_type: str) -> Json:
        return self.schema["data_source_schemas"][tf_type]["block"]  # type: ignore[no-any-return]

    def configure(self, config: Json) -> None:
        region = config.get("region")
        if isinstance(region, str) and region:
            self.region = region
        for block in config.get("default_tags") or []:
            tags = block.get("tags") if isinstance(block, dict) else None
            if isinstance(tags, dict):
                self.default_tags.update(
                    {k: v for k, v in tags.items() if isinstance(v, str)})

    # ----------------------------------------------------------------------- resources

    def plan(self, tf_type: str, prior: Json | None, proposed: Json | None) -> Json | None:
        if proposed is None:
            return None
        block = self.resource_block(tf_type)
        planned = _walk(block, proposed, _default_or_unknown if prior is None else _default)
        if "tags_all" in block["attributes"]:
            planned["tags_all"] = self._tags_all(planned.get("tags"))
        if "region" in block["attributes"] and planned.get("region") in (None, UNKNOWN):
            # terraform-provider-aws 6 plans the provider's region for every resource.
            planned["region"] = self.region
        for name, state_func in STATE_FUNCS.get(tf_type, {}).items():
            if isinstance(planned.get(name), str):
                planned[name] = state_func(planned[name])
        versioned = VERSIONED.get(tf_type)
        if versioned is not None and prior is not None and any(
                prior.get(key) != planned.get(key) for key in versioned):
            # A new version: what refers to the latest (an Auto Scaling group) sees a change.
            planned["latest_version"] = UNKNOWN
            if planned.get("update_default_version"):
                planned["default_version"] = UNKNOWN
        return planned

    def requires_replace(self, tf_type: str, prior: Json | None,
                         planned: Json | None) -> list[force_new.AttrPath]:
        """The paths whose change forces a new resource (none for types not in the table)."""
        rule = self.force_new.get(tf_type)
        if rule is None:
            return []
        return force_new.requires_replace(self.resource_block(tf_type), rule, prior, planned)

    def create_failure(self, tf_type: str) -> str | None:
        """The error AWS would answer a create of `tf_type` with, when a test asks for one
        with EC2I_STANDIN_FAIL_CREATE (a comma list of types): how a launch that finds no
        capacity looks to Terraform."""
        failing = {t.strip() for t in os.environ.get(FAIL_CREATE_ENV, "").split(",")}
        if tf_type not in failing:
            return None
        injected = f"creating {tf_type}: injected failure ({FAIL_CREATE_ENV})"
        return CREATE_FAILURES.get(tf_type, injected)

    def apply(self, tf_type: str, planned: Json | None, prior: Json | None = None
              ) -> Json | None:
        if planned is None:
            return None
        block = self.resource_block(tf_type)
        known = {k: v for k, v in planned.items() if _is_known(v)}
        seed = self._seed(tf_type, known)
        state = dict(planned)
        if state.get("id") is UNKNOWN:
            state["id"] = fakes.fake_id(tf_type, known, seed, self.region)
        if prior is not None and tf_type in VERSIONED:
            for name in ("latest_version", "default_version"):
                if state.get(name) is UNKNOWN and isinstance(prior.get(name), int):
                    state[name] = prior[name] + 1

        def fill(name: str, attr: Json, value: Any, scope: Json) -> Any:
            if value is not UNKNOWN:
                return value
            return _fake_value(tf_type, name, attr, {**state, **scope}, seed, self.region)

        return _walk(block, state, fill)

    def _tags_all(self, tags: Any) -> Any:
        if tags is UNKNOWN:
            return UNKNOWN
        if isinstance(tags, dict) and any(v is UNKNOWN for v in tags.values()):
            return UNKNOWN
        return {**self.default_tags, **(tags or {})}

    def _seed(self, tf_type: str, known: Json) -> str:
        seed = fakes.digest(tf_type, known)
        with self._lock:
            count = self._issued.get(seed, 0)
            self._issued[seed] = count + 1
        return seed if count == 0 else fakes.digest(seed, count)

    # ----------------------------------------------------------------------- data sources

    def read_data(self, tf_type: str, config: Json) -> Json:
        block = self.data_block(tf_type)
        answers = fakes.data_source_values(tf_type, config, self.region)
        if tf_type == "aws_default_tags":
            answers = {"id": "aws", "tags": dict(self.default_tags)}
        seed = fakes.digest(tf_type, config)

        def fill(name: str, attr: Json, value: Any, scope: Json) -> Any:
            if value is not None and value is not UNKNOWN:
                return value
            if not attr.get("computed") or scope is not config:
                return value
            if name in answers:
                return answers[name]
            if attr.get("optional"):
                return value
            return _fake_value(tf_type, name, attr, config, seed, self.region)

        state = _walk(block, config, fill)
        if "tags" in block["attributes"] and state.get("tags") is None:
            state["tags"] = {}
        return state


# --------------------------------------------------------------------------- helpers

FAIL_CREATE_ENV = "EC2I_STANDIN_FAIL_CREATE"
CREATE_FAILURES = {
    "aws_instance": (
        "creating EC2 Instance: operation error EC2: RunInstances, https response error "
        "StatusCode: 500, api error InsufficientInstanceCapacity: We currently do not have "
        "sufficient capacity in the Availability Zone you requested."),
}

# Resources whose change is a new version, not an update of the one: a change of any of
# these arguments plans latest_version (and, with update_default_version, default_version)
# anew, and the apply makes it the next number. internal/service/ec2/ec2_launch_template.go
# (resourceLaunchTemplateUpdate: updateKeys -> CreateLaunchTemplateVersion).
VERSIONED: dict[str, tuple[str, ...]] = {
    "aws_launch_template": (
        "block_device_mappings", "capacity_reservation_specification", "cpu_options",
        "credit_specification", "description", "disable_api_stop", "disable_api_termination",
        "ebs_optimized", "elastic_gpu_specifications", "elastic_inference_accelerator",
        "enclave_options", "hibernation_options", "iam_instance_profile", "image_id",
        "instance_initiated_shutdown_behavior", "instance_market_options",
        "instance_requirements", "instance_type", "kernel_id", "key_name",
        "license_specification", "metadata_options", "monitoring", "network_interfaces",
        "placement", "private_dns_name_options", "ram_disk_id", "security_group_names",
        "tag_specifications", "user_data", "vpc_security_group_ids"),
}

# Arguments the provider stores transformed (SDKv2 StateFunc): the plan shows, and the state
# keeps, the transformed value, never the configured one.
STATE_FUNCS: dict[str, dict[str, Callable[[str], str]]] = {
    "aws_instance": {"user_data": fakes.user_data_hash},
}

Visitor = Callable[[str, Json, Any, Json], Any]


def _walk(block: Json, value: Json, visit: Visitor) -> Json:
    """A copy of `value` (an object of `block`) with visit() applied to every attribute,
    nested blocks included."""
    result = dict(value)
    for name, attr in block.get("attributes", {}).items():
        result[name] = visit(name, attr, value.get(name), value)
    for name, child in block.get("block_types", {}).items():
        current = value.get(name)
        if current is None or current is UNKNOWN:
            continue
        if child["nesting_mode"] == "single":
            result[name] = _walk(child["block"], current, visit)
        elif child["nesting_mode"] == "map":
            result[name] = {k: _walk(child["block"], v, visit) for k, v in current.items()}
        else:
            result[name] = [_walk(child["block"], v, visit) for v in current]
    return result


def _default(name: str, attr: Json, value: Any, scope: Json) -> Any:
    if value is None and "default" in attr:
        return attr["default"]
    return value


def _default_or_unknown(name: str, attr: Json, value: Any, scope: Json) -> Any:
    if value is not None:
        return value
    if "default" in attr:
        return attr["default"]
    if attr.get("computed"):
        return UNKNOWN
    return None


def _is_known(value: Any) -> bool:
    if value is UNKNOWN:
        return False
    if isinstance(value, dict):
        return all(_is_known(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_known(v) for v in value)
    return True


def _fake_value(tf_type: str, name: str, attr: Json, state: Json, seed: str,
                region: str) -> Any:
    cty = attr.get("type")
    if cty == "string":
        return fakes.computed_string(tf_type, name, state, fakes.digest(seed, name), region)
    if cty == "number":
        return 1 if name in ("version", "latest_version", "default_version") else 0
    if cty == "bool":
        return False
    if isinstance(cty, list) and cty[0] in ("list", "set"):
        found = fakes.computed_collection(tf_type, name, state, seed)
        return [] if found is None else found
    if isinstance(cty, list) and cty[0] == "map":
        return {}
    return None
