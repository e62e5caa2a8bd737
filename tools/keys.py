"""Manage the proxy's API keys in their SSM SecureString parameter.

    python tools/keys.py --parameter /NAME/proxy-api-keys list
    python tools/keys.py --parameter /NAME/proxy-api-keys add alice --rpm 60 --tpm 20000 \\
        --concurrency 4 --models Qwen/Qwen2.5-7B-Instruct
    python tools/keys.py --parameter /NAME/proxy-api-keys rotate alice
    python tools/keys.py --parameter /NAME/proxy-api-keys remove alice

The parameter holds the proxy's key set (docs/API_REFERENCE.md, "API keys"): a JSON
document `{"keys": [{"name", "key", "max_concurrency", "requests_per_minute",
"tokens_per_minute", "models"}]}`, or a comma list of keys (what a first boot creates).
`add` and `rotate` make a random key, store the set and print the key once on stdout
(nothing else goes to stdout); `list` prints names and limits, never keys. The first
write converts a comma list to JSON, naming each key as the proxy does (`key-` + the
first 8 hex digits of its SHA-256). The instance picks a change up within minutes, with
no restart. AWS credentials and region come from the usual places (environment,
profile, --region); AWS_ENDPOINT_URL is honoured.

Runs with any Python that has boto3 (it imports nothing of this project).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import sys
from typing import Any

import boto3
import botocore.exceptions

LIMITS = {
    "concurrency": "max_concurrency",
    "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute",
}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class KeysError(Exception):
    """Something the operator can fix; the message says what."""


def key_id(key: str) -> str:
    """The name the proxy gives a key listed without one (inference_proxy.keys.key_id)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def read_entries(ssm: Any, parameter: str) -> list[dict[str, Any]]:
    """The key set's entries; [] when the parameter does not exist yet."""
    try:
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return []
    text = value.strip()
    if not text.startswith("{"):
        return [{"name": key_id(k.strip()), "key": k.strip()} for k in text.split(",") if k.strip()]
    try:
        entries = json.loads(text)["keys"]
    except (ValueError, KeyError, TypeError):
        raise KeysError(
            f"{parameter} holds neither a comma list nor a JSON key set; fix it by hand first"
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise KeysError(f'{parameter}: "keys" must be a list of objects; fix it by hand first')
    return entries


def write_entries(
    ssm: Any, parameter: str, entries: list[dict[str, Any]], kms_key_id: str | None
) -> None:
    args: dict[str, Any] = {
        "Name": parameter,
        "Value": json.dumps({"keys": entries}, separators=(",", ":")),
        "Type": "SecureString",
        "Overwrite": True,
        # Standard parameters hold 4 KB (about 25 keys with limits); the advanced tier
        # (8 KB) is taken only when the value needs it.
        "Tier": "Intelligent-Tiering",
    }
    if kms_key_id:
        args["KeyId"] = kms_key_id
    try:
        ssm.put_parameter(**args)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"ParameterMaxVersionLimitExceeded", "ValidationException"}:
            raise KeysError(f"{parameter} could not be written ({code}): {exc}") from None
        raise


def find(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for entry in entries:
        if entry.get("name", key_id(str(entry.get("key", "")))) == name:
            return entry
    raise KeysError(f"no key named {name!r}; `list` shows the names")


def describe(entry: dict[str, Any]) -> str:
    name = entry.get("name") or key_id(str(entry.get("key", "")))
    limits = [
        f"{flag}={entry[field]}" for flag, field in LIMITS.items() if entry.get(field) is not None
    ]
    models = entry.get("models")
    return " ".join(
        [name, *limits, "models=" + ",".join(models) if models else "models=all"]
        + ([] if limits else ["(no limits)"])
    )


def add(
    entries: list[dict[str, Any]],
    name: str,
    limits: dict[str, int | None],
    models: list[str] | None,
) -> str:
    if not NAME.fullmatch(name):
        raise KeysError(f"{name!r}: a name is 1-64 of A-Z a-z 0-9 . _ @ - (letter or digit first)")
    if any(entry.get("name") == name for entry in entries):
        raise KeysError(f"a key named {name!r} exists; `rotate` it or choose another name")
    key = new_key()
    entry: dict[str, Any] = {"name": name, "key": key}
    entry.update({field: value for field, value in limits.items() if value is not None})
    if models:
        entry["models"] = models
    entries.append(entry)
    return key


def main(argv: list[str] | None = None, ssm: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parameter", required=True, help="the SSM parameter of the key set")
    parser.add_argument("--region", help="AWS region (default: the configured one)")
    parser.add_argument("--kms-key-id", help="KMS key for the SecureString (default: aws/ssm)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="names, limits and models; never keys")
    adding = commands.add_parser("add", help="a new named key; prints the key once")
    adding.add_argument("name")
    adding.add_argument("--concurrency", type=positive, help="requests in flight at most")
    adding.add_argument("--rpm", type=positive, help="requests per minute")
    adding.add_argument("--tpm", type=positive, help="tokens per minute (prompt + completion)")
    adding.add_argument("--models", nargs="+", help="the only models this key may use")
    commands.add_parser("remove", help="delete a key").add_argument("name")
    commands.add_parser("rotate", help="a new key for a name; prints it once").add_argument("name")
    args = parser.parse_args(argv)
    if ssm is None:
        ssm = boto3.client("ssm", region_name=args.region)
    try:
        entries = read_entries(ssm, args.parameter)
        if args.command == "list":
            for entry in entries:
                print(describe(entry))
            if not entries:
                print(f"{args.parameter}: no keys", file=sys.stderr)
            return 0
        if args.command == "add":
            limits = {field: getattr(args, flag) for flag, field in LIMITS.items()}
            key = add(entries, args.name, limits, args.models)
        elif args.command == "rotate":
            entry = find(entries, args.name)
            entry["name"] = args.name  # a listed key keeps its old id as its name
            entry["key"] = key = new_key()
        else:
            entries.remove(find(entries, args.name))
            key = ""
        write_entries(ssm, args.parameter, entries, args.kms_key_id)
    except KeysError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 2
    print(f"keys: {args.command} {args.name}: {args.parameter} updated", file=sys.stderr)
    if key:
        print(key)
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


if __name__ == "__main__":
    sys.exit(main())
