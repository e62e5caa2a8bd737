"""No secret passes through Terraform. Canary secrets are put everywhere Terraform reads
input: the environment it runs in (TF_VAR_* included, and the AWS and Hugging Face
variables its provider and local-exec steps inherit), an auto-loaded *.auto.tfvars next to
the configuration and an explicit -var-file. Then a real plan, apply and destroy of the
root module (tftest, stand-in provider): no canary may appear in the saved plan, its JSON,
the state, the outputs, user_data or any rendered file of the instance; no declared
variable can hold a secret (the values are SSM parameter names); and Terraform is shown to
have read the files the canaries were in."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from testkit import plans, render
from testkit.tftest_cases import copy_module
from tools import terraform

HERE = Path(__file__).resolve().parent

# In the environment Terraform runs in (the provider and tools/build.py inherit it).
ENVIRONMENT = {
    "HF_TOKEN": "hf_CanaryEnvironmentToken000000000001",
    "HUGGING_FACE_HUB_TOKEN": "hf_CanaryEnvironmentToken000000000002",
    "AWS_SECRET_ACCESS_KEY": "CanaryEnvironmentSecretAccessKey00000003",
    "AWS_SESSION_TOKEN": "CanaryEnvironmentSessionToken0000000004",
    "PROXY_API_KEYS": "sk-canary-environment-api-key-000000005",
    # TF_VAR_<name> is how Terraform reads a variable from the environment.
    "TF_VAR_hf_token": "hf_CanaryTfVarToken000000000000000006",
    "TF_VAR_api_keys": "sk-canary-tf-var-api-key-0000000000007",
    "TF_VAR_proxy_api_keys": "sk-canary-tf-var-api-key-0000000000008",
}
# As a user might write them into terraform files: auto-loaded and explicit.
AUTO_TFVARS = {"hf_token": "hf_CanaryAutoTfvarsToken0000000000009",
               "api_keys": "sk-canary-auto-tfvars-api-key-00000010"}
VAR_FILE = {"hf_token": "hf_CanaryVarFileToken00000000000000011",
            "api_keys": "sk-canary-var-file-api-key-0000000012"}
CANARIES = {**ENVIRONMENT, **{f"auto.tfvars {k}": v for k, v in AUTO_TFVARS.items()},
            **{f"-var-file {k}": v for k, v in VAR_FILE.items()}}
SECRET_SHAPES = [
    re.compile(r"hf_[A-Za-z0-9]{20,}"),
    re.compile(r"sk-[A-Za-z0-9-]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
]


def leaks(where: str, text: str) -> list[str]:
    found = [f"{where}: {name}" for name, value in CANARIES.items() if value in text]
    found += [f"{where}: something shaped like {shape.pattern}" for shape in SECRET_SHAPES
              if shape.search(text)]
    return found


def hcl(values: dict[str, str]) -> str:
    return "".join(f'{name} = "{value}"\n' for name, value in values.items())


@pytest.mark.slow
def test_no_secret_reaches_plan_state_outputs_or_the_instance_files(tmp_path: Path) -> None:
    copy = copy_module(".", tmp_path / "work", extra=["app"])
    (copy / "secrets.auto.tfvars").write_text(hcl(AUTO_TFVARS))
    var_file = tmp_path / "secrets.tfvars"
    var_file.write_text(hcl(VAR_FILE))
    env = terraform.terraform_env({**terraform.terraform_env(), **ENVIRONMENT})
    test = plans.terraform_test(copy, env)
    args = ["-input=false", "-no-color", f"-var-file={HERE / 'existing_image.tfvars'}",
            f"-var-file={var_file}"]
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("plan"):
        planned = test.execute_command("plan", *args, "-out=case.tfplan")
    # Terraform read both files: it names their (undeclared, so unused) variables.
    said = planned.out + planned.err
    assert "Value for undeclared variable" in said or "undeclared variables" in said, said
    assert "hf_token" in said, said
    with plans.terraform_errors("show"):
        plan_json = test.execute_command("show", "-json", "case.tfplan").out
    plan = json.loads(plan_json)
    with plans.terraform_errors("apply"):
        test.execute_command("apply", "-input=false", "-no-color", "case.tfplan")
    with plans.terraform_errors("show"):
        state_json = test.execute_command("show", "-json").out
    outputs = json.dumps(dict(test.output()))

    found: list[str] = []
    with zipfile.ZipFile(copy / "case.tfplan") as saved:  # the plan file, as stored
        for member in saved.namelist():
            found += leaks(f"case.tfplan/{member}", saved.read(member).decode(errors="replace"))
    found += leaks("plan JSON", plan_json)
    found += leaks("terraform.tfstate", (copy / "terraform.tfstate").read_text())
    found += leaks("state JSON", state_json)
    found += leaks("outputs", outputs)
    files = render.artifacts_from_plan(plan)
    assert render.BOOTSTRAP in files and "setup-secrets.sh" in files and len(files) > 15
    for name, content in files.items():
        found += leaks(f"instance file {name}", content)
    assert not found, "\n".join(found)

    # Nothing declared can carry a secret: the only secret-sounding variables hold the
    # names of SSM parameters, which the instance reads at boot.
    for name, variable in plan["variables"].items():
        if re.search(r"token|secret|password|api_key", name):
            assert name.endswith("_parameter_name"), f"variable {name} could carry a secret"
            # null: the deployment's own name, /<name>-<environment>/... (an output says it).
            assert variable["value"] is None or variable["value"].startswith("/"), name
    assert not any(o.get("sensitive") for o in plan.get("output_changes", {}).values())

    with plans.terraform_errors("destroy"):
        test.destroy(tf_var_file=[str(HERE / "existing_image.tfvars"), str(var_file)])


def test_the_leak_finder_finds_a_leak() -> None:
    # Guards the test above: a finder that finds nothing proves nothing.
    assert leaks("x", f"...{VAR_FILE['api_keys']}...") == [
        "x: -var-file api_keys", "x: something shaped like sk-[A-Za-z0-9-]{20,}"]
    assert leaks("x", "HF_TOKEN_PARAMETER='/inference/hf_token'") == []
