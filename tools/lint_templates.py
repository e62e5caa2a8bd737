"""Lint what Terraform renders for the instance, byte for byte, for a matrix of configurations.

    python tools/lint_templates.py [--case NAME ...] [--list] [--keep DIR]

Users never run our templates; they run what Terraform renders from them. For each case
(cpu/gpu x https on/off x dns on/off, tensor parallel 1 and 4 on a 4-GPU type; the GPU
cases run on Spot and the HTTPS cases stop when idle, so each combination of the optional
timers' files is rendered) this plans
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
* inference.env: every line a comment or KEY='value', and `bash -n`;
* the unit set as one boot sees it: the case's units next to Debian's real cloud-init units
  (tools/prepare/43-cloud-init-units.sh), `.wants` links made from every `[Install]`
  (cloud-init's too), docker and NGINX enabled as the scripts enable them, and
  cloud-init.target wanted by multi-user.target as cloud-init's generator does at boot;
  `systemd-analyze verify multi-user.target` must report no ordering cycle (systemd breaks
  one by deleting a job: the unit then silently does not start);
* the vLLM command line of vllm.service parsed by vLLM's own argument parser (the vLLM CPU
  environment of tools/prepare/50-vllm.sh), with vLLM's own pre-start validation, so a
  misspelt or removed flag fails here; the parser's version must be the one the images
  pin (modules/ec2/vllm.version).

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
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit import render
from testkit.cache import cache_dir
from testkit.instance import cloudwatch_agent
from testkit.local_stack import vllm_python

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
    autoscaling: bool = False  # deployment_mode = "autoscaling": TLS at the load balancer
    model_cache: bool = False  # model_cache_bucket: the model synced from S3 first

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
            values["idle_stop_minutes"] = 30
        if self.use_gpu:
            values["use_spot"] = True
        if self.autoscaling:
            # The load balancer's certificate needs the name and the zone; the instances
            # serve plain HTTP to it.
            values |= {"deployment_mode": "autoscaling", "domain_name": DOMAIN,
                       "subdomain": SUBDOMAIN, "route53_zone_id": "Z0123456789ABCDEFGHIJ",
                       "create_route53_records": self.dns, "enable_https": False}
        if self.model_cache:
            values["model_cache_bucket"] = "my-models"
        return values


def matrix() -> list[Case]:
    cases = []
    for gpu, tp in ((False, 1), (True, 1), (True, 4)):
        for https in (False, True):
            for dns in (False, True):
                hardware = f"gpu-tp{tp}" if gpu else "cpu"
                name = f"{hardware}-{'https' if https else 'http'}-{'dns' if dns else 'nodns'}"
                cases.append(Case(name, gpu, https, dns, tp))
    # The autoscaling mode (NGINX behind the load balancer, the publisher's scaling metric,
    # the agent's group dimension) and the
    # S3 model cache (its setup step, vllm.service loading from the volume) in both modes.
    cases += [
        Case("cpu-autoscaling", False, False, True, autoscaling=True),
        Case("gpu-tp4-autoscaling-cache", True, False, True, 4, autoscaling=True,
             model_cache=True),
        Case("gpu-tp1-https-dns-cache", True, True, True, model_cache=True),
    ]
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
    if name == render.MANIFEST:
        return "manifest"
    if name.endswith(".sh"):
        return "script"
    if name.endswith((".service", ".timer")):
        return "unit"
    if name.startswith("nginx-") and name.endswith(".conf"):
        return "nginx"
    if name.endswith(".env"):
        return "env"
    if name == "docker-daemon.json":
        return "docker-daemon"
    if name == "amazon-cloudwatch-agent.json":
        return "cloudwatch-agent"
    if name.endswith(".py"):
        return "python"
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


def install_targets(unit: str) -> list[tuple[str, str]]:
    """(kind, target) for each WantedBy=/RequiredBy= of a unit's [Install] section."""
    found, section = [], ""
    for raw in unit.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if key in ("WantedBy", "RequiredBy"):
                kind = "wants" if key == "WantedBy" else "requires"
                found += [(kind, target) for target in value.split()]
    return found


def cloud_init_units_dir() -> Path:
    return cache_dir() / "cloud-init-units" / "lib" / "systemd" / "system"


# Enabled on the instance by the scripts (setup-docker.sh, setup-nginx.sh), shipped by the
# distribution: linked from the system's unit directory.
ENABLED_DISTRO_UNITS = ("docker.service", "nginx.service")
CYCLE = re.compile(r"ordering cycle|deleted to break", re.IGNORECASE)


def check_unit_set(artifacts: Mapping[str, str], workdir: Path,
                   cloud_init: Path | None = None) -> list[str]:
    """systemd-analyze verify of multi-user.target with the case's units enabled next to
    Debian's cloud-init units; every ordering-cycle line is a problem."""
    cloud_init = cloud_init or cloud_init_units_dir()
    if not (cloud_init / "cloud-final.service").exists():
        raise LintError(f"Debian's cloud-init units are not in {cloud_init}; run "
                        "`bash tools/prepare.sh test` (tools/prepare/43-cloud-init-units.sh)")
    unit_dir = workdir / "unit-set"
    if unit_dir.exists():
        shutil.rmtree(unit_dir)
    unit_dir.mkdir(parents=True)
    units = {name: artifacts[name] for name in artifacts if kind_of(name) == "unit"}
    units |= {path.name: path.read_text() for path in cloud_init.iterdir()
              if path.is_file() and path.suffix in (".service", ".target", ".socket")}
    for name, content in units.items():
        (unit_dir / name).write_text(content)
    links = [(kind, target, name) for name, content in units.items()
             for kind, target in install_targets(content)]
    links += [("wants", "multi-user.target", name) for name in ENABLED_DISTRO_UNITS]
    links.append(("wants", "multi-user.target", "cloud-init.target"))  # cloud-init-generator
    for kind, target, name in links:
        directory = unit_dir / f"{target}.{kind}"
        directory.mkdir(exist_ok=True)
        source = unit_dir / name if name in units else Path("/lib/systemd/system") / name
        (directory / name).unlink(missing_ok=True)
        (directory / name).symlink_to(source)
    scripts = write_scripts_dir(artifacts, workdir / "unit-set-scripts")
    result = in_private_mounts(
        "mount -t tmpfs tmpfs /opt\n"
        f"mkdir -p {SCRIPTS_DIR}\n"
        f"cp -a {scripts}/. {SCRIPTS_DIR}/\n"
        f"exec {need('systemd-analyze')} verify multi-user.target\n",
        env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:/lib/systemd/system", "SYSTEMD_LOG_COLOR": "0"},
    )
    output = result.stdout + result.stderr
    return [f"systemd-analyze verify multi-user.target: {line.strip()}"
            for line in output.splitlines() if CYCLE.search(line)]


# Runs in the vLLM environment: vLLM's own server parser and pre-start checks, as
# `python -m vllm.entrypoints.openai.api_server` builds them (vllm/entrypoints/launchers/
# api_server/entry.py in 0.32). stdin: {"case": [argv...]}; stdout: {"version", "results"}.
VLLM_PARSER_PROGRAM = """
import contextlib, io, json, sys
import vllm
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
results = {}
for case, argv in json.load(sys.stdin).items():
    parser = make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI server"))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            validate_parsed_serve_args(parser.parse_args(argv))
        results[case] = []
    except SystemExit:
        results[case] = [line for line in err.getvalue().splitlines() if "error" in line]
    except Exception as error:
        results[case] = [f"{type(error).__name__}: {error}"]
print(json.dumps({"version": vllm.__version__, "results": results}))
"""
VLLM_MODULE = "vllm.entrypoints.openai.api_server"


def vllm_argv(unit: str) -> list[str]:
    """The arguments vllm.service passes to vLLM's server module (after `-m <module>`)."""
    command = unit.split("ExecStart=", 1)[1].split("\nExec", 1)[0].replace("\\\n", " ")
    words = shlex.split(command)
    try:
        start = words.index(VLLM_MODULE)
    except ValueError as error:
        raise LintError(f"vllm.service does not run `-m {VLLM_MODULE}`") from error
    return words[start + 1:]


def check_vllm_args(units: Mapping[str, str]) -> tuple[str, dict[str, list[str]]]:
    """(vLLM version, {case: problems}) for each case's vllm.service."""
    python = vllm_python()
    if not python.exists():
        raise LintError(f"the vLLM environment is missing ({python}); run "
                        "`bash tools/prepare.sh test` (tools/prepare/50-vllm.sh)")
    argvs = {case: vllm_argv(unit) for case, unit in units.items()}
    result = run([str(python), "-c", VLLM_PARSER_PROGRAM], input=json.dumps(argvs),
                 env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}, timeout=300)
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise LintError(f"vLLM's parser did not run: {result.stderr[-2000:]}") from error
    problems = {case: [f"vLLM {answer['version']} parser: {line}" for line in lines]
                for case, lines in answer["results"].items()}
    return answer["version"], problems


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


# Docker's log drivers and the options of theirs that docker-daemon.json may set (Docker's
# documentation of the awslogs and local drivers, and of dual logging's cache-* options).
DOCKER_LOG_OPTIONS = {
    "awslogs": {"awslogs-region", "awslogs-group", "awslogs-stream", "awslogs-create-group",
                "awslogs-datetime-format", "awslogs-multiline-pattern", "tag", "mode",
                "max-buffer-size", "awslogs-credentials-endpoint", "awslogs-endpoint",
                "awslogs-format", "cache-disabled", "cache-max-size", "cache-max-file",
                "cache-compress"},
    "local": {"max-size", "max-file", "compress", "mode", "max-buffer-size"},
}


def check_docker_daemon(content: str) -> list[str]:
    """What setup-docker.sh merges into /etc/docker/daemon.json: a log driver and its options
    (string values, as dockerd requires), awslogs with a region and a group, a non-blocking
    mode with a buffer, and the placeholder setup-docker.sh fills in, nothing else."""
    try:
        daemon = json.loads(content)
    except ValueError as error:
        return [f"not JSON: {error}"]
    problems = [f"unexpected key {key!r}" for key in daemon
                if key not in ("log-driver", "log-opts")]
    driver, options = daemon.get("log-driver"), daemon.get("log-opts", {})
    if driver not in DOCKER_LOG_OPTIONS:
        return [*problems, f"log-driver {driver!r} is not one of {sorted(DOCKER_LOG_OPTIONS)}"]
    problems += [f"log-opts.{key} is not an option of {driver}" for key in options
                 if key not in DOCKER_LOG_OPTIONS[driver]]
    problems += [f"log-opts.{key} must be a string" for key, value in options.items()
                 if not isinstance(value, str)]
    if driver == "awslogs":
        problems += [f"log-opts.{key} is required" for key in ("awslogs-region", "awslogs-group")
                     if key not in options]
        if options.get("mode") != "non-blocking" or "max-buffer-size" not in options:
            problems.append("awslogs must be non-blocking with a max-buffer-size (a container "
                            "must start and run while CloudWatch is unreachable)")
    else:
        problems += [f"log-opts.{key} is required (rotation)" for key in ("max-size", "max-file")
                     if key not in options]
    leftover = re.findall(r"\{[a-z_]+\}", content.replace("{instance_id}", ""))
    problems += [f"unknown placeholder {placeholder}" for placeholder in leftover]
    return problems


def check_cloudwatch_agent(content: str) -> list[str]:
    """The agent's configuration against the subset of its schema the harness's stand-in
    agent models (testkit/instance/cloudwatch_agent.py, the same check it runs)."""
    try:
        config = json.loads(content)
    except ValueError as error:
        return [f"not JSON: {error}"]
    return cloudwatch_agent.validate(config)


def check_python(name: str, content: str) -> list[str]:
    """A script for the instance's python3: compiles, and starts with its interpreter."""
    problems = []
    if not content.startswith("#!/usr/bin/env python3\n"):
        problems.append("first line is not #!/usr/bin/env python3")
    try:
        compile(content, name, "exec")
    except SyntaxError as error:
        problems.append(f"line {error.lineno}: {error.msg}")
    return problems


def check_manifest(content: str, artifacts: Mapping[str, str]) -> list[str]:
    """The manifest names every other file the bucket holds, with its SHA-256, once."""
    listed: dict[str, str] = {}
    problems = []
    for number, line in enumerate(content.splitlines(), start=1):
        match = re.fullmatch(r"([0-9a-f]{64})  ([A-Za-z0-9_-][A-Za-z0-9._-]*)", line)
        if not match:
            problems.append(f"line {number}: not '<sha256>  <file name>': {line!r}")
        elif match[2] in listed:
            problems.append(f"line {number}: {match[2]} listed twice")
        else:
            listed[match[2]] = match[1]
    files = {n for n in artifacts if n not in (BOOTSTRAP, render.MANIFEST)}
    problems += [f"{name} is uploaded but not listed" for name in sorted(files - set(listed))]
    problems += [f"{name} is listed but not uploaded" for name in sorted(set(listed) - files)]
    problems += [
        f"{name}: listed {digest[:12]}..., the file hashes to "
        f"{hashlib.sha256(artifacts[name].encode()).hexdigest()[:12]}..."
        for name, digest in sorted(listed.items())
        if name in files and hashlib.sha256(artifacts[name].encode()).hexdigest() != digest
    ]
    if not content.endswith("\n"):
        problems.append("no newline at the end (sha256sum -c reads lines)")
    return problems


CHECKS_BY_KIND = {
    "bootstrap": ["bash -n", "shellcheck", f"size <= {USER_DATA_LIMIT}"],
    "script": ["bash -n", "shellcheck"],
    "nginx": ["nginx -t"],
    "unit": ["systemd-analyze verify"],
    "env": ["KEY='value'", "bash -n"],
    "manifest": ["every file, its sha256"],
    "docker-daemon": ["JSON", "log driver and options"],
    "cloudwatch-agent": ["JSON", "agent schema (stand-in's subset)"],
    "python": ["compiles"],
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
        elif kind == "manifest":
            found[name] = check_manifest(artifacts[name], artifacts)
        elif kind == "docker-daemon":
            found[name] = check_docker_daemon(artifacts[name])
        elif kind == "cloudwatch-agent":
            found[name] = check_cloudwatch_agent(artifacts[name])
        elif kind == "python":
            found[name] = check_python(name, artifacts[name])
        elif kind == "other":
            found[name] = [f"no check knows {name}: add one to tools/lint_templates.py"]
    results = []
    for name in sorted(artifacts, key=lambda n: (n != BOOTSTRAP, n)):
        checks = list(CHECKS_BY_KIND[kind_of(name)])
        if name == BOOTSTRAP:
            checks[-1] = f"{len(artifacts[name].encode())} B <= {USER_DATA_LIMIT}"
        results.append(Result(case, name, checks, found.get(name, [])))
    results += lint_boot(case, artifacts, workdir, cache, units_context)
    return results


UNIT_SET = "(unit set + cloud-init)"
VLLM_ARGV = "(vllm.service argv)"


def lint_boot(case: str, artifacts: Mapping[str, str], workdir: Path,
              cache: dict[str, list[str]], units_context: str) -> list[Result]:
    """The checks of what one boot runs together: the unit set next to cloud-init's units,
    and vLLM's command line through vLLM's own parser."""
    scripts = "".join(f"{n}\0{artifacts[n]}\0" for n in sorted(artifacts) if n != BOOTSTRAP)
    key = "unitset:" + hashlib.sha256((units_context + scripts).encode()).hexdigest()
    if key not in cache:
        cache[key] = check_unit_set(artifacts, workdir / "unit-set")
    results = [Result(case, UNIT_SET, ["systemd-analyze verify multi-user.target",
                                       "no ordering cycle"], cache[key])]
    if "vllm.service" in artifacts:
        key = "vllm:" + hashlib.sha256(artifacts["vllm.service"].encode()).hexdigest()
        if key not in cache:
            version, by_case = check_vllm_args({case: artifacts["vllm.service"]})
            cache[key] = by_case[case]
            cache["vllm-version"] = [version]
        version = cache["vllm-version"][0]
        argv_problems = list(cache[key])
        pinned = pinned_vllm_version()
        if version != pinned:
            argv_problems.append(f"the parser is vLLM {version}, the instance runs {pinned} "
                            "(modules/ec2/vllm.version): run `bash tools/prepare.sh test`")
        results.append(Result(case, VLLM_ARGV, [f"vLLM {version} argument parser"],
                              argv_problems))
    return results


def pinned_vllm_version() -> str:
    """The vLLM release the instance's images run (modules/ec2/vllm.version)."""
    return (ROOT / "modules" / "ec2" / "vllm.version").read_text().strip()


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
