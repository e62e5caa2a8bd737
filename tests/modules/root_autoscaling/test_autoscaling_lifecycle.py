"""The autoscaling mode through a real Terraform lifecycle on the stand-in provider: apply
wires every piece together (the alias, the certificate's validation record, the listener's
certificate, the WAF association, the group's launch template version, the instance
policy), a second plan is empty, a change of what the instances run is a new launch
template version that the group rolls out in place (nothing is replaced), and destroy
removes everything."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tftest

from testkit import plans
from testkit.tftest_cases import copy_module, replan_exit_code, state_list, state_resources

HERE = Path(__file__).resolve().parent
VAR_FILES = [str(HERE / "autoscaling_https_waf.tfvars"), str(HERE / "no_readiness_gate.tfvars")]
LB = "module.load_balancer[0]"
TEMPLATE = "module.autoscaling[0].aws_launch_template.this"
GROUP = "module.autoscaling[0].aws_autoscaling_group.this"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tftest.TerraformTest]:
    copy = copy_module(".", tmp_path_factory.mktemp("autoscaling"), extra=["app"])
    test = plans.terraform_test(copy)
    with plans.terraform_errors("init"):
        test.init()
    with plans.terraform_errors("apply"):
        test.apply(tf_var_file=VAR_FILES)
    yield test
    with contextlib.suppress(tftest.TerraformTestError):
        test.destroy(tf_var_file=VAR_FILES)


def test_apply_wires_every_piece_and_replans_empty(deployed: tftest.TerraformTest) -> None:
    state = state_resources(deployed)
    alb = state[f"{LB}.aws_lb.this"]
    alias = state["module.route53[0].aws_route53_record.this"]["alias"]
    assert alias == [{"name": alb["dns_name"], "zone_id": alb["zone_id"],
                      "evaluate_target_health": True}]
    certificate = state[f"{LB}.aws_acm_certificate.this"]
    (option,) = certificate["domain_validation_options"]
    record = state[f'{LB}.aws_route53_record.validation["llm.example.com"]']
    assert (record["name"], record["type"], record["records"]) == (
        option["resource_record_name"], "CNAME", [option["resource_record_value"]])
    assert state[f"{LB}.aws_acm_certificate_validation.this"]["validation_record_fqdns"] == [
        record["fqdn"]]
    assert state[f"{LB}.aws_lb_listener.https"]["certificate_arn"] == certificate["arn"]
    assert state["module.waf[0].aws_wafv2_web_acl_association.this"]["resource_arn"] == alb["arn"]
    template = state[TEMPLATE]
    (version,) = state[GROUP]["launch_template"]
    assert (version["id"], version["version"]) == (template["id"], str(template["latest_version"]))
    (profile,) = template["iam_instance_profile"]
    assert profile["arn"] == state["module.ec2.aws_iam_instance_profile.this"]["arn"]
    assert replan_exit_code(deployed, VAR_FILES) == 0, "a second plan must be empty"


def test_instances_publish_metrics_only_through_the_monitoring_policy(
        deployed: tftest.TerraformTest) -> None:
    resources = state_resources(deployed)
    policy = json.loads(resources["module.ec2.aws_iam_role_policy.this"]["policy"])
    # The instance mode's policy (tests/modules/root/test_root_lifecycle.py), no metrics in it.
    assert [s["Sid"] for s in policy["Statement"]] == [
        "ReadScripts", "ListScripts", "EcrAuthorization", "EcrPull", "ReadSecrets",
        "FindDataVolume", "CreateApiKeys", "SessionManagerRegister", "SessionManagerChannels",
        "NoOtherParameters", "NeverOverwriteApiKeys"]
    monitoring = json.loads(
        resources["module.monitoring.aws_iam_role_policy.instance[0]"]["policy"])
    statements = {s["Sid"]: s for s in monitoring["Statement"]}
    assert list(statements) == ["WriteDeploymentLogs", "PublishDeploymentMetrics",
                                "ReadInstanceTags"]
    publish = statements["PublishDeploymentMetrics"]
    assert (publish["Action"], publish["Resource"]) == ("cloudwatch:PutMetricData", "*")
    assert publish["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "ec2-inference/llm-dev"}}
    assert (statements["ReadInstanceTags"]["Action"],
            statements["ReadInstanceTags"]["Resource"]) == ("ec2:DescribeTags", "*")


def test_a_new_model_is_a_rolling_update_and_destroy_removes_everything(
        deployed: tftest.TerraformTest) -> None:
    before = state_resources(deployed)
    with plans.terraform_errors("plan"):
        deployed.execute_command(
            "plan", "-input=false", "-no-color", "-out=update.tfplan",
            *(f"-var-file={f}" for f in VAR_FILES), "-var", "model_id=Qwen/Qwen2.5-14B-Instruct")
        plan: dict[str, Any] = json.loads(
            deployed.execute_command("show", "-json", "update.tfplan").out)
    changed = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]
               if c["change"]["actions"] != ["no-op"]}
    # New scripts (uploaded) and manifest, whose digest is in the launch template's user
    # data: a new version, which the group rolls out (instance refresh); nothing is replaced.
    assert changed.pop(TEMPLATE) == ["update"]
    assert changed.pop(GROUP) == ["update"]
    # The rest: the rendered files that name the model, uploaded again in place.
    assert changed == {f'module.scripts_bucket.aws_s3_object.script["scripts/{name}"]': ["update"]
                       for name in ("inference.env", "vllm.service")} | {
                           "module.scripts_bucket.aws_s3_object.manifest": ["update"]}, changed
    with plans.terraform_errors("apply"):
        deployed.execute_command("apply", "-input=false", "-no-color", "update.tfplan")

    after = state_resources(deployed)
    assert after[TEMPLATE]["id"] == before[TEMPLATE]["id"]
    assert after[TEMPLATE]["latest_version"] == before[TEMPLATE]["latest_version"] + 1
    (version,) = after[GROUP]["launch_template"]
    assert version["version"] == str(after[TEMPLATE]["latest_version"])
    assert after[GROUP]["arn"] == before[GROUP]["arn"], "the group itself stays"
    bootstrap = base64.b64decode(after[TEMPLATE]["user_data"]).decode()
    assert bootstrap != base64.b64decode(before[TEMPLATE]["user_data"]).decode()

    with plans.terraform_errors("destroy"):
        deployed.destroy(tf_var_file=VAR_FILES,
                         tf_vars={"model_id": "Qwen/Qwen2.5-14B-Instruct"})
    assert state_list(deployed) == []
