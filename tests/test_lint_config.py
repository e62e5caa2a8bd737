"""`make lint` and .pre-commit-config.yaml run the same steps: every lint target of the
Makefile is a hook (`entry: make <target>`), and every hook is one of those targets."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def lint_targets() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^LINTS := (.+)$", makefile, re.M)
    assert listed, "the Makefile lists its lint steps in LINTS"
    assert re.search(r"^lint: \$\(LINTS\)", makefile, re.M), "`lint` runs exactly $(LINTS)"
    return listed[1].split()


def test_every_lint_step_is_a_hook_and_every_hook_a_lint_step() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    entries = [hook["entry"] for hook in repo["hooks"]]
    assert sorted(entries) == sorted(f"make {target}" for target in lint_targets())
    for hook in repo["hooks"]:
        assert hook["language"] == "system" and hook["pass_filenames"] is False, hook


def test_each_lint_target_exists_in_make() -> None:
    # `make -n` prints the commands of a target without running them; an unknown one fails.
    for target in lint_targets():
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0 and done.stdout.strip(), (target, done.stderr)
