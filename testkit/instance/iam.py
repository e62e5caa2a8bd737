"""IAM for the booted instance: moto checks every AWS call against a role carrying the
policy the apply rendered, so that a permission the boot needs and the policy lacks fails
the boot as it would on AWS.

    identity = iam.setup(moto_url, trust_policy, policy, region)   # before anything else
    identity.harness        # an administrator's keys: the harness, the tests, tools/keys.py
    identity.instance       # the role's session credentials: what IMDS serves
    iam.put_role_policy(moto_url, identity, policy)                # after a new apply

What moto 5.2 evaluates (moto/iam/access_control.py), and so what this proves: each call's
action against the actions of the Allow statements, and for S3 the object's ARN against
their resources. What it does not: resource ARNs of the other services (it matches them
against "*", so a statement scoped to a parameter's ARN would never match), NotResource (a
statement with it applies to everything and permits, even a Deny) and conditions (only
values of trust policies reach it). So the policy given to moto keeps the Allow statements
with their actions, widens non-S3 resources to "*", and leaves the Deny statements out;
those and the resource scoping are pinned by the plan tests (tests/modules/ec2/test_ec2_iam.py).
moto names a CloudWatch call by its endpoint's prefix (`monitoring:PutMetricData`) where AWS
names it `cloudwatch:PutMetricData`, so a `cloudwatch:` action is given to moto under both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import httpx

ROLE = "ec2i-instance-role"
POLICY_NAME = "inference-instance"
HARNESS_USER = "ec2i-harness"
ADMIN_POLICY = {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "session_token": self.session_token}


@dataclass(frozen=True)
class Identity:
    harness: Credentials
    instance: Credentials

    def as_dict(self) -> dict[str, Any]:
        return {"harness": self.harness.as_dict(), "instance": self.instance.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(Credentials(**data["harness"]), Credentials(**data["instance"]))


def as_moto_evaluates(policy: str, without: Sequence[str] = ()) -> str:
    """The rendered policy as moto can evaluate it (module docstring), less the actions
    in `without` (a test's missing permission)."""
    statements = []
    for statement in json.loads(policy)["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        actions = [action for action in actions if action not in without]
        actions += [f"monitoring:{action.split(':', 1)[1]}" for action in actions
                    if action.startswith("cloudwatch:")]
        if not actions:
            continue
        resources = statement.get("Resource", "*")
        if not all(action.startswith("s3:") for action in actions):
            resources = "*"
        statements.append({"Sid": statement.get("Sid", ""), "Effect": "Allow",
                           "Action": actions, "Resource": resources})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def client(moto_url: str, service: str, region: str,
           credentials: Credentials | None = None) -> Any:
    keys = credentials or Credentials("testing", "testing")  # before IAM is on: any keys
    return boto3.client(service, region_name=region, endpoint_url=moto_url,
                        aws_access_key_id=keys.access_key_id,
                        aws_secret_access_key=keys.secret_access_key,
                        aws_session_token=keys.session_token)


def setup(moto_url: str, trust_policy: str, policy: str, region: str,
          without: Sequence[str] = ()) -> Identity:
    """An administrator for the harness, the instance role with `policy` and a session of
    it, then IAM switched on: from here moto refuses a call nobody may make."""
    iam = client(moto_url, "iam", region)
    iam.create_user(UserName=HARNESS_USER)
    iam.put_user_policy(UserName=HARNESS_USER, PolicyName="administrator",
                        PolicyDocument=json.dumps(ADMIN_POLICY))
    key = iam.create_access_key(UserName=HARNESS_USER)["AccessKey"]
    harness = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    role = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust_policy)["Role"]
    iam.put_role_policy(RoleName=ROLE, PolicyName=POLICY_NAME,
                        PolicyDocument=as_moto_evaluates(policy, without))
    # Assumed before IAM is on: moto cannot match a trust policy's Service principal (EC2
    # assumes the role on AWS); its sessions do not expire.
    session = client(moto_url, "sts", region).assume_role(
        RoleArn=role["Arn"], RoleSessionName="i-instance", DurationSeconds=43200)["Credentials"]
    instance = Credentials(session["AccessKeyId"], session["SecretAccessKey"],
                           session["SessionToken"])
    httpx.post(f"{moto_url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
    return Identity(harness, instance)


def put_role_policy(moto_url: str, identity: Identity, policy: str, region: str,
                    without: Sequence[str] = ()) -> None:
    """The role's policy after a new apply."""
    client(moto_url, "iam", region, identity.harness).put_role_policy(
        RoleName=ROLE, PolicyName=POLICY_NAME, PolicyDocument=as_moto_evaluates(policy, without))
