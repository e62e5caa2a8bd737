"""Boot what Terraform renders on a simulated EC2 instance, and poke it.

    python tools/instance_sim.py up [--case cpu|https|autoscaling]  # one JSON line when ready
    python tools/instance_sim.py exec -- systemctl --failed
    python tools/instance_sim.py reboot
    python tools/instance_sim.py replace
    python tools/instance_sim.py down                    # removes only what `up` started

`up` applies the root module on the stand-in provider, boots the bootstrap it rendered on a
Debian 12 system container (systemd, cloud-init) with moto, IMDSv2, the registries (and, for
`--case https`, pebble) in the instance's own network namespace, and prints
`{"endpoint", "api_key", "model", "name"}` (for https also `address`: where the domain
points, and `ca_certificate`: the ACME root to trust). Progress goes to stderr.
State lives in $EC2I_INSTANCES (default /var/tmp/ec2i-instances)/<name>; the other commands
take `--name` and default to the only instance there. See docs/DEVELOPMENT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from testkit.instance import harness


def instances_dir() -> Path:
    # Root's own directory on this machine (the harness runs as root), kept across reboots.
    return Path(os.environ.get("EC2I_INSTANCES", "/var/tmp/ec2i-instances"))  # noqa: S108


def find(name: str | None) -> harness.Instance:
    root = instances_dir()
    if name:
        directory = root / name
        if not (directory / "state.json").exists():
            raise harness.InstanceError(f"no instance {name!r} in {root}")
        return harness.Instance.load(directory)
    found = sorted(p.parent for p in root.glob("*/state.json"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise harness.InstanceError(f"{len(found)} instances in {root} ({names}); "
                                    "name one with --name" if found else
                                    f"no instance in {root}; run `up` first")
    return harness.Instance.load(found[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="apply, boot, wait for /ready; print one JSON line")
    up.add_argument("--case", choices=harness.CASES, default="cpu")
    up.add_argument("--name", help="instance name (default: ec2i-sim-<random>)")
    run = commands.add_parser("exec", help="run a command inside: exec -- CMD...")
    run.add_argument("--name")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    for command in ("reboot", "replace", "down"):
        commands.add_parser(command).add_argument("--name")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            name = args.name or f"ec2i-sim-{secrets.token_hex(3)}"
            if (instances_dir() / name).exists():
                raise harness.InstanceError(f"{instances_dir() / name} exists; `down` it first")
            instance = harness.Instance.create(instances_dir() / name, args.case, name)
            print(f"instance_sim: booting {instance.state.name} ({args.case}) in "
                  f"{instance.state.directory}", file=sys.stderr)
            summary = instance.up()
            print(f"instance_sim: /ready after {instance.state.ready_seconds[-1]:.0f} s",
                  file=sys.stderr)
            print(json.dumps(summary), flush=True)
            return 0
        instance = find(args.name)
        if args.command == "exec":
            argv_inside = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not argv_inside:
                parser.error("exec needs a command: exec -- CMD...")
            result = instance.exec(*argv_inside, check=False)
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            return result.returncode
        if args.command == "reboot":
            seconds = instance.reboot()
            print(f"instance_sim: /ready {seconds:.0f} s after the restart", file=sys.stderr)
        elif args.command == "replace":
            seconds = instance.replace()
            print(f"instance_sim: the new instance is /ready after {seconds:.0f} s",
                  file=sys.stderr)
        elif args.command == "down":
            instance.down()
            shutil.rmtree(instance.state.directory, ignore_errors=True)
            print(f"instance_sim: {instance.state.name} removed", file=sys.stderr)
    except harness.InstanceError as error:
        print(f"instance_sim: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
