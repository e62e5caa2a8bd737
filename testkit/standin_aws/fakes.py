"""Deterministic fake AWS values: ids, ARNs, addresses, and the data sources' answers."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
from typing import Any

ACCOUNT_ID = "123456789012"
PARTITION = "aws"

# terraform-provider-aws resource ids that carry a recognisable AWS prefix.
ID_PREFIXES = {
    "aws_vpc": "vpc-",
    "aws_subnet": "subnet-",
    "aws_internet_gateway": "igw-",
    "aws_route_table": "rtb-",
    "aws_route_table_association": "rtbassoc-",
    "aws_nat_gateway": "nat-",
    "aws_eip": "eipalloc-",
    "aws_eip_association": "eipassoc-",
    "aws_security_group": "sg-",
    "aws_default_security_group": "sg-",
    "aws_vpc_security_group_ingress_rule": "sgr-",
    "aws_vpc_security_group_egress_rule": "sgr-",
    "aws_instance": "i-",
    "aws_ebs_volume": "vol-",
    "aws_flow_log": "fl-",
    "aws_network_interface": "eni-",
    "aws_vpc_endpoint": "vpce-",
    "aws_key_pair": "key-",
    "aws_launch_template": "lt-",
}
# Resources whose id is one of their own arguments.
ID_FROM_ARGUMENT = {
    "aws_iam_role": "name",
    "aws_iam_instance_profile": "name",
    "aws_s3_bucket": "bucket",
    "aws_s3_bucket_public_access_block": "bucket",
    "aws_s3_bucket_server_side_encryption_configuration": "bucket",
    "aws_s3_bucket_versioning": "bucket",
    "aws_s3_bucket_policy": "bucket",
    "aws_s3_bucket_ownership_controls": "bucket",
    "aws_ecr_repository": "name",
    "aws_ecr_lifecycle_policy": "repository",
    "aws_ssm_parameter": "name",
    "aws_cloudwatch_log_group": "name",
    "aws_cloudwatch_metric_alarm": "alarm_name",
    "aws_cloudwatch_dashboard": "dashboard_name",
    "aws_autoscaling_group": "name",
    "aws_autoscaling_policy": "name",
}
# Elastic Load Balancing and ACM: the id is the ARN (see load_balancing_arn).
ARN_IDS = frozenset({"aws_lb", "aws_lb_target_group", "aws_lb_listener", "aws_lb_listener_rule",
                     "aws_acm_certificate"})
# Canonical hosted zone IDs of Application Load Balancers per region (for alias records).
ALB_ZONE_IDS = {"us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2",
                "us-west-2": "Z1H1FL5HABSF5", "eu-west-1": "Z32O12XQLNTSW2",
                "eu-central-1": "Z215JYRZR1TBD5"}
SERVICES = {
    "iam": "iam", "s3": "s3", "ecr": "ecr", "ssm": "ssm", "kms": "kms",
    "cloudwatch": "logs", "route53": "route53", "lambda": "lambda", "sns": "sns",
    "sqs": "sqs",
}


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def service_of(tf_type: str) -> str:
    word = tf_type.removeprefix("aws_").split("_", 1)[0]
    return SERVICES.get(word, "ec2")


def uuid_like(seed: str) -> str:
    return f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}"


def load_balancing_arn(tf_type: str, known: dict[str, Any], seed: str, region: str) -> str:
    """The ARN (and id) of an ALB, target group, listener, listener rule or certificate."""
    prefix = f"arn:{PARTITION}:elasticloadbalancing:{region}:{ACCOUNT_ID}"
    name = known.get("name") or f"tf-{seed[:8]}"
    if tf_type == "aws_lb":
        return f"{prefix}:loadbalancer/app/{name}/{seed[:16]}"
    if tf_type == "aws_lb_target_group":
        return f"{prefix}:targetgroup/{name}/{seed[:16]}"
    if tf_type == "aws_lb_listener":
        parent = str(known.get("load_balancer_arn") or f"{prefix}:loadbalancer/app/lb/0")
        return f"{parent.replace(':loadbalancer/', ':listener/')}/{seed[:16]}"
    if tf_type == "aws_lb_listener_rule":
        parent = str(known.get("listener_arn") or f"{prefix}:listener/app/lb/0/0")
        return f"{parent.replace(':listener/', ':listener-rule/')}/{seed[:16]}"
    return f"arn:{PARTITION}:acm:{region}:{ACCOUNT_ID}:certificate/{uuid_like(seed)}"


def fake_id(tf_type: str, known: dict[str, Any], seed: str, region: str = "us-east-1") -> str:
    if tf_type in ARN_IDS:
        return load_balancing_arn(tf_type, known, seed, region)
    if tf_type == "aws_wafv2_web_acl":
        return uuid_like(seed)
    argument = ID_FROM_ARGUMENT.get(tf_type)
    if argument and isinstance(known.get(argument), str):
        return str(known[argument])
    if tf_type == "aws_kms_key":
        h = seed
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    if tf_type == "aws_route53_record":
        return "_".join(str(known.get(k) or "") for k in ("zone_id", "name", "type"))
    if tf_type in ("aws_iam_role_policy",):
        return f"{known.get('role')}:{known.get('name')}"
    if tf_type == "aws_iam_policy" and isinstance(known.get("name"), str):
        return f"arn:aws:iam::{ACCOUNT_ID}:policy/{known['name']}"
    if tf_type == "aws_sns_topic" and isinstance(known.get("name"), str):
        # The provider's id of a topic (and of a subscription) is its ARN.
        region = known.get("region") or "us-east-1"
        return f"arn:{PARTITION}:sns:{region}:{ACCOUNT_ID}:{known['name']}"
    if tf_type == "aws_sns_topic_subscription" and isinstance(known.get("topic_arn"), str):
        h = seed
        return f"{known['topic_arn']}:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    prefix = ID_PREFIXES.get(tf_type)
    if prefix:
        return prefix + seed[:17]
    if isinstance(known.get("name"), str):
        return str(known["name"])
    return f"{tf_type.removeprefix('aws_').replace('_', '-')}-{seed[:12]}"


def fake_arn(tf_type: str, resource_id: str, region: str, state: dict[str, Any] | None = None
             ) -> str:
    state = state or {}
    if tf_type in ARN_IDS or tf_type in ("aws_sns_topic", "aws_sns_topic_subscription"):
        return resource_id
    if tf_type == "aws_cloudwatch_metric_alarm":
        return f"arn:{PARTITION}:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{resource_id}"
    if tf_type == "aws_autoscaling_group":
        return (f"arn:{PARTITION}:autoscaling:{region}:{ACCOUNT_ID}:autoScalingGroup:"
                f"{uuid_like(digest(resource_id))}:autoScalingGroupName/{resource_id}")
    if tf_type == "aws_autoscaling_policy":
        group = state.get("autoscaling_group_name")
        return (f"arn:{PARTITION}:autoscaling:{region}:{ACCOUNT_ID}:scalingPolicy:"
                f"{uuid_like(digest(resource_id))}:autoScalingGroupName/{group}:"
                f"policyName/{resource_id}")
    if tf_type == "aws_wafv2_web_acl":
        return (f"arn:{PARTITION}:wafv2:{region}:{ACCOUNT_ID}:regional/webacl/"
                f"{state.get('name')}/{resource_id}")
    service = service_of(tf_type)
    kind = tf_type.removeprefix("aws_")
    if service == "iam":
        if resource_id.startswith("arn:"):
            return resource_id
        return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:{kind.removeprefix('iam_')}/{resource_id}"
    if service == "s3":
        return f"arn:{PARTITION}:s3:::{resource_id}"
    if service == "ecr":
        return f"arn:{PARTITION}:ecr:{region}:{ACCOUNT_ID}:repository/{resource_id}"
    if service == "ssm":
        return f"arn:{PARTITION}:ssm:{region}:{ACCOUNT_ID}:parameter/{resource_id.lstrip('/')}"
    if service == "logs":
        return f"arn:{PARTITION}:logs:{region}:{ACCOUNT_ID}:log-group:{resource_id}"
    if service == "kms":
        return f"arn:{PARTITION}:kms:{region}:{ACCOUNT_ID}:key/{resource_id}"
    label = kind.removeprefix("vpc_") if kind != "vpc" else "vpc"
    label = label.replace("_", "-")
    return f"arn:{PARTITION}:{service}:{region}:{ACCOUNT_ID}:{label}/{resource_id}"


def fake_ip(seed: str, public: bool) -> str:
    n = int(seed[:8], 16)
    if public:
        return f"203.0.113.{n % 250 + 2}"
    return f"10.0.{n % 250}.{(n >> 8) % 250 + 4}"


def computed_string(tf_type: str, name: str, state: dict[str, Any], seed: str,
                    region: str) -> str:
    """A plausible value for computed string attribute `name` of a new `tf_type`."""
    resource_id = str(state.get("id") or "")
    if name == "arn":
        return fake_arn(tf_type, resource_id, region, state)
    if name == "arn_suffix" and tf_type in ("aws_lb", "aws_lb_target_group"):
        return resource_id.split(":", 5)[5].removeprefix("loadbalancer/")
    if tf_type == "aws_lb" and name == "dns_name":
        return f"{state.get('name')}-{int(seed[:8], 16) % 10**10}.{region}.elb.amazonaws.com"
    if tf_type == "aws_lb" and name == "zone_id":
        return ALB_ZONE_IDS.get(region, "Z" + seed[:13].upper())
    if name == "dashboard_arn":
        return f"arn:{PARTITION}:cloudwatch::{ACCOUNT_ID}:dashboard/{resource_id}"
    if name in ("owner_id", "registry_id", "account_id"):
        return ACCOUNT_ID
    if name == "region":
        return region
    if name == "repository_url":
        return f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{state.get('name')}"
    if name in ("public_ip", "carrier_ip", "customer_owned_ip"):
        return fake_ip(seed, public=True)
    if name in ("private_ip", "private_ip_address"):
        return fake_ip(seed, public=False)
    if name == "public_dns":
        return f"ec2-{fake_ip(seed, True).replace('.', '-')}.compute-1.amazonaws.com"
    if name == "private_dns":
        return f"ip-{fake_ip(seed, False).replace('.', '-')}.ec2.internal"
    if name == "allocation_id":
        return "eipalloc-" + seed[:17]
    if name == "association_id":
        return "eipassoc-" + seed[:17]
    if name in ("bucket_domain_name",):
        return f"{state.get('bucket')}.s3.amazonaws.com"
    if name == "bucket_regional_domain_name":
        return f"{state.get('bucket')}.s3.{region}.amazonaws.com"
    if name == "hosted_zone_id":
        return "Z3AQBSTGFYJSTF"
    if name == "fqdn":
        return str(state.get("name") or "")
    if name in ("unique_id", "key_id"):
        return "AROA" + seed[:17].upper() if name == "unique_id" else resource_id
    if name == "version_id":
        return seed[:32]
    if name == "etag":
        content = state.get("content")
        if isinstance(content, str):  # S3's ETag of a single-part, SSE-S3 object
            return hashlib.md5(content.encode(), usedforsecurity=False).hexdigest()
        return seed[:32]
    if name == "availability_zone":
        return f"{region}a"
    if name == "create_date":
        return "2026-01-01T00:00:00Z"
    if name in ("name",):
        return f"terraform-{seed[:26]}"
    if name.endswith("_id"):
        return f"{name.removesuffix('_id').replace('_', '-')}-{seed[:17]}"
    return f"{name.replace('_', '-')}-{seed[:12]}"


def computed_collection(tf_type: str, name: str, state: dict[str, Any], seed: str) -> Any:
    """A plausible value for a computed list or set, or None when an empty one will do."""
    if tf_type == "aws_acm_certificate" and name == "domain_validation_options":
        domains = [state.get("domain_name"), *(state.get("subject_alternative_names") or [])]
        return [{"domain_name": domain,
                 "resource_record_name": f"_{digest(seed, domain)[:32]}.{domain}.",
                 "resource_record_type": "CNAME",
                 "resource_record_value":
                     f"_{digest(domain, seed)[:32]}.jkddzztszm.acm-validations.aws."}
                for domain in domains if isinstance(domain, str)]
    return None


def user_data_hash(user_data: str) -> str:
    """What aws_instance stores for user_data: the SHA-1 (hex) of the bytes EC2 runs, i.e.
    of the base64-decoded value when the text is valid base64, else of the text."""
    try:
        raw = base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raw = user_data.encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- data sources

AMI_ID = "ami-0abcdef1234567890"
ZONE_LETTERS = "abcdef"
# Instance types that, like the largest GPU types in real regions, are offered in a few
# availability zones only (by zone letter), or in none of the region; every other type is
# offered in all six. Tests use them to place an instance where the first zone does not
# offer its type, and to see a type the region does not have at all.
SCARCE_OFFERINGS = {"p4d.24xlarge": "bc", "p5.48xlarge": "cd", "u7in-32tb.224xlarge": ""}
# Instance types EC2 offers On-Demand only, never as Spot, as DescribeInstanceTypes reports
# them (SupportedUsageClasses): Mac instances (Dedicated Hosts only) and the High Memory
# U-*.metal types. Every other type answers on-demand and spot.
ON_DEMAND_ONLY_PREFIXES = ("mac", "u-")


def ssm_ami_id(name: str) -> str:
    """The AMI an SSM public parameter names: a different, stable id per parameter (the GPU
    and CPU parameters answer differently, as they do on AWS)."""
    return "ami-" + digest("ssm-ami", name)[:17]


def instance_type_offerings(config: dict[str, Any], region: str) -> dict[str, Any]:
    """aws_ec2_instance_type_offerings: the (type, location) pairs the filters select. The
    instance-type filter is required here (the stand-in has no catalogue of every type)."""
    filters = {f.get("name"): list(f.get("values") or []) for f in config.get("filter") or []}
    location_type = config.get("location_type") or "region"
    types = filters.get("instance-type", [])
    rows: list[tuple[str, str]] = []
    for instance_type in types:
        if any(ch in instance_type for ch in "*?"):
            continue  # wildcards would need the catalogue; exact names only
        letters = SCARCE_OFFERINGS.get(instance_type, ZONE_LETTERS)
        if location_type == "region":
            locations = [region]
        elif location_type == "availability-zone-id":
            locations = [f"use1-az{ZONE_LETTERS.index(x) + 1}" for x in letters]
        else:
            locations = [f"{region}{x}" for x in letters]
        rows += [(instance_type, location) for location in locations]
    wanted = filters.get("location")
    if wanted:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r[1], w) for w in wanted)]
    return {"id": region, "instance_types": [r[0] for r in rows],
            "locations": [r[1] for r in rows], "location_types": [location_type] * len(rows),
            "location_type": location_type}


def data_source_values(tf_type: str, config: dict[str, Any], region: str) -> dict[str, Any]:
    """Fixed, plausible answers for the data sources the modules read."""
    if tf_type == "aws_caller_identity":
        return {"id": ACCOUNT_ID, "account_id": ACCOUNT_ID,
                "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/terraform",
                "user_id": "AIDAEXAMPLEUSERID0000"}
    if tf_type == "aws_partition":
        return {"id": PARTITION, "partition": PARTITION, "dns_suffix": "amazonaws.com",
                "reverse_dns_prefix": "com.amazonaws"}
    if tf_type == "aws_region":
        chosen = config.get("region") or config.get("name") or region
        return {"id": chosen, "name": chosen, "region": chosen,
                "endpoint": f"ec2.{chosen}.amazonaws.com",
                "description": "US East (N. Virginia)" if chosen == "us-east-1" else chosen}
    if tf_type == "aws_availability_zones":
        excluded = set(config.get("exclude_names") or [])
        names = [f"{region}{s}" for s in ZONE_LETTERS if f"{region}{s}" not in excluded]
        return {"id": region, "names": names,
                "zone_ids": [f"use1-az{i + 1}" for i in range(len(names))],
                "group_names": [region], "state": config.get("state") or "available"}
    if tf_type == "aws_ami":
        return {"id": AMI_ID, "image_id": AMI_ID, "architecture": "x86_64",
                "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260101",
                "owner_id": "099720109477", "root_device_name": "/dev/sda1",
                "root_device_type": "ebs", "virtualization_type": "hvm", "state": "available",
                "arn": f"arn:{PARTITION}:ec2:{region}::image/{AMI_ID}",
                "creation_date": "2026-01-01T00:00:00.000Z", "platform_details": "Linux/UNIX",
                "ena_support": True, "image_type": "machine", "public": True}
    if tf_type == "aws_route53_zone":
        name = str(config.get("name") or "example.com").rstrip(".")
        zone_id = config.get("zone_id") or "Z" + digest(name)[:20].upper()
        return {"id": zone_id, "zone_id": zone_id, "name": name,
                "arn": f"arn:{PARTITION}:route53:::hostedzone/{zone_id}",
                "name_servers": [f"ns-{i}.awsdns-0{i}.com" for i in range(1, 5)],
                "private_zone": bool(config.get("private_zone")), "comment": "",
                "resource_record_set_count": 2, "caller_reference": "terraform"}
    if tf_type == "aws_ssm_parameter":
        name = str(config.get("name") or "")
        value = ssm_ami_id(name) if "/ami" in name or "image" in name else f"value-of-{name}"
        return {"id": name, "name": name, "type": "String", "value": value,
                "insecure_value": value, "version": 1,
                "arn": f"arn:{PARTITION}:ssm:{region}:{ACCOUNT_ID}:parameter/{name.lstrip('/')}"}
    if tf_type == "aws_ec2_instance_type":
        instance_type = str(config.get("instance_type") or "")
        gpus = 1 if instance_type.startswith(("g4", "g5", "g6", "p3", "p4", "p5")) else 0
        # NVMe instance store: the "d" types (c5d, m6id, g4dn, p4d) and every g5, g6, p5.
        family = instance_type.split(".")[0]
        storage = "d" in family[2:] or family.startswith(("g5", "g6", "p5"))
        usages = ["on-demand"] if instance_type.startswith(ON_DEMAND_ONLY_PREFIXES) \
            else ["on-demand", "spot"]
        return {"id": instance_type, "instance_type": instance_type, "default_vcpus": 4,
                "memory_size": 16384, "current_generation": True,
                "instance_storage_supported": storage,
                "supported_architectures": ["x86_64"],
                "supported_usages_classes": usages, "supported_root_device_types": ["ebs"],
                "gpus": [{"count": gpus, "manufacturer": "NVIDIA", "memory_size": 24576,
                          "name": "A10G"}] if gpus else []}
    if tf_type == "aws_ec2_instance_type_offerings":
        return instance_type_offerings(config, region)
    if tf_type == "aws_eip":
        seed = digest(tf_type, config)
        return {"id": config.get("id") or "eipalloc-" + seed[:17],
                "public_ip": config.get("public_ip") or fake_ip(seed, True), "domain": "vpc"}
    if tf_type == "aws_iam_policy_document":
        return policy_document(config)
    return {}


def policy_document(config: dict[str, Any]) -> dict[str, Any]:
    """aws_iam_policy_document: the IAM JSON the real data source renders."""
    statements: list[dict[str, Any]] = []
    for source in config.get("source_policy_documents") or []:
        statements.extend(json.loads(source).get("Statement", []))
    for block in config.get("statement") or []:
        statement = _statement(block)
        sid = statement.get("Sid")
        statements = [s for s in statements if not sid or s.get("Sid") != sid]
        statements.append(statement)
    for override in config.get("override_policy_documents") or []:
        for statement in json.loads(override).get("Statement", []):
            sid = statement.get("Sid")
            replaced = False
            for index, existing in enumerate(statements):
                if sid and existing.get("Sid") == sid:
                    statements[index] = statement
                    replaced = True
            if not replaced:
                statements.append(statement)
    document: dict[str, Any] = {"Version": config.get("version") or "2012-10-17"}
    if config.get("policy_id"):
        document["Id"] = config["policy_id"]
    document["Statement"] = statements
    rendered = json.dumps(document, indent=2)
    return {"id": str(int(digest(rendered)[:8], 16)), "json": rendered,
            "minified_json": json.dumps(document, separators=(",", ":")),
            "version": document["Version"]}


def _one_or_many(values: list[str]) -> str | list[str]:
    ordered = sorted(values)
    return ordered[0] if len(ordered) == 1 else ordered


def _statement(block: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {}
    if block.get("sid"):
        statement["Sid"] = block["sid"]
    statement["Effect"] = block.get("effect") or "Allow"
    for key, name in (("actions", "Action"), ("not_actions", "NotAction"),
                      ("resources", "Resource"), ("not_resources", "NotResource")):
        if block.get(key):
            statement[name] = _one_or_many(block[key])
    for key, name in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        principals: dict[str, Any] = {}
        for principal in block.get(key) or []:
            identifiers = sorted(principal.get("identifiers") or [])
            if principal.get("type") == "*" and identifiers == ["*"]:
                principals = {"*": "*"}
                break
            principals[principal["type"]] = _one_or_many(identifiers)
        if principals:
            statement[name] = "*" if principals == {"*": "*"} else principals
    conditions: dict[str, dict[str, Any]] = {}
    for condition in block.get("condition") or []:
        values = list(condition.get("values") or [])
        conditions.setdefault(condition["test"], {})[condition["variable"]] = (
            values[0] if len(values) == 1 else values)
    if conditions:
        statement["Condition"] = conditions
    return statement
