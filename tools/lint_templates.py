"""Lint what Terraform renders for the instance, byte for byte, for a matrix of configurations.

    python tools/lint_templates.py [--case NAME ...] [--list] [--keep DIR]

Users never run our templates; they run what Terraform renders from them. For each case
(cpu/gpu x https on/off x dns on/off, tensor parallel 1 and 4 on a 4-GPU type) this plans
the root module with real Terraform core (tools/terraform.py: the stand-in aws provider
offline), takes the rendered bytes from the plan (the `aws_s3_object` contents that the
scripts bucket uploads and the instance's `user_data`), and checks each artifact:

* scripts (*.sh and the bootstrap): `bash -n` and `shellcheck -S warning` (sourced files
  followed, as they sit together in /opt/inference/scripts);
* the bootstrap: EC2's 16 KB user_data limit;
* NGINX sites: `nginx -t` with the distribution's own /etc/nginx/nginx.conf, the site
  installed where setup-nginx.sh puts it (conf.d/inference.conf), sites-enabled emptied as
  setup-packages.sh does, and dummy certificates at /etc/letsencrypt/live/<domain>/; all of
  that in a private mount namespace, so the machine's /etc is never touched and no path in
  the site is rewritten;
* systemd units: `systemd-analyze verify` with the case's units on the unit path and the
  rendered scripts at /opt/inference/scripts (private mount namespace); any output on
  stderr is a failure, since systemd only warns about unknown keys;
* inference.env: every line a comment or KEY='value', and `bash -n`.

The tools are Debian 12's (shellcheck 0.9, nginx 1.22, systemd 252); the instance runs
Ubuntu 22.04/24.04, whose nginx and systemd accept the same syntax for what we use.
One line per artifact and case; exit status 1 when any check fails. Needs root (mount
namespaces) and the tools from tools/prepare/60-lint.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit import render

ROOT = Path(__file__).resolve().parent.parent


USER_DATA_LIMIT = 16384
BOOTSTRAP = render.BOOTSTRAP
SCRIPTS_DIR = "/opt/inference/scripts"
DOMAIN = "example.com"
SUBDOMAIN = "llm"


class LintError(RuntimeError):
    """The lint could not run (a tool is missing or Terraform failed): not a lint result."""


@dataclass(frozen=True)
class Case:
    name: str
    use_gpu: bool
    https: bool
    dns: bool
    tensor_parallel: int = 1

    def tfvars(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": "llm",
            "environment": "dev",
            **render.PINNED_TFVARS,
            "use_gpu": self.use_gpu,
            "tensor_parallel_size": self.tensor_parallel,
            "enable_https": self.https,
            # The plain-HTTP cases mean it: they check the site that serves the API on 80.
            "allow_plaintext_http": not self.https,
        }
        if self.tensor_parallel > 1:
            values["gpu_instance_type"] = "g5.12xlarge"  # 4 GPUs
        if self.dns or self.https:
            # HTTPS needs a name; without dns the user points their own DNS at the EIP.
            values |= {"domain_name": DOMAIN, "subdomain": SUBDOMAIN}
            values["create_route53_records"] = self.dns
        if self.https:
            values["acme_email"] = f"ops@{DOMAIN}"
        return values


def matrix() -> list[Case]:
    cases = []
    for gpu, tp in ((False, 1), (True, 1), (True, 4)):
        for https in (False, True):
            for dns in (False, True):
                hardware = f"gpu-tp{tp}" if gpu else "cpu"
                name = f"{hardware}-{'https' if https else 'http'}-{'dns' if dns else 'nodns'}"
                cases.append(Case(name, gpu, https, dns, tp))
    return cases


# --- rendering through Terraform (testkit/render.py) ---------------------------------------


def render_cases(
    cases: Sequence[Case], workdir: Path, parallel: int = 2
) -> dict[str, dict[str, str]]:
    """{case name: artifacts}: one init, then one plan per case."""
    try:
        return render.render_many({case.name: case.tfvars() for case in cases}, workdir, parallel)
    except render.RenderError as error:
        raise LintError(str(error)) from error


# --- checks -------------------------------------------------------------------------------


@dataclass
class Result:
    case: str
    artifact: str
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def kind_of(name: str) -> str:
    if name == BOOTSTRAP:
        return "bootstrap"
    if name.endswith(".sh"):
        return "script"
    if name.endswith((".service", ".timer")):
        return "unit"
    if name.startswith("nginx-") and name.endswith(".conf"):
        return "nginx"
    if name.endswith(".env"):
        return "env"
    return "other"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LintError(f"{tool} is not installed; run `bash tools/prepare.sh test`")
    return path


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)


def in_private_mounts(
    script: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a bash script in a private mount namespace (its mounts vanish with it)."""
    return run(
        [need("unshare"), "--mount", "--propagation", "private", "bash", "-euc", script],
        env={**os.environ, **(env or {})},
    )


def write_scripts_dir(artifacts: Mapping[str, str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in artifacts.items():
        if name == BOOTSTRAP:
            continue
        path = directory / name
        path.write_text(content)
        path.chmod(0o755 if name.endswith(".sh") else 0o644)
    return directory


def check_scripts(
    artifacts: Mapping[str, str], workdir: Path, only: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """bash -n and shellcheck for every script (or those in `only`), with all of them in
    place so that sourced files are followed; {name: problems}."""
    scripts_dir = write_scripts_dir(artifacts, workdir / "scripts")
    wanted = set(artifacts if only is None else only)
    names = [n for n in artifacts if kind_of(n) in {"script", "bootstrap"} and n in wanted]
    paths = {n: scripts_dir / n for n in names if n != BOOTSTRAP}
    if BOOTSTRAP in artifacts:
        paths[BOOTSTRAP] = workdir / "bootstrap.sh"
        paths[BOOTSTRAP].write_text(artifacts[BOOTSTRAP])
    problems: dict[str, list[str]] = {name: [] for name in names}
    for name, path in paths.items():
        syntax = run([need("bash"), "-n", str(path)])
        if syntax.returncode != 0:
            problems[name].append(f"bash -n: {syntax.stderr.strip()}")
    by_path = {str(path): name for name, path in paths.items()}
    result = run(
        [
            need("shellcheck"),
            "--severity=warning",
            "--external-sources",
            "--format=json1",
            "--shell=bash",
            *by_path,
        ],
        cwd=scripts_dir,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        raise LintError(f"shellcheck failed to run: {result.stderr.strip()}")
    for comment in json.loads(result.stdout)["comments"]:
        owner = by_path.get(comment["file"])
        if owner is None:  # a sourced file: reported under its own name as well
            continue
        problems[owner].append(
            f"shellcheck SC{comment['code']} ({comment['level']}) line {comment['line']}:"
            f" {comment['message']}"
        )
    return problems


def check_bootstrap_size(content: str) -> list[str]:
    size = len(content.encode())
    if size > USER_DATA_LIMIT:
        return [f"user_data is {size} bytes; EC2 allows {USER_DATA_LIMIT}"]
    return []


def dummy_certificate(live_dir: Path, domain: str) -> None:
    live_dir.mkdir(parents=True, exist_ok=True)
    result = run(
        [
            need("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={domain}",
            "-keyout",
            str(live_dir / "privkey.pem"),
            "-out",
            str(live_dir / "fullchain.pem"),
        ]
    )
    if result.returncode != 0:
        raise LintError(f"openssl could not make a dummy certificate: {result.stderr}")


def check_nginx_site(site: str, workdir: Path) -> list[str]:
    need("nginx")
    conf_d, sites_enabled, letsencrypt = (workdir / d for d in ("conf.d", "sites-enabled", "le"))
    for directory in (conf_d, sites_enabled, letsencrypt):
        directory.mkdir(parents=True, exist_ok=True)
    (conf_d / "inference.conf").write_text(site)
    if not Path("/etc/letsencrypt").is_dir():
        raise LintError("/etc/letsencrypt is missing (certbot makes it); run tools/prepare.sh")
    for domain in set(re.findall(r"/etc/letsencrypt/live/([^/\s;]+)/", site)):
        dummy_certificate(letsencrypt / "live" / domain, domain)
    result = in_private_mounts(
        f"mount --bind {conf_d} /etc/nginx/conf.d\n"
        f"mount --bind {sites_enabled} /etc/nginx/sites-enabled\n"
        f"mount --bind {letsencrypt} /etc/letsencrypt\n"
        "exec nginx -t -q\n"
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or output:
        return [f"nginx -t: {line}" for line in output.splitlines()] or ["nginx -t failed"]
    return []


def check_units(
    artifacts: Mapping[str, str], workdir: Path, only: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """systemd-analyze verify per unit (or those in `only`), with the case's units on the
    unit path and its scripts where the units run them; any stderr line is a failure."""
    units = sorted(n for n in artifacts if kind_of(n) == "unit")
    wanted = set(units) if only is None else set(units) & set(only)
    unit_dir = workdir / "units"
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name in units:
        (unit_dir / name).write_text(artifacts[name])
    scripts = write_scripts_dir(artifacts, workdir / "unit-scripts")
    problems: dict[str, list[str]] = {}
    for name in sorted(wanted):
        result = in_private_mounts(
            "mount -t tmpfs tmpfs /opt\n"
            f"mkdir -p {SCRIPTS_DIR}\n"
            f"cp -a {scripts}/. {SCRIPTS_DIR}/\n"
            f"exec {need('systemd-analyze')} verify {unit_dir / name}\n",
            env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"},
        )
        # A broken neighbour (loaded as a dependency) is reported under its own name.
        others = tuple(f"{unit_dir / other}:" for other in units if other != name)
        lines = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(others)
        ]
        if result.returncode != 0 and not lines:
            lines = [f"exit status {result.returncode}"]
        problems[name] = [f"systemd-analyze verify: {line}" for line in lines]
    return problems


ENV_LINE = re.compile(r"^(#.*|[A-Z_][A-Z0-9_]*='([^']|'\\'')*')?$")


def check_env_file(content: str, workdir: Path) -> list[str]:
    problems = [
        f"line {number}: not KEY='value': {line!r}"
        for number, line in enumerate(content.splitlines(), start=1)
        if not ENV_LINE.match(line)
    ]
    path = workdir / "inference.env"
    path.write_text(content)
    syntax = run([need("bash"), "-n", str(path)])
    if syntax.returncode != 0:
        problems.append(f"bash -n: {syntax.stderr.strip()}")
    return problems


CHECKS_BY_KIND = {
    "bootstrap": ["bash -n", "shellcheck", f"size <= {USER_DATA_LIMIT}"],
    "script": ["bash -n", "shellcheck"],
    "nginx": ["nginx -t"],
    "unit": ["systemd-analyze verify"],
    "env": ["KEY='value'", "bash -n"],
    "other": [],
}


def lint_case(
    case: str, artifacts: Mapping[str, str], workdir: Path, cache: dict[str, list[str]]
) -> list[Result]:
    """Check every artifact of one case. `cache` maps a fingerprint (the artifact and what
    its check depends on) to problems, so what several cases share is checked once."""
    workdir.mkdir(parents=True, exist_ok=True)
    units = sorted(n for n in artifacts if kind_of(n) == "unit")
    units_context = "".join(f"{n}\0{artifacts[n]}\0" for n in units) + "\0".join(sorted(artifacts))

    def fingerprint(name: str) -> str:
        kind = kind_of(name)
        if kind in {"script", "bootstrap"}:
            # shellcheck follows sourced files: every artifact this one names counts.
            context = "".join(
                f"{other}\0{artifacts[other]}\0"
                for other in sorted(artifacts)
                if other != name and other in artifacts[name]
            )
        elif kind == "unit":
            context = units_context  # dependencies and the scripts the units run
        else:
            context = ""
        digest = hashlib.sha256(f"{name}\0{artifacts[name]}\0{context}".encode()).hexdigest()
        return f"{kind}:{digest}"

    keys = {name: fingerprint(name) for name in artifacts}
    todo = {name for name, key in keys.items() if key not in cache}
    if todo & {n for n in artifacts if kind_of(n) in {"script", "bootstrap"}}:
        cache.update(
            (keys[n], p) for n, p in check_scripts(artifacts, workdir / "sh", todo).items()
        )
    if todo & set(units):
        cache.update(
            (keys[n], p) for n, p in check_units(artifacts, workdir / "systemd", todo).items()
        )
    for name in sorted(todo):
        if kind_of(name) == "nginx":
            cache[keys[name]] = check_nginx_site(artifacts[name], workdir / f"nginx-{name}")
    found: dict[str, list[str]] = {}
    for name in artifacts:
        kind = kind_of(name)
        if kind in {"script", "bootstrap", "unit", "nginx"}:
            found[name] = list(cache[keys[name]])
        if kind == "bootstrap":
            found[name] += check_bootstrap_size(artifacts[name])
        elif kind == "env":
            found[name] = check_env_file(artifacts[name], workdir)
        elif kind == "other":
            found[name] = [f"no check knows {name}: add one to tools/lint_templates.py"]
    results = []
    for name in sorted(artifacts, key=lambda n: (n != BOOTSTRAP, n)):
        checks = list(CHECKS_BY_KIND[kind_of(name)])
        if name == BOOTSTRAP:
            checks[-1] = f"{len(artifacts[name].encode())} B <= {USER_DATA_LIMIT}"
        results.append(Result(case, name, checks, found.get(name, [])))
    return results


def format_result(result: Result) -> str:
    status = "ok  " if result.ok else "FAIL"
    line = f"{status} {result.case:<20} {result.artifact:<30} {', '.join(result.checks)}"
    return "\n".join([line, *(f"       {problem}" for problem in result.problems)])


def lint(cases: Iterable[Case], workdir: Path, out: Callable[[str], None] = print) -> list[Result]:
    cases = list(cases)
    rendered = render_cases(cases, workdir)
    cache: dict[str, list[str]] = {}
    results: list[Result] = []
    for case in cases:
        for result in lint_case(case.name, rendered[case.name], workdir / case.name, cache):
            out(format_result(result))
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", default=[], help="only this case (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", type=Path, help="render into this directory and keep it")
    args = parser.parse_args(argv)
    cases = matrix()
    if args.list:
        for case in cases:
            print(f"{case.name:<20} {json.dumps(case.tfvars(), sort_keys=True)}")
        return 0
    if args.case:
        unknown = set(args.case) - {case.name for case in cases}
        if unknown:
            parser.error(f"unknown case(s) {sorted(unknown)}; see --list")
        cases = [case for case in cases if case.name in args.case]
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            results = lint(cases, args.keep.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="lint-templates-") as tmp:
                results = lint(cases, Path(tmp))
    except LintError as error:
        print(f"lint_templates: {error}", file=sys.stderr)
        return 2
    failed = [r for r in results if not r.ok]
    print(
        f"lint_templates: {len(results) - len(failed)} ok, {len(failed)} failed, {len(cases)} cases"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
