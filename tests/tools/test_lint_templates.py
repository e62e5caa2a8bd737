"""tools/lint_templates.py: each check fails on a broken artifact and passes a good one, the
plan reader takes the bytes Terraform would upload, and the whole matrix of rendered
templates is clean (the run `make test` relies on)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from testkit import render
from testkit.support import need_tool
from tools import lint_templates as lt

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root (CI runs as root)")


GOOD_SCRIPT = '#!/bin/bash\nset -euo pipefail\n# shellcheck source=lib.sh\n. ./lib.sh\nhello "$1"\n'
GOOD_LIB = '#!/bin/bash\nhello() { printf "%s\\n" "$1"; }\n'


def test_scripts_pass_when_clean_and_fail_on_syntax_and_shellcheck(tmp_path: Path) -> None:
    need_tool("shellcheck")
    artifacts = {
        "main.sh": GOOD_SCRIPT,
        "lib.sh": GOOD_LIB,
        "broken.sh": "#!/bin/bash\nif true; then\n",
        "unsafe.sh": '#!/bin/bash\nrm -rf "$dir"/*\nrm -rf $1/*\n',
        lt.BOOTSTRAP: "#!/bin/bash\necho $HOME\n",
    }
    problems = lt.check_scripts(artifacts, tmp_path)
    assert problems["main.sh"] == [] and problems["lib.sh"] == []
    assert any(p.startswith("bash -n:") for p in problems["broken.sh"])
    assert any("SC2115" in p for p in problems["unsafe.sh"]), problems["unsafe.sh"]
    # Info-level findings (SC2086 quoting) are below the warning threshold.
    assert problems[lt.BOOTSTRAP] == []


def test_bootstrap_size_is_limited_to_16_kb() -> None:
    assert lt.check_bootstrap_size("x" * lt.USER_DATA_LIMIT) == []
    assert lt.check_bootstrap_size("x" * (lt.USER_DATA_LIMIT + 1))


def test_manifest_must_name_every_uploaded_file_with_its_hash() -> None:
    import hashlib

    files = {"a.sh": "#!/bin/bash\n", "b.conf": "x\n", lt.BOOTSTRAP: "#!/bin/bash\n"}

    def line(name: str, content: str) -> str:
        return f"{hashlib.sha256(content.encode()).hexdigest()}  {name}\n"

    good = line("a.sh", files["a.sh"]) + line("b.conf", files["b.conf"])
    assert lt.check_manifest(good, files) == []
    stale = line("a.sh", "#!/bin/bash\necho old\n") + line("b.conf", files["b.conf"])
    assert any(p.startswith("a.sh: listed") for p in lt.check_manifest(stale, files))
    missing = line("a.sh", files["a.sh"])
    assert lt.check_manifest(missing, files) == ["b.conf is uploaded but not listed"]
    extra = good + line("gone.sh", "")
    assert lt.check_manifest(extra, files) == ["gone.sh is listed but not uploaded"]
    assert any("not '<sha256>" in p for p in lt.check_manifest("abc a.sh\n", files))


SITE = """\
server {
    listen 443 ssl;
    server_name llm.example.com;
    ssl_certificate /etc/letsencrypt/live/llm.example.com/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/llm.example.com/privkey.pem;
    location / { return 404; }
}
"""


def test_nginx_site_is_tested_in_the_distribution_config(tmp_path: Path, as_root: None) -> None:
    need_tool("nginx")
    assert lt.check_nginx_site(SITE, tmp_path / "good") == []
    broken = SITE.replace("return 404;", "proxy_bufering off;")
    problems = lt.check_nginx_site(broken, tmp_path / "broken")
    assert any('unknown directive "proxy_bufering"' in p for p in problems), problems
    # Two default servers on one port: what the distro's default site would cause.
    clash = "server { listen 80 default_server; }\nserver { listen 80 default_server; }\n"
    assert any("duplicate default server" in p for p in lt.check_nginx_site(clash, tmp_path / "c"))


UNIT = """\
[Unit]
Description=Test unit
After=network-online.target

[Service]
Type=oneshot
ExecStart=/opt/inference/scripts/run.sh

[Install]
WantedBy=multi-user.target
"""


def test_units_are_verified_with_scripts_in_place_and_warnings_fail(
    tmp_path: Path, as_root: None
) -> None:
    need_tool("systemd-analyze")
    artifacts = {
        "run.sh": "#!/bin/bash\ntrue\n",
        "good.service": UNIT,
        "typo.service": UNIT.replace("Type=oneshot", "Tpye=oneshot"),
        "missing.service": UNIT.replace("run.sh", "absent.sh"),
        "good.timer": "[Timer]\nOnCalendar=daily\nUnit=good.service\n\n"
        "[Install]\nWantedBy=timers.target\n",
    }
    problems = lt.check_units(artifacts, tmp_path)
    assert problems["good.service"] == []
    assert problems["good.timer"] == []
    assert any("Unknown key 'Tpye'" in p for p in problems["typo.service"]), problems
    assert any("absent.sh" in p for p in problems["missing.service"]), problems


def test_env_file_lines_must_be_quoted_assignments(tmp_path: Path) -> None:
    assert lt.check_env_file("# settings\nNAME='llm'\nQUOTE='it'\\''s'\n", tmp_path) == []
    assert lt.check_env_file("NAME=llm\n", tmp_path)
    assert lt.check_env_file("name='x'\n", tmp_path)


def plan_with(content: Any, user_data: Any, unknown: bool = False) -> dict[str, Any]:
    return {
        "resource_changes": [
            {
                "address": 'module.scripts_bucket.aws_s3_object.script["scripts/lib.sh"]',
                "type": "aws_s3_object",
                "change": {
                    "after": {"key": "scripts/lib.sh", "content": content},
                    "after_unknown": {"content": unknown},
                },
            },
            {
                # EC2 and the provider keep only the SHA-1 of user_data.
                "address": "module.ec2.aws_instance.this",
                "type": "aws_instance",
                "change": {"after": {"user_data": "0" * 40}, "after_unknown": {}},
            },
        ],
        "output_changes": {"user_data": {"after": user_data, "after_unknown": False}},
    }


def test_artifacts_come_from_s3_objects_and_the_user_data_output() -> None:
    artifacts = render.artifacts_from_plan(plan_with("#!/bin/bash\n", "#!/bin/bash\nboot\n"))
    assert artifacts == {"lib.sh": "#!/bin/bash\n", lt.BOOTSTRAP: "#!/bin/bash\nboot\n"}
    with pytest.raises(render.RenderError, match="unknown at plan time"):
        render.artifacts_from_plan(plan_with(None, "x", unknown=True))


def test_matrix_covers_cpu_gpu_https_dns_tensor_parallel_autoscaling_and_cache() -> None:
    cases = lt.matrix()
    assert len({case.name for case in cases}) == len(cases) == 15
    both = (False, True)
    assert {(c.use_gpu, c.https, c.dns) for c in cases if not c.autoscaling} == {
        (gpu, https, dns) for gpu in both for https in both for dns in both
    }
    autoscaling = [c.tfvars() for c in cases if c.autoscaling]
    assert {v["use_gpu"] for v in autoscaling} == {False, True}
    assert all(v["deployment_mode"] == "autoscaling" for v in autoscaling)
    assert {c.autoscaling for c in cases if c.model_cache} == {False, True}
    assert {c.tensor_parallel for c in cases if c.use_gpu} == {1, 4}
    tp4 = next(c for c in cases if c.tensor_parallel == 4).tfvars()
    assert tp4["gpu_instance_type"] == "g5.12xlarge"


@pytest.mark.slow(minutes=2)
def test_every_rendered_artifact_of_every_case_passes(as_root: None, tmp_path: Path) -> None:
    """The lint table of `make test`: one line per artifact and case (shown with -s)."""
    for tool in ("shellcheck", "nginx", "systemd-analyze", "openssl"):
        need_tool(tool)
    cases = lt.matrix()
    rendered = lt.render_cases(cases, tmp_path / "render")
    # The cases really differ where the templates branch (a renamed variable would make
    # them all the same and the matrix a sham).
    vllm = {name: files["vllm.service"] for name, files in rendered.items()}
    assert "--tensor-parallel-size 4" in vllm["gpu-tp4-https-dns"]
    assert "--gpus all" in vllm["gpu-tp1-http-nodns"] and "--gpus" not in vllm["cpu-http-nodns"]
    assert "nginx-acme.conf" in rendered["cpu-https-nodns"]
    assert "nginx-acme.conf" not in rendered["cpu-http-dns"]
    assert "ssl_certificate" in rendered["gpu-tp1-https-dns"]["nginx-site.conf"]
    assert "set_real_ip_from" in rendered["cpu-autoscaling"]["nginx-site.conf"]
    # One publisher in both modes; in the autoscaling mode its unit names the scaling metric.
    assert "LOAD_METRIC_NAME=InFlightRequests" in rendered["cpu-autoscaling"][
        "inference-metrics.service"]
    assert "LOAD_METRIC" not in rendered["cpu-http-dns"]["inference-metrics.service"]
    assert not [n for files in rendered.values() for n in files if "load-metric" in n]
    assert "setup-model-cache.sh" in rendered["gpu-tp1-https-dns-cache"]
    assert "/models/model-cache/" in vllm["gpu-tp4-autoscaling-cache"]
    cache: dict[str, list[str]] = {}
    results = [
        result
        for case in cases
        for result in lt.lint_case(case.name, rendered[case.name], tmp_path / case.name, cache)
    ]
    lines = [lt.format_result(result) for result in results]
    print("\n" + "\n".join(lines))
    failed = [line for line in lines if not line.startswith("ok")]
    assert not failed, "\n".join(failed)
    assert len(results) >= len(cases) * 20
    # Every case had its unit set and its vLLM command line checked.
    for case in cases:
        checked = {r.artifact for r in results if r.case == case.name}
        assert {lt.UNIT_SET, lt.VLLM_ARGV} <= checked, case.name


RECOVERY = """\
[Unit]
Description=Per-boot recovery
After=network-online.target{after}
Wants=network-online.target

[Service]
Type={type}
ExecStart=/opt/inference/scripts/run.sh

[Install]
WantedBy=multi-user.target
"""


def test_unit_set_fails_on_an_ordering_cycle_with_debians_cloud_init(
    tmp_path: Path, as_root: None
) -> None:
    """The shipped recovery unit's old shape: After=cloud-final.service while wanted by
    multi-user.target, which cloud-final is ordered after: a cycle only cloud-init's real
    units reveal."""
    need_tool("systemd-analyze")
    if not (lt.cloud_init_units_dir() / "cloud-final.service").exists():
        pytest.skip("Debian's cloud-init units are missing; run `bash tools/prepare.sh test`")
    cyclic = {"run.sh": "#!/bin/bash\ntrue\n",
              "recovery.service": RECOVERY.format(after=" cloud-final.service", type="oneshot")}
    problems = lt.check_unit_set(cyclic, tmp_path / "cyclic")
    assert any("Found ordering cycle" in p for p in problems), problems
    assert any("recovery.service/start deleted to break" in p for p in problems), problems
    fixed = {**cyclic, "recovery.service": RECOVERY.format(after="", type="exec")}
    assert lt.check_unit_set(fixed, tmp_path / "fixed") == []


def test_install_sections_become_wants_and_requires_links() -> None:
    unit = ("[Unit]\nWantedBy=ignored.target\n"
            "[Install]\nWantedBy=a.target b.service\nRequiredBy=c.target\n")
    assert lt.install_targets(unit) == [("wants", "a.target"), ("wants", "b.service"),
                                        ("requires", "c.target")]


VLLM_UNIT = """\
[Service]
ExecStart=/usr/bin/docker run --rm --name vllm \\
  --entrypoint python3 \\
  vllm/vllm-openai:v0.32.0 \\
  -m vllm.entrypoints.openai.api_server \\
  --model Qwen/Qwen2.5-7B-Instruct \\
  --host 0.0.0.0 --port 8000 \\
  --max-model-len 8192{extra}
ExecStop=/usr/bin/docker stop --time 30 vllm
"""


def test_the_vllm_argv_is_what_follows_the_server_module() -> None:
    assert lt.vllm_argv(VLLM_UNIT.format(extra="")) == [
        "--model", "Qwen/Qwen2.5-7B-Instruct", "--host", "0.0.0.0", "--port", "8000",
        "--max-model-len", "8192"]


@pytest.mark.vllm
def test_vllms_own_parser_refuses_a_misspelt_flag() -> None:
    from testkit.local_stack import vllm_python

    if not vllm_python().exists():
        pytest.skip("the vLLM environment is missing; run `bash tools/prepare.sh test`")
    version, problems = lt.check_vllm_args({
        "good": VLLM_UNIT.format(extra=" --enable-prefix-caching"),
        "typo": VLLM_UNIT.format(extra=" --enable-prefix-cashing"),
        "bad value": VLLM_UNIT.format(extra=" --gpu-memory-utilization lots"),
    })
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version)
    assert problems["good"] == []
    assert any("--enable-prefix-cashing" in p for p in problems["typo"]), problems
    assert any("gpu-memory-utilization" in p for p in problems["bad value"]), problems
