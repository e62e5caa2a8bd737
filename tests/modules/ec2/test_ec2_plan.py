"""modules/ec2 planned with real Terraform: the security defaults, the rendered instance
scripts (the exact bytes the plan hands to the scripts bucket), every precondition and the
validation of its own knobs (the root module validates what a user sets)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from testkit.proxy_container import HARDENED
from tools.terraform import TerraformError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
MODULE = "modules/ec2"
VLLM_VERSION = (HERE.parents[2] / "modules/ec2/vllm.version").read_text().strip()
UNKNOWN = "(known after apply)"
CASES = ("cpu_no_https", "gpu_https", "ami_lookup", "multi_gpu")


def var_files(case: str) -> list[str]:
    return [str(HERE / "common.tfvars"), str(HERE / f"{case}.tfvars")]


@pytest.fixture(scope="module")
def plans(plan_summary: Any) -> dict[str, Any]:
    return {case: plan_summary(MODULE, tf_var_files=var_files(case)) for case in CASES}


def scripts(plan: Any) -> dict[str, str]:
    return {key.removeprefix("scripts/"): value for key, value in plan.outputs["scripts"].items()}


def location(site: str, pattern: str) -> str:
    """The body of the NGINX location block whose header matches pattern."""
    match = re.search(r"location " + pattern + r"[^{\n]*\{(.*?)\n    \}", site, re.S)
    assert match, f"no location {pattern} in the site"
    return match[1]


# --- security defaults --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_imds_v2_required_with_hop_limit_1(plans: dict[str, Any], case: str) -> None:
    (metadata,) = plans[case].values["aws_instance.this[0]"]["metadata_options"]
    assert metadata["http_tokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1
    assert metadata["http_endpoint"] == "enabled"


@pytest.mark.parametrize("case", CASES)
def test_root_and_data_volumes_are_encrypted(plans: dict[str, Any], case: str) -> None:
    (root,) = plans[case].values["aws_instance.this[0]"]["root_block_device"]
    assert root["encrypted"] is True
    assert plans[case].values["aws_ebs_volume.data[0]"]["encrypted"] is True


@pytest.mark.parametrize("case", CASES)
def test_the_launch_output_carries_what_the_instance_is_launched_with(
        plans: dict[str, Any], case: str) -> None:
    # The autoscaling mode's launch template is built from `launch`: the same defaults.
    launch = plans[case].outputs["launch"]
    instance = plans[case].values["aws_instance.this[0]"]
    (metadata,) = instance["metadata_options"]
    assert launch["metadata_options"] == {k: metadata[k] for k in launch["metadata_options"]}
    (root,) = instance["root_block_device"]
    assert {k: v for k, v in launch["root_volume"].items() if v is not None} == {
        k: root[k] for k in ("volume_type", "volume_size", "encrypted", "delete_on_termination")}
    volume = plans[case].values["aws_ebs_volume.data[0]"]
    assert (launch["data_volume"]["volume_size"], launch["data_volume"]["encrypted"]) == (
        volume["size"], volume["encrypted"])
    assert launch["user_data"] == plans[case].outputs["user_data"]
    assert (launch["ami_id"], launch["instance_type"]) == (instance["ami"],
                                                          instance["instance_type"])


def ingress(plan: Any) -> set[tuple[int, str]]:
    return {
        (values["from_port"], values["cidr_ipv4"])
        for address, values in plan.values.items()
        if address.startswith("aws_vpc_security_group_ingress_rule.")
    }


def test_without_https_only_port_80_is_open(plans: dict[str, Any]) -> None:
    assert ingress(plans["cpu_no_https"]) == {(80, "0.0.0.0/0")}
    assert plans["cpu_no_https"].values["aws_instance.this[0]"].get("key_name") in (None, UNKNOWN)
    assert plans["gpu_https"].values["aws_instance.this[0]"]["key_name"] == "ops"


def test_https_opens_443_and_ssh_only_from_ssh_cidr_blocks(plans: dict[str, Any]) -> None:
    assert ingress(plans["gpu_https"]) == {
        (80, "0.0.0.0/0"),
        (443, "0.0.0.0/0"),
        (22, "198.51.100.7/32"),
    }


def test_the_ami_comes_from_ssm_only_without_an_explicit_ami_id(plans: dict[str, Any]) -> None:
    (read,) = [
        r
        for r in plans["ami_lookup"].raw["prior_state"]["values"]["root_module"]["resources"]
        if r["address"] == "data.aws_ssm_parameter.ami[0]"
    ]
    assert read["values"]["name"] == (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    )
    looked_up = read["values"]["insecure_value"]
    assert plans["ami_lookup"].values["aws_instance.this[0]"]["ami"] == looked_up
    for case in ("cpu_no_https", "gpu_https", "multi_gpu"):
        prior = plans[case].raw.get("prior_state", {}).get("values", {}).get("root_module", {})
        assert not [r for r in prior.get("resources", []) if r["type"] == "aws_ssm_parameter"]
        assert plans[case].values["aws_instance.this[0]"]["ami"] == "ami-0123456789abcdef0"


# --- rendered scripts ---------------------------------------------------------------------


def test_bootstrap_is_small_and_names_no_script_or_setting(plans: dict[str, Any]) -> None:
    """The four cases differ in hardware, HTTPS, timeouts, vLLM arguments and images, and
    share the bucket and instance_version: their bootstrap is one text. So a change of a
    script or setting leaves user_data alone, which EC2 would apply with a stop and a start;
    the instance fetches the change through the bucket's manifest (update.sh)."""
    bootstraps = {case: plans[case].outputs["user_data"] for case in CASES}
    assert len(set(bootstraps.values())) == 1, "the bootstrap varies with the configuration"
    user_data = bootstraps["gpu_https"]
    assert len(user_data.encode()) < 2048
    for rendered in scripts(plans["gpu_https"]).values():
        assert hashlib.sha256(rendered.encode()).hexdigest() not in user_data
    assert "s3://llm-dev-123456789012-us-east-1/scripts/$f" in user_data
    assert "instance-version 1." in user_data
    assert "exec bash $t/update.sh --boot" in user_data


def test_update_units_and_script_ship_with_every_configuration(plans: dict[str, Any]) -> None:
    for case in CASES:
        rendered = scripts(plans[case])
        assert {"update.sh", "inference-update.service", "inference-update.timer"} <= set(rendered)
        assert "bucket=llm-dev-123456789012-us-east-1\nregion=us-east-1\n" in rendered["update.sh"]


def test_nginx_site_carries_the_configured_timeouts_unbuffered(plans: dict[str, Any]) -> None:
    # cpu_no_https.tfvars: default_timeout 60, max_timeout 300; NGINX adds a 30 s margin.
    site = scripts(plans["cpu_no_https"])["nginx-site.conf"]
    generation = location(site, r"~ \^/v1/\(chat/completions\|completions\|responses\)\$")
    assert "proxy_buffering off;" in generation
    assert "proxy_read_timeout 330s;" in generation
    other = location(site, r"~ \^/\(v1/\|tokenize\$")
    assert "proxy_buffering off;" in other
    assert "proxy_read_timeout 90s;" in other
    health = location(site, r"~ \^/\(health\|ready\)\$")
    assert "proxy_read_timeout 10s;" in health
    assert "proxy_ignore_client_abort off;" in site
    assert "listen 80 default_server;" in site
    assert "ssl_certificate" not in site and "Strict-Transport-Security" not in site

    multi = scripts(plans["multi_gpu"])["nginx-site.conf"]  # 120 / 900
    assert "proxy_read_timeout 930s;" in location(multi, r"~ \^/v1/\(chat/completions")
    assert "proxy_read_timeout 150s;" in location(multi, r"~ \^/\(v1/\|tokenize\$")


def test_https_site_is_self_contained_with_hsts(plans: dict[str, Any]) -> None:
    rendered = scripts(plans["gpu_https"])
    site = rendered["nginx-site.conf"]
    assert "listen 443 ssl;" in site
    assert "ssl_certificate /etc/letsencrypt/live/llm.example.com/fullchain.pem;" in site
    assert "ssl_certificate_key /etc/letsencrypt/live/llm.example.com/privkey.pem;" in site
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site
    assert 'Strict-Transport-Security "max-age=63072000; includeSubDomains" always' in site
    assert "return 301 https://$host$request_uri;" in site
    assert not re.search(r"^\s*include ", site, re.M)
    for name in ("setup-certbot.sh", "nginx-acme.conf", "inference-cert-renew.timer"):
        assert name in rendered
        assert name not in scripts(plans["cpu_no_https"])


def test_vllm_unit_runs_the_pinned_image_on_loopback(plans: dict[str, Any]) -> None:
    gpu = scripts(plans["multi_gpu"])["vllm.service"]
    assert "--gpus all" in gpu and "--ipc=host" in gpu
    assert "--publish 127.0.0.1:8000:8000" in gpu
    assert f"vllm/vllm-openai:v{VLLM_VERSION}" in gpu
    assert "--model Qwen/Qwen2.5-32B-Instruct" in gpu
    assert "--tensor-parallel-size 4" in gpu
    assert "--gpu-memory-utilization 0.92" in gpu
    assert "--max-model-len 16384" in gpu
    assert "--volume /opt/models:/models" in gpu

    cpu = scripts(plans["cpu_no_https"])["vllm.service"]
    assert "--gpus" not in cpu and "--tensor-parallel-size" not in cpu
    assert f"public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v{VLLM_VERSION}" in cpu

    https = scripts(plans["gpu_https"])["vllm.service"]
    assert https.rstrip().endswith("WantedBy=multi-user.target")
    assert "--max-model-len 8192 --enable-prefix-caching --max-num-seqs=64\n" in https


def test_proxy_unit_gets_the_timeouts_and_runs_with_the_tested_flags(
        plans: dict[str, Any]) -> None:
    unit = scripts(plans["cpu_no_https"])["inference-proxy.service"]
    # Wants, not Requires: vLLM restarting must not restart (or stop) the proxy, and the
    # proxy does not wait for vLLM to start.
    assert "Requires=docker.service\n" in unit and "Wants=vllm.service" in unit
    assert "wait-for-vllm" not in unit
    assert unit.rstrip().endswith("WantedBy=multi-user.target")
    argv = " ".join(unit.split("ExecStart=", 1)[1].split("\nExecStop", 1)[0]
                    .replace("\\\n", " ").split())
    # Exactly the flags the image is tested with (testkit/proxy_container.py).
    assert " ".join([*HARDENED, "--memory", "256m", "--memory-swap", "256m"]) in argv
    assert ("-v /run/proxy-keys:/run/proxy-keys:ro "
            "-e PROXY_API_KEYS_FILE=/run/proxy-keys/keys.json") in argv
    assert "--env PROXY_AUTH_DISABLED=false" in argv
    assert "--env-file" not in argv and "PROXY_API_KEYS=" not in argv
    for setting in (
        "PROXY_DEFAULT_TIMEOUT=60",
        "PROXY_MAX_TIMEOUT=300",
        "PROXY_UPSTREAM_URL=http://vllm:8000",
        "PROXY_PORT=8080",
        "--publish 127.0.0.1:8080:8080",
    ):
        assert setting in argv
    assert "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm-dev:0123456789abcdef" in argv


@pytest.mark.parametrize("case", CASES)
def test_vllm_runs_without_capabilities_with_limits_and_a_bounded_restart_loop(
        plans: dict[str, Any], case: str) -> None:
    unit = scripts(plans[case])["vllm.service"]
    unit_section = unit.split("[Service]")[0]
    assert "StartLimitIntervalSec=30min" in unit_section
    assert "StartLimitBurst=5" in unit_section
    assert "Restart=always" in unit and "RestartSec=30" in unit
    assert "EnvironmentFile=/etc/inference/container-limits.env" in unit
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--pids-limit 4096",
                 "--memory ${VLLM_MEMORY} --memory-swap ${VLLM_MEMORY}", "--ipc=host"):
        assert flag in unit, flag
    assert "--cap-add" not in unit and "--privileged" not in unit


def test_settings_file_holds_parameter_names_not_secrets(plans: dict[str, Any]) -> None:
    env = scripts(plans["gpu_https"])["inference.env"]
    assert "HF_TOKEN_PARAMETER='/llm-dev/hf_token'" in env
    assert "API_KEYS_PARAMETER='/llm-dev/api_keys'" in env
    assert "DOMAIN_NAME='llm.example.com'" in env
    for line in env.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[A-Z_]+='[^']*'", line), line


def test_api_keys_are_created_without_overwrite_and_never_on_a_command_line(
        plans: dict[str, Any]) -> None:
    secrets = scripts(plans["cpu_no_https"])["setup-secrets.sh"]
    assert '"Overwrite": false' in secrets and "--overwrite" not in secrets
    # The request is a root-only file (mktemp under umask 077), not an argument.
    assert '--cli-input-json "file://$request"' in secrets
    assert "--value" not in secrets
    assert "ParameterNotFound" in scripts(plans["cpu_no_https"])["lib.sh"]


def test_the_key_file_is_refreshed_every_minute_and_at_boot(plans: dict[str, Any]) -> None:
    files = scripts(plans["cpu_no_https"])
    timer = files["inference-keys.timer"]
    assert "OnUnitActiveSec=1min" in timer and "AccuracySec=5s" in timer
    assert "WantedBy=timers.target" in timer
    # At boot the proxy's start pulls a refresh in first (/run/proxy-keys is a tmpfs).
    proxy = files["inference-proxy.service"]
    assert "inference-keys.service" in proxy.split("After=")[1].split("\n")[0]
    assert "inference-keys.service" in proxy.split("Wants=")[1].split("\n")[0]
    refresh = files["refresh-keys.sh"]
    assert 'install -d -m 0750 -o root -g "$proxy_gid" "$dir"' in refresh
    assert 'mv -f "$tmp" "$file"' in refresh  # replaced by a rename, as the contract says
    assert "proxy_gid=10001" in refresh
    services = files["setup-services.sh"]
    for unit in ("inference-keys.timer", "inference-prune.timer"):
        assert unit in services.split("systemctl enable --now")[1].split("\n")[0]


# --- preconditions and validations --------------------------------------------------------

VLLM = {"image": "x/y:v1", "model_id": "a/b", "max_model_len": 8192,
        "gpu_memory_utilization": 0.9, "tensor_parallel_size": 1, "extra_args": [],
        "startup_timeout": 3600}
PROXY = {"port": 8080, "default_timeout": 90, "max_timeout": 600, "max_concurrency": 256,
         "max_body_bytes": 10485760}
HTTPS = {"enabled": True, "domain_name": "llm.example.com", "acme_email": "ops@example.com",
         "acme_server": "https://acme-v02.api.letsencrypt.org/directory"}

# The module's own rules: the cross-variable preconditions on the instance, and its own
# knobs. Single-variable rules of what a user sets are the root's
# (tests/modules/root/test_root_plan.py).
NEGATIVE = {
    "tensor_parallel_exceeds_gpus": (
        "multi_gpu",
        {"instance_type": "g5.xlarge"},
        "exceeds the 1 GPU(s) of g5.xlarge",
    ),
    "tensor_parallel_without_gpu": (
        "cpu_no_https",
        {"vllm": {**VLLM, "tensor_parallel_size": 2}},
        "tensor_parallel_size must be 1 without a GPU",
    ),
    "max_timeout_below_default": (
        "cpu_no_https",
        {"proxy": {**PROXY, "default_timeout": 100, "max_timeout": 50}},
        "max_proxy_timeout must be greater than or equal to default_proxy_timeout",
    ),
    "https_without_domain": (
        "cpu_no_https",
        {"https": {**HTTPS, "domain_name": None}},
        "HTTPS needs a domain name",
    ),
    "https_without_email": (
        "cpu_no_https",
        {"https": {**HTTPS, "acme_email": None}},
        "HTTPS needs acme_email",
    ),
    "bad_watchdog_interval": (
        "cpu_no_https",
        {"watchdog_interval": "often"},
        "watchdog_interval must be a systemd time span",
    ),
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_invalid_configuration_fails_with_its_message(plan_summary: Any, name: str) -> None:
    case, overrides, message = NEGATIVE[name]
    with pytest.raises(TerraformError) as failure:
        plan_summary(MODULE, tf_var_files=var_files(case), **overrides)
    assert message in " ".join(str(failure.value).split()), str(failure.value)


def test_every_input_the_root_passes_is_required_here() -> None:
    # One source of truth: what the root module passes has its default (and validation)
    # at the root only. A default here would be a second one that silently disagrees.
    root = (ROOT / "main.tf").read_text()
    call = re.search(r'module "ec2" \{(.*?)\n\}', root, re.S)
    assert call
    passed = set(re.findall(r"^  ([a-z_]+)\s+=", call[1], re.M)) - {"source"}
    declared = (ROOT / MODULE / "variables.tf").read_text()
    blocks = dict(re.findall(r'variable "([a-z_]+)" \{(.*?)\n\}', declared, re.S))
    assert passed <= set(blocks), passed - set(blocks)
    with_default = {name for name in passed if re.search(r"^  default\s+=", blocks[name], re.M)}
    with_validation = {name for name in passed if "validation {" in blocks[name]}
    optional = {name for name in passed if "optional(" in blocks[name]}
    assert not with_default | with_validation | optional, (
        with_default, with_validation, optional)
