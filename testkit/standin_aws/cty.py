"""cty values on the wire: Terraform's msgpack encoding, typed by the schema.

Types are the JSON form Terraform uses (`"string"`, `["list", "string"]`,
`["object", {...}]`, `"dynamic"`). Values are plain Python: None is null, UNKNOWN is an
unknown value, objects are dicts, lists/sets are lists, maps are dicts.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

Json = dict[str, Any]


class _Unknown:
    """The single unknown value (a value only known after apply)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()

# cty marks unknowns with msgpack extension 0, refined unknowns with extension 12.
_UNKNOWN_EXT = msgpack.ExtType(0, b"\x00")


def block_type(block: Json) -> Any:
    """The object type a schema block implies (attributes plus nested blocks)."""
    members: Json = {}
    for name, attr in block.get("attributes", {}).items():
        members[name] = attribute_type(attr)
    for name, child in block.get("block_types", {}).items():
        element = block_type(child["block"])
        mode = child["nesting_mode"]
        members[name] = element if mode == "single" else [mode, element]
    return ["object", members]


def attribute_type(attr: Json) -> Any:
    if "type" in attr:
        return attr["type"]
    nested = attr["nested_type"]
    element = block_type({"attributes": nested["attributes"]})
    mode = nested["nesting_mode"]
    return element if mode == "single" else [mode, element]


def _ext_hook(code: int, data: bytes) -> Any:
    if code in (0, 12):
        return UNKNOWN
    raise ValueError(f"unexpected msgpack extension {code}")


def unpack(data: bytes, cty: Any) -> Any:
    """Decode a msgpack DynamicValue of type `cty`."""
    if not data:
        return None
    raw = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    return _from_wire(raw, cty)


def pack(value: Any, cty: Any) -> bytes:
    """Encode `value` of type `cty` as a msgpack DynamicValue."""
    return msgpack.packb(_to_wire(value, cty), use_bin_type=True)  # type: ignore[no-any-return]


def from_json(value: Any, cty: Any) -> Any:
    """A value as Terraform stores it in state JSON, conformed to `cty` (missing = null)."""
    return _from_wire(value, cty, from_state=True)


def to_json(value: Any, cty: Any) -> Any:
    """The state-JSON form of a known value (dynamic values lose their type wrapper)."""
    if value is None or value is UNKNOWN:
        return None
    if isinstance(cty, list):
        kind = cty[0]
        if kind == "object":
            return {k: to_json(value.get(k), t) for k, t in cty[1].items()}
        if kind in ("list", "set"):
            return [to_json(v, cty[1]) for v in value]
        if kind == "map":
            return {k: to_json(v, cty[1]) for k, v in value.items()}
        if kind == "tuple":
            return [to_json(v, t) for v, t in zip(value, cty[1], strict=True)]
    return value


def _from_wire(raw: Any, cty: Any, from_state: bool = False) -> Any:
    if raw is None or raw is UNKNOWN:
        return raw
    if cty == "dynamic":
        if from_state:
            return raw
        type_json, inner = raw
        return _from_wire(inner, json.loads(type_json))
    if isinstance(cty, list):
        kind = cty[0]
        if kind == "object":
            return {k: _from_wire(raw.get(k), t, from_state) for k, t in cty[1].items()}
        if kind in ("list", "set"):
            return [_from_wire(v, cty[1], from_state) for v in raw]
        if kind == "map":
            return {k: _from_wire(v, cty[1], from_state) for k, v in raw.items()}
        if kind == "tuple":
            return [_from_wire(v, t, from_state) for v, t in zip(raw, cty[1], strict=True)]
        raise ValueError(f"unknown cty type {cty!r}")
    if cty == "number" and isinstance(raw, str):
        number = float(raw)
        return int(number) if number.is_integer() else number
    return raw


def _to_wire(value: Any, cty: Any) -> Any:
    if value is UNKNOWN:
        return _UNKNOWN_EXT
    if value is None:
        return None
    if cty == "dynamic":
        inferred = infer_type(value)
        return [json.dumps(inferred).encode(), _to_wire(value, inferred)]
    if isinstance(cty, list):
        kind = cty[0]
        if kind == "object":
            return {k: _to_wire(value.get(k), t) for k, t in cty[1].items()}
        if kind in ("list", "set"):
            return [_to_wire(v, cty[1]) for v in value]
        if kind == "map":
            return {k: _to_wire(v, cty[1]) for k, v in value.items()}
        if kind == "tuple":
            return [_to_wire(v, t) for v, t in zip(value, cty[1], strict=True)]
        raise ValueError(f"unknown cty type {cty!r}")
    if cty == "number" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def infer_type(value: Any) -> Any:
    """The cty type of a plain known value (for dynamic attributes)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str) or value is None:
        return "string"
    if isinstance(value, list):
        return ["tuple", [infer_type(v) for v in value]]
    if isinstance(value, dict):
        return ["object", {k: infer_type(v) for k, v in value.items()}]
    raise ValueError(f"cannot infer a cty type for {value!r}")
