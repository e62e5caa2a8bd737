"""`terraform validate` of every Terraform configuration in the repository: the root module,
each module in modules/ and each example in examples/. Offline through tools/terraform.py
(the stand-in hashicorp/aws unless EC2I_AWS_PROVIDER=real); nothing is written into the
work tree but the git-ignored lock files (each configuration is initialised into its own
temporary TF_DATA_DIR).

    python tools/validate_modules.py                 # all of them, one line each
    python tools/validate_modules.py modules/ecr .   # some of them
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools import terraform

ROOT = Path(__file__).resolve().parent.parent


def configurations() -> list[Path]:
    """The root module, modules/*, examples/*: every folder with .tf files of its own."""
    candidates = [ROOT, *sorted((ROOT / "modules").iterdir()), *sorted(
        (ROOT / "examples").iterdir() if (ROOT / "examples").is_dir() else [])]
    return [path for path in candidates if path.is_dir() and any(path.glob("*.tf"))]


def validate(directory: Path, workdir: Path, env: dict[str, str]) -> str | None:
    """None when the configuration is valid, else Terraform's diagnostics."""
    name = "root" if directory == ROOT else str(directory.relative_to(ROOT)).replace("/", "-")
    env = {**env, "TF_DATA_DIR": str(workdir / name)}
    if terraform.uses_standin(env):
        terraform.forget_stale_lock(directory)
    for args in (["init", "-backend=false", "-input=false", "-no-color"],
                 ["validate", "-no-color"]):
        done = terraform.run(args, cwd=directory, env=env, check=False)
        if done.returncode != 0:
            return f"terraform {args[0]} failed:\n{done.stdout}{done.stderr}".strip()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="*", type=Path,
                        help="configurations to validate (default: all of them)")
    args = parser.parse_args(argv)
    chosen = [p.resolve() for p in args.paths] or configurations()
    env = terraform.terraform_env()
    with tempfile.TemporaryDirectory(prefix="validate-") as workdir, \
            ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda d: validate(d, Path(workdir), env), chosen))
    failed = 0
    for directory, problem in zip(chosen, results, strict=True):
        label = "." if directory == ROOT else str(directory.relative_to(ROOT))
        if problem is None:
            print(f"valid    {label}")
        else:
            failed += 1
            print(f"INVALID  {label}\n{problem}\n", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
