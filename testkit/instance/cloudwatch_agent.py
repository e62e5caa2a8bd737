"""A stand-in for the Amazon CloudWatch agent inside the booted instance (the real agent is
a download from AWS's S3, which this machine cannot reach).

The harness packs this file into a Debian package named `amazon-cloudwatch-agent`
(testkit/instance/aws_front.py `agent_package`) and serves it where the instance's
setup-monitoring.sh downloads the real one, so the shipped install runs unchanged. Inside,
it keeps the real agent's interface and what the deployment relies on:

    amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:<config.json>
    amazon-cloudwatch-agent-ctl -a stop | -a status

`fetch-config` refuses a configuration outside the subset of the agent's schema modelled
here (`validate`, which tools/lint_templates.py also runs on every rendered configuration),
then (re)starts `amazon-cloudwatch-agent.service`, which runs `run`: every file of
`logs.logs_collected.files.collect_list` shipped to its log group and stream (placeholders
`{instance_id}`, `{hostname}`) every 5 s, and every metrics_collection_interval the `mem`
and `disk` measurements as the agent names them (`mem_used_percent`, `disk_used_percent`
with `path` and `fstype`, plus `append_dimensions`), with one aggregate series per
`aggregation_dimensions` entry. CloudWatch is reached through the instance's AWS CLI (moto
in the harness). Not modelled: the agent's own translation to its TOML/YAML, `nvidia_gpu`
(no GPU here: it is logged and skipped), and every plugin and option outside `validate`.

Standard library only: it runs on the instance's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOME = Path("/opt/aws/amazon-cloudwatch-agent")
CONFIG = HOME / "etc" / "amazon-cloudwatch-agent.json"
OFFSETS = HOME / "var" / "offsets.json"
SERVICE = "amazon-cloudwatch-agent.service"
LOG_FLUSH_SECONDS = 5

# The subset of the agent's configuration schema this stand-in models (names from the
# agent's documentation, "Manually create or edit the CloudWatch agent configuration file").
AGENT_KEYS = {"metrics_collection_interval", "region", "omit_hostname", "run_as_user",
              "logfile", "debug"}
METRICS_KEYS = {"namespace", "append_dimensions", "aggregation_dimensions", "metrics_collected",
                "force_flush_interval"}
APPEND_DIMENSIONS = {"ImageId": "${aws:ImageId}", "InstanceId": "${aws:InstanceId}",
                     "InstanceType": "${aws:InstanceType}",
                     "AutoScalingGroupName": "${aws:AutoScalingGroupName}"}
MEASUREMENTS = {
    "mem": {"active", "available", "available_percent", "buffered", "cached", "free",
            "inactive", "total", "used", "used_percent"},
    "disk": {"free", "total", "used", "used_percent", "inodes_free", "inodes_used",
             "inodes_total"},
    "nvidia_gpu": {"utilization_gpu", "utilization_memory", "memory_total", "memory_used",
                   "memory_free", "temperature_gpu", "power_draw", "fan_speed",
                   "pcie_link_gen_current", "pcie_link_width_current",
                   "clocks_current_graphics", "clocks_current_sm", "clocks_current_memory",
                   "clocks_current_video"},
}
PLUGIN_KEYS = {
    "mem": {"measurement", "metrics_collection_interval", "append_dimensions"},
    "disk": {"measurement", "metrics_collection_interval", "resources", "drop_device",
             "ignore_file_system_types", "append_dimensions"},
    "nvidia_gpu": {"measurement", "metrics_collection_interval", "append_dimensions"},
}
FILE_KEYS = {"file_path", "log_group_name", "log_stream_name", "timezone", "retention_in_days",
             "multi_line_start_pattern", "encoding", "timestamp_format", "log_group_class"}
STREAM_PLACEHOLDERS = ("{instance_id}", "{hostname}", "{local_hostname}", "{ip_address}")


class AgentError(RuntimeError):
    """The configuration is outside what the agent accepts (the message lists why)."""


# --- the configuration ------------------------------------------------------------------


def _measurement_name(plugin: str, item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else item
    if not isinstance(name, str):
        return None
    prefix = f"{plugin}_"
    return name[len(prefix):] if name.startswith(prefix) else name


def validate(config: Any) -> list[str]:
    """Problems of an agent configuration, in the subset of its schema modelled here."""
    if not isinstance(config, dict):
        return ["the configuration is not a JSON object"]
    problems = [f"unknown section {key!r}" for key in config if key not in
                ("agent", "metrics", "logs")]
    agent = config.get("agent", {})
    problems += [f"agent: unknown key {key!r}" for key in agent if key not in AGENT_KEYS]
    interval = agent.get("metrics_collection_interval", 60)
    if not isinstance(interval, int) or interval < 1:
        problems.append("agent.metrics_collection_interval must be a whole number of seconds")
    if "metrics" in config:
        problems += _validate_metrics(config["metrics"])
    if "logs" in config:
        problems += _validate_logs(config["logs"])
    if "metrics" not in config and "logs" not in config:
        problems.append("neither metrics nor logs: the agent would do nothing")
    return problems


def _validate_metrics(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict):
        return ["metrics must be an object"]
    problems = [f"metrics: unknown key {key!r}" for key in metrics if key not in METRICS_KEYS]
    namespace = metrics.get("namespace", "CWAgent")
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255 \
            or namespace.startswith("AWS/") or ":" in namespace:
        problems.append(f"metrics.namespace {namespace!r}: 1-255 characters, no colon, "
                        "not AWS/...")
    for key, value in (metrics.get("append_dimensions") or {}).items():
        if key in APPEND_DIMENSIONS and value != APPEND_DIMENSIONS[key]:
            problems.append(f"metrics.append_dimensions.{key} must be {APPEND_DIMENSIONS[key]}")
    for group in metrics.get("aggregation_dimensions") or []:
        if not isinstance(group, list) or not all(isinstance(d, str) for d in group):
            problems.append("metrics.aggregation_dimensions must be lists of dimension names")
    collected = metrics.get("metrics_collected")
    if not isinstance(collected, dict) or not collected:
        return [*problems, "metrics.metrics_collected must name at least one plugin"]
    for plugin, settings in collected.items():
        if plugin not in MEASUREMENTS:
            problems.append(f"metrics_collected.{plugin}: not a plugin this stand-in models")
            continue
        problems += [f"metrics_collected.{plugin}: unknown key {key!r}" for key in settings
                     if key not in PLUGIN_KEYS[plugin]]
        measurement = settings.get("measurement")
        if not isinstance(measurement, list) or not measurement:
            problems.append(f"metrics_collected.{plugin}.measurement must be a non-empty list")
            continue
        for item in measurement:
            if _measurement_name(plugin, item) not in MEASUREMENTS[plugin]:
                problems.append(f"metrics_collected.{plugin}: unknown measurement {item!r}")
    return problems


def _validate_logs(logs: Any) -> list[str]:
    if not isinstance(logs, dict):
        return ["logs must be an object"]
    files = (((logs.get("logs_collected") or {}).get("files") or {}).get("collect_list"))
    if not isinstance(files, list) or not files:
        return ["logs.logs_collected.files.collect_list must list at least one file"]
    problems: list[str] = []
    for index, entry in enumerate(files):
        where = f"collect_list[{index}]"
        problems += [f"{where}: unknown key {key!r}" for key in entry if key not in FILE_KEYS]
        if not str(entry.get("file_path", "")).startswith("/"):
            problems.append(f"{where}.file_path must be an absolute path")
        if not entry.get("log_group_name"):
            problems.append(f"{where}.log_group_name is required")
        stream = str(entry.get("log_stream_name", "{instance_id}"))
        for part in stream.split("{")[1:]:
            if "{" + part.split("}")[0] + "}" not in STREAM_PLACEHOLDERS:
                problems.append(f"{where}.log_stream_name: unknown placeholder in {stream!r}")
        if entry.get("timezone", "UTC") not in ("UTC", "Local"):
            problems.append(f"{where}.timezone must be UTC or Local")
    return problems


# --- the instance -------------------------------------------------------------------------


def imds(path: str) -> str:
    """Instance metadata through IMDSv2 (the hop limit of 1 allows the host)."""
    token_request = urllib.request.Request(
        "http://169.254.169.254/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    with urllib.request.urlopen(token_request, timeout=5) as answer:  # noqa: S310 (http IMDS)
        token = answer.read().decode()
    request = urllib.request.Request(f"http://169.254.169.254/latest/{path}",
                                     headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (http IMDS)
        return str(answer.read().decode())


def aws(*argv: str, region: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aws", *argv, "--region", region], capture_output=True, text=True,
                          check=False)


def log(message: str) -> None:
    print(message, flush=True)


class Shipper:
    """Tails the configured files into their log streams."""

    def __init__(self, files: list[dict[str, Any]], region: str, names: dict[str, str]) -> None:
        self.files = files
        self.region = region
        self.names = names
        self.offsets: dict[str, int] = json.loads(OFFSETS.read_text()) if OFFSETS.exists() else {}
        self.streams: set[tuple[str, str]] = set()

    def stream_of(self, entry: dict[str, Any]) -> str:
        stream = str(entry.get("log_stream_name", "{instance_id}"))
        for placeholder, value in self.names.items():
            stream = stream.replace(placeholder, value)
        return stream

    def ship(self) -> None:
        for entry in self.files:
            path = Path(entry["file_path"])
            if not path.exists():
                continue
            offset = self.offsets.get(str(path), 0)
            size = path.stat().st_size
            if size < offset:  # rotated or truncated
                offset = 0
            if size == offset:
                continue
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            complete = data[:data.rfind(b"\n") + 1]
            if not complete:
                continue
            lines = [line for line in complete.decode(errors="replace").splitlines() if line]
            if lines and self.put(entry["log_group_name"], self.stream_of(entry), lines):
                self.offsets[str(path)] = offset + len(complete)
        OFFSETS.parent.mkdir(parents=True, exist_ok=True)
        OFFSETS.write_text(json.dumps(self.offsets))

    def put(self, group: str, stream: str, lines: list[str]) -> bool:
        if (group, stream) not in self.streams:
            made = aws("logs", "create-log-stream", "--log-group-name", group,
                       "--log-stream-name", stream, region=self.region)
            if made.returncode != 0 and "ResourceAlreadyExists" not in made.stderr:
                log(f"E! create-log-stream {group} {stream}: {made.stderr.strip()}")
                return False
            self.streams.add((group, stream))
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in lines]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(events, file)
            file.flush()
            put = aws("logs", "put-log-events", "--log-group-name", group, "--log-stream-name",
                      stream, "--log-events", f"file://{file.name}", region=self.region)
        if put.returncode != 0:
            log(f"E! put-log-events {group} {stream}: {put.stderr.strip()}")
            return False
        return True


def memory_used_percent() -> float:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = float(value.split()[0])
    return 100 * (info["MemTotal"] - info["MemAvailable"]) / info["MemTotal"]


def disks(ignored: Sequence[str]) -> list[tuple[str, str, float]]:
    """(path, fstype, used percent) of every mounted file system not ignored."""
    found = []
    seen = set()
    for line in Path("/proc/mounts").read_text().splitlines():
        _, path, fstype = line.split()[:3]
        if fstype in ignored or path in seen:
            continue
        try:
            stat = os.statvfs(path)
        except OSError:
            continue
        if stat.f_blocks == 0:
            continue
        seen.add(path)
        used = stat.f_blocks - stat.f_bfree
        found.append((path, fstype, 100 * used / (used + stat.f_bavail)))
    return found


def metric_data(metrics: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """One collection: the agent's metric names and dimensions, plus the aggregates."""
    appended = {key: names.get(value, value) for key, value in
                (metrics.get("append_dimensions") or {}).items()}
    collected = metrics["metrics_collected"]
    samples: list[tuple[str, dict[str, str], float, str]] = []
    if "mem" in collected:
        samples.append(("mem_used_percent", {}, memory_used_percent(), "Percent"))
    if "disk" in collected:
        disk = collected["disk"]
        for path, fstype, percent in disks(disk.get("ignore_file_system_types") or []):
            samples.append(("disk_used_percent", {"path": path, "fstype": fstype}, percent,
                            "Percent"))
    if "nvidia_gpu" in collected:
        log("W! nvidia_gpu: no nvidia-smi on this machine; nothing collected")
    data: list[dict[str, Any]] = []
    for name, own, value, unit in samples:
        dimensions = {**own, **appended}
        data.append({"MetricName": name, "Unit": unit, "Value": value, "Dimensions": [
            {"Name": k, "Value": v} for k, v in sorted(dimensions.items())]})
    for group in metrics.get("aggregation_dimensions") or []:
        by_series: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        for name, own, value, _ in samples:
            dimensions = {**own, **appended}
            if all(key in dimensions for key in group):
                key = (name, tuple((k, dimensions[k]) for k in group))
                by_series.setdefault(key, []).append(value)
        for (name, dims), values in by_series.items():
            data.append({"MetricName": name, "Unit": "Percent",
                         "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                         "StatisticValues": {"SampleCount": len(values), "Sum": sum(values),
                                             "Minimum": min(values), "Maximum": max(values)}})
    return data


def publish(namespace: str, region: str, data: list[dict[str, Any]]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(data, file)
        file.flush()
        put = aws("cloudwatch", "put-metric-data", "--namespace", namespace, "--metric-data",
                  f"file://{file.name}", region=region)
    if put.returncode != 0:
        log(f"E! put-metric-data {namespace}: {put.stderr.strip()}")


def run() -> int:
    config = json.loads(CONFIG.read_text())
    agent = config.get("agent", {})
    region = agent.get("region") or imds("meta-data/placement/region")
    instance_id = imds("meta-data/instance-id")
    names = {"{instance_id}": instance_id, "{hostname}": os.uname().nodename,
             "${aws:InstanceId}": instance_id}
    files = (((config.get("logs") or {}).get("logs_collected") or {}).get("files") or {}
             ).get("collect_list", [])
    shipper = Shipper(files, region, names)
    metrics = config.get("metrics")
    interval = int(agent.get("metrics_collection_interval", 60))
    log(f"I! stand-in agent: {len(files)} file(s), metrics "
        f"{'to ' + metrics.get('namespace', 'CWAgent') if metrics else 'off'}")
    next_collection = 0.0
    while True:
        if files:
            shipper.ship()
        if metrics and time.monotonic() >= next_collection:
            publish(metrics.get("namespace", "CWAgent"), region, metric_data(metrics, names))
            next_collection = time.monotonic() + interval
        time.sleep(LOG_FLUSH_SECONDS)


# --- amazon-cloudwatch-agent-ctl ----------------------------------------------------------


def ctl(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="amazon-cloudwatch-agent-ctl")
    parser.add_argument("-a", dest="action", required=True,
                        choices=["fetch-config", "start", "stop", "status"])
    parser.add_argument("-m", dest="mode", default="ec2", choices=["ec2", "onPremise", "auto"])
    parser.add_argument("-c", dest="config")
    parser.add_argument("-s", dest="start", action="store_true")
    args = parser.parse_args(argv)
    if args.action == "fetch-config":
        if not args.config or not args.config.startswith("file:"):
            parser.error("-c file:<path> is the only configuration source modelled here")
        try:
            config = json.loads(Path(args.config.removeprefix("file:")).read_text())
        except (OSError, ValueError) as error:
            print(f"E! cannot read {args.config}: {error}", file=sys.stderr)
            return 1
        problems = validate(config)
        if problems:
            print("E! Configuration validation first phase failed:\n  "
                  + "\n  ".join(problems), file=sys.stderr)
            return 1
        CONFIG.parent.mkdir(parents=True, exist_ok=True)
        CONFIG.write_text(json.dumps(config))
        if args.start:
            subprocess.run(["systemctl", "enable", SERVICE], check=True)
            subprocess.run(["systemctl", "restart", SERVICE], check=True)
        return 0
    if args.action in ("start", "stop"):
        return subprocess.run(["systemctl", args.action, SERVICE], check=False).returncode
    active = subprocess.run(["systemctl", "is-active", SERVICE], capture_output=True, text=True,
                            check=False).stdout.strip()
    print(json.dumps({"status": "running" if active == "active" else "stopped",
                      "configstatus": "configured" if CONFIG.exists() else "not configured"}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        return run()
    if args[:1] == ["ctl"]:
        return ctl(args[1:])
    print("usage: cloudwatch_agent.py run | ctl <amazon-cloudwatch-agent-ctl arguments>",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
