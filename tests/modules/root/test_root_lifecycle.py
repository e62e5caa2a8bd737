"""The whole deployment through a real Terraform lifecycle on tftest (stand-in provider,
which plans replacements from terraform-provider-aws's ForceNew table): apply, the
instance's IAM policy as applied (it is "known after apply" in every plan), an empty second
plan, an instance_version bump with the actions and the order AWS would see, a launch that
fails half way (GPU capacity errors are common) and the documented way back, destroy, and
the readiness gate run by Terraform's local-exec (fails clearly, runs again, then passes)
with a timeout change planned in place. docs/OPERATIONS.md "Replacing the instance" and
"Deploy" describe what these tests pin down."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tftest

from testkit import plans
from testkit.tftest_cases import copy_module, replan_exit_code, state_list, state_resources

HERE = Path(__file__).resolve().parent
VAR_FILES = [str(HERE / "existing_image.tfvars")]
INSTANCE = "module.ec2.aws_instance.this[0]"
ATTACHMENT = "module.ec2.aws_volume_attachment.data[0]"
ASSOCIATION = "module.ec2.aws_eip_association.this[0]"
VERSION = "module.ec2.terraform_data.instance_version[0]"
# What names the instance in modules/monitoring: the status-check and disk alarms, the dashboard.
WATCHERS = [f"module.monitoring.{address}" for address in (
    "aws_cloudwatch_metric_alarm.system_status[0]",
    "aws_cloudwatch_metric_alarm.instance_status[0]",
    "aws_cloudwatch_metric_alarm.disk[0]", "aws_cloudwatch_dashboard.this[0]")]
GATE = "terraform_data.wait_for_ready[0]"
ACCOUNT = "123456789012"  # the stand-in's aws_caller_identity

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    """A copy of the root module and the tftest.TerraformTest that drives it."""

    copy: Path
    test: tftest.TerraformTest

    def state(self) -> dict[str, dict[str, Any]]:
        return state_resources(self.test)

    def plan(self, instance_version: int, var_files: Sequence[str] = VAR_FILES
             ) -> dict[str, Any]:
        """Plan the bump into next.tfplan (applied as it is by apply_events)."""
        with plans.terraform_errors("plan"):
            self.test.execute_command(
                "plan", "-input=false", "-no-color", "-out=next.tfplan",
                *(f"-var-file={f}" for f in var_files), "-var",
                f"instance_version={instance_version}")
            shown = self.test.execute_command("show", "-json", "next.tfplan").out
        return json.loads(shown)  # type: ignore[no-any-return]

    def apply_events(self, **env: str) -> tuple[int, list[tuple[str, str, str]]]:
        """Apply next.tfplan; (exit code, [(event, address, action)] in the order Terraform
        reported them). A failing apply is an outcome here, not an error."""
        saved = self.test.env
        self.test.env = {**saved, **env}
        try:
            done = self.test.execute_command("apply", "-input=false", "-json", "next.tfplan")
            code, output = done.retcode, done.out
        except tftest.TerraformTestError as error:
            # tftest puts the command's stdout in its message, after this prefix.
            code = 1
            output = re.sub(r"^Error running command apply: \d+ ", "", str(error.args[0]))
        finally:
            self.test.env = saved
        events = []
        for line in output.splitlines():
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("type") in ("apply_start", "apply_complete", "apply_errored"):
                hook = message["hook"]
                events.append((message["type"], hook["resource"]["addr"], hook["action"]))
        return code, events

    def apply(self, var_files: Sequence[str], **env: str) -> tuple[int, str]:
        """`terraform apply -auto-approve` with these var files and extra environment;
        (exit code, what Terraform printed). A failing apply is an outcome here."""
        saved = self.test.env
        self.test.env = {**saved, **env}
        try:
            done = self.test.execute_command("apply", "-input=false", "-auto-approve",
                                             "-no-color", *(f"-var-file={f}" for f in var_files))
            return done.retcode, done.out + done.err
        except tftest.TerraformTestError as error:
            return 1, str(error.args[0])
        finally:
            self.test.env = saved

    def destroy(self, instance_version: int) -> None:
        with plans.terraform_errors("destroy"):
            self.test.destroy(tf_var_file=VAR_FILES,
                              tf_vars={"instance_version": instance_version})


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployment]:
    # app/ too: modules/build validates source_dir even when the build is off; tools/ has
    # the readiness gate.
    copy = copy_module(".", tmp_path, extra=["app", "tools"])
    deployment = Deployment(copy, plans.terraform_test(copy))
    with plans.terraform_errors("init"):
        deployment.test.init()
    with plans.terraform_errors("apply"):
        deployment.test.apply(tf_var_file=VAR_FILES)
    yield deployment
    # The test may have destroyed it already, or left it half replaced on purpose.
    with contextlib.suppress(tftest.TerraformTestError):
        deployment.test.destroy(tf_var_file=VAR_FILES)


def changes(plan: dict[str, Any]) -> dict[str, tuple[list[str], str | None]]:
    return {c["address"]: (c["change"]["actions"], c.get("action_reason"))
            for c in plan["resource_changes"] if c["change"]["actions"] != ["no-op"]}


def position(events: list[tuple[str, str, str]], event: str, address: str, action: str) -> int:
    return events.index((event, address, action))


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def check_instance_policy(state: dict[str, dict[str, Any]]) -> None:
    """The applied inline policy, statement by statement: what the boot and Session
    Manager need, on this deployment's own bucket prefix, repository and parameters, and
    no other parameter readable."""
    role = state["module.ec2.aws_iam_role.this"]
    policy = state["module.ec2.aws_iam_role_policy.this"]
    assert policy["role"] == role["id"]
    assert state["module.ec2.aws_iam_instance_profile.this"]["role"] == role["name"]
    assert not [a for a in state if "aws_iam_role_policy_attachment" in a]
    (assume,) = json.loads(role["assume_role_policy"])["Statement"]
    assert (assume["Effect"], as_set(assume["Action"]), assume["Principal"]) == (
        "Allow", {"sts:AssumeRole"}, {"Service": "ec2.amazonaws.com"})

    bucket = state["module.scripts_bucket.aws_s3_bucket.this"]["bucket"]
    repository = state["module.ecr.aws_ecr_repository.this"]["arn"]
    assert bucket == f"llm-dev-{ACCOUNT}-us-east-1"
    assert repository.startswith(f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/llm-dev")
    parameters = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/llm-dev"
    secrets = {f"{parameters}/hf_token", f"{parameters}/api_keys"}
    keys = {f"{parameters}/api_keys"}
    expected: dict[str, tuple[str, set[str], str, set[str]]] = {
        # sid: (effect, actions, "Resource" or "NotResource", ARNs)
        "ReadScripts": ("Allow", {"s3:GetObject"}, "Resource",
                        {f"arn:aws:s3:::{bucket}/scripts/*"}),
        "ListScripts": ("Allow", {"s3:ListBucket"}, "Resource", {f"arn:aws:s3:::{bucket}"}),
        "EcrAuthorization": ("Allow", {"ecr:GetAuthorizationToken"}, "Resource", {"*"}),
        "EcrPull": ("Allow", {"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                              "ecr:GetDownloadUrlForLayer"}, "Resource", {repository}),
        "ReadSecrets": ("Allow", {"ssm:GetParameter"}, "Resource", secrets),
        "FindDataVolume": ("Allow", {"ec2:DescribeVolumes"}, "Resource", {"*"}),
        "CreateApiKeys": ("Allow", {"ssm:PutParameter"}, "Resource", keys),
        "SessionManagerRegister": ("Allow", {"ssm:UpdateInstanceInformation"}, "Resource",
                                   {f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"}),
        "SessionManagerChannels": ("Allow", {
            "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}, "Resource",
            {"*"}),
        "NoOtherParameters": ("Deny", {"ssm:GetParameter", "ssm:GetParameterHistory",
                                       "ssm:GetParameters", "ssm:GetParametersByPath"},
                              "NotResource", secrets),
        "NeverOverwriteApiKeys": ("Deny", {"ssm:PutParameter"}, "Resource", keys),
    }
    conditions = {"ListScripts": {"StringLike": {"s3:prefix": "scripts/*"}},
                  "NeverOverwriteApiKeys": {"StringEquals": {"ssm:Overwrite": "true"}}}
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert list(statements) == list(expected)
    for sid, (effect, actions, kind, arns) in expected.items():
        statement = statements[sid]
        assert statement["Effect"] == effect, sid
        assert as_set(statement["Action"]) == actions, sid
        assert set(statement) - {"Sid", "Effect", "Action", "Condition"} == {kind}, sid
        assert as_set(statement[kind]) == arns, sid
        assert statement.get("Condition") == conditions.get(sid), sid


def test_apply_replan_replace_by_instance_version_destroy(deployed: Deployment) -> None:
    before = deployed.state()
    check_instance_policy(before)
    assert before[ASSOCIATION]["instance_id"] == before[INSTANCE]["id"]
    assert replan_exit_code(deployed.test, VAR_FILES) == 0, "a second plan must be empty"

    bump = changes(deployed.plan(instance_version=2))
    # The new instance is created before the old one goes (create_before_destroy) ...
    assert bump.pop(INSTANCE) == (["create", "delete"], "replace_by_triggers")
    assert bump.pop(VERSION) == (["update"], None)
    # ... but the volume attachment and the address association are replaced delete-first:
    # instance_id forces a new one (ForceNew in the provider), and a volume cannot be
    # attached to two instances at once.
    assert bump.pop(ATTACHMENT) == (["delete", "create"], "replace_because_cannot_update")
    assert bump.pop(ASSOCIATION) == (["delete", "create"], "replace_because_cannot_update")
    # The alarms and the dashboard that name the instance follow the new one, in place.
    for watcher in WATCHERS:
        assert bump.pop(watcher) == (["update"], None), watcher
    # Nothing else changes: not the Elastic IP, not the data volume, not the scripts.
    assert bump == {}

    code, events = deployed.apply_events()
    assert code == 0, events
    done = "apply_complete"
    for mover in (ATTACHMENT, ASSOCIATION):
        # The old one goes (the attachment's delete stops the old instance first) before the
        # new one is made, and the new one needs the new instance ...
        assert position(events, done, mover, "delete") < position(events, "apply_start", mover,
                                                                   "create")
        assert position(events, done, INSTANCE, "create") < position(events, "apply_start",
                                                                      mover, "create")
        # ... and the old instance is terminated last.
        assert position(events, done, mover, "create") < position(events, "apply_start",
                                                                   INSTANCE, "delete")

    after = deployed.state()
    new_instance = after[INSTANCE]
    assert new_instance["id"] != before[INSTANCE]["id"]
    # The address and the model volume survive; both now belong to the new instance.
    assert after["module.ec2.aws_eip.this[0]"]["id"] == before["module.ec2.aws_eip.this[0]"]["id"]
    assert after[ASSOCIATION]["instance_id"] == new_instance["id"]
    volume = "module.ec2.aws_ebs_volume.data[0]"
    assert after[volume]["id"] == before[volume]["id"]
    assert after[ATTACHMENT]["instance_id"] == new_instance["id"]
    for watcher in WATCHERS[:3]:
        assert after[watcher]["dimensions"] == {"InstanceId": new_instance["id"]}, watcher
    check_instance_policy(after)

    deployed.destroy(instance_version=2)
    assert state_list(deployed.test) == []


def test_a_failed_launch_leaves_the_old_instance_detached_and_apply_reattaches_it(
        deployed: Deployment) -> None:
    before = deployed.state()
    deployed.plan(instance_version=2)
    # RunInstances answers InsufficientInstanceCapacity, as it often does for GPU types.
    code, events = deployed.apply_events(EC2I_STANDIN_FAIL_CREATE="aws_instance")
    assert code != 0
    assert ("apply_errored", INSTANCE, "create") in events
    # The detach and the disassociation did not wait for the new instance: the old instance
    # (stopped by the detach) has no data volume and no public address now.
    after = deployed.state()
    assert ATTACHMENT not in after and ASSOCIATION not in after
    assert after[INSTANCE]["id"] == before[INSTANCE]["id"]

    # Documented recovery: the same apply again keeps the old instance (instance_version 2
    # is recorded, so nothing is replaced), updates its user_data (the bootstrap names the
    # version), which the provider does with a stop, a modify and a start, so the stopped
    # instance runs again, and puts the data volume and the Elastic IP back on it. The
    # replacement is retried later with instance_version 3.
    recovery = changes(deployed.plan(instance_version=2))
    assert recovery == {INSTANCE: (["update"], None), ATTACHMENT: (["create"], None),
                        ASSOCIATION: (["create"], None)}
    code, events = deployed.apply_events()
    assert code == 0, events
    restored = deployed.state()
    assert restored[ATTACHMENT]["instance_id"] == before[INSTANCE]["id"]
    assert restored[ASSOCIATION]["instance_id"] == before[INSTANCE]["id"]
    retry = changes(deployed.plan(instance_version=3))
    assert retry[INSTANCE] == (["create", "delete"], "replace_by_triggers")


class Endpoint(ThreadingHTTPServer):
    """Where the gate's requests for http://llm.example.com/ready end up: a forward proxy on
    loopback (http_proxy in Terraform's environment, which local-exec passes on to
    tools/wait_ready.py), answering `status` with the path it was asked for recorded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReadyHandler)
        self.status = 503
        self.asked: list[str] = []


class _ReadyHandler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        # The proxy's answers (docs/API_REFERENCE.md, /ready).
        body = (b'{"status":"ready","models":["m"]}' if self.server.status == 200
                else b'{"status":"not_ready","upstream":"vLLM is loading"}')
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_readiness_gate_fails_with_the_diagnostics_runs_again_and_passes_once_ready(
        deployed: Deployment, endpoint: Endpoint, tmp_path: Path) -> None:
    gate_vars = tmp_path / "gate.tfvars"
    gate_vars.write_text("wait_for_ready = true\nwait_for_ready_timeout = 10\n")
    var_files = [*VAR_FILES, str(gate_vars)]
    proxy = {"http_proxy": f"http://127.0.0.1:{endpoint.server_address[1]}"}
    instance_id = deployed.state()[INSTANCE]["id"]

    # The model is still loading (/ready answers 503): the apply fails after the timeout with
    # the last answer and the commands that show why, and the gate is left tainted.
    code, output = deployed.apply(var_files, **proxy)
    assert code == 1, output
    assert (f"{GATE} (local-exec): waiting for http://llm.example.com/ready to answer 200 "
            "(at most 10 s)") in output
    assert ("did not answer http://llm.example.com/ready with 200 within 10 s "
            '(last: HTTP 503: {"status":"not_ready","upstream":"vLLM is loading"})') in output
    assert (f"check_services: aws ssm start-session --region us-east-1 --target {instance_id} "
            "--document-name AWS-StartInteractiveCommand") in output
    assert "local-exec provisioner error" in output
    assert len(endpoint.asked) >= 2 and set(endpoint.asked) == {"http://llm.example.com/ready"}
    assert changes(deployed.plan(1, var_files)) == {
        GATE: (["delete", "create"], "replace_because_tainted")}

    # The model answers: the next apply runs the gate again and returns once /ready is 200.
    endpoint.status = 200
    code, output = deployed.apply(var_files, **proxy)
    assert code == 0, output
    assert f"{GATE} (local-exec): ready after " in output
    assert "http://llm.example.com/ready answered HTTP 200" in output

    # Done: it does not run again. A timeout change is planned in place: new objects in the
    # bucket (the instance applies them itself, restarting the proxy only), no change of
    # the instance (so no stop), and no new wait.
    assert replan_exit_code(deployed.test, var_files) == 0
    timeout_change = tmp_path / "timeout.tfvars"
    timeout_change.write_text("default_proxy_timeout = 120\n")
    script = "module.scripts_bucket.aws_s3_object.script"
    assert changes(deployed.plan(1, [*var_files, str(timeout_change)])) == {
        f'{script}["scripts/inference-proxy.service"]': (["update"], None),
        f'{script}["scripts/nginx-site.conf"]': (["update"], None),
        "module.scripts_bucket.aws_s3_object.manifest": (["update"], None),
    }
