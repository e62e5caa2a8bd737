"""One booted instance: up, exec, reboot, replace, down (tools/instance_sim.py is the CLI).

    instance = Instance.create(state_dir, case="cpu")   # or "https"
    instance.up()                 # apply, wire, boot; returns once /ready answers via NGINX
    instance.exec("systemctl", "--failed")
    instance.reboot(); instance.replace(); instance.down()

What `up` does, in order (every step is recorded in `state.json` before the next, so that
`down` removes exactly what was started, also after a failure or from another process):

1. the proxy and vLLM images in the registry storage (testkit/instance/images.py);
2. `terraform apply` of a copy of the root module on the stand-in provider
   (testkit/render.py `Deployment`): the scripts are the state's `aws_s3_object` contents,
   the bootstrap is the root output `user_data`;
3. a sidecar container that owns the network namespace, a veth pair, DNAT rules
   (testkit/instance/network.py), and the services in that namespace
   (testkit/instance/services.py);
4. moto: IAM first (testkit/instance/iam.py: the instance role with the applied policy,
   an administrator for the harness, then every call checked), the scripts bucket with the
   applied objects, an EC2 instance and the data volume attached to it at /dev/sdf (the
   scripts ask EC2 which volume that is);
5. the data volume: a sparse file on a loop device, given to the container under the
   host's name for it (blkid finds labels by scanning /proc/partitions) and linked as
   EBS links it on Nitro: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id>;
6. the instance: the Debian 12 image with systemd as PID 1, the NoCloud seed holding the
   bootstrap as user-data, root's AWS config pointing the CLI at moto, /etc/hosts naming
   the registries, and /var/lib/docker on a host directory (overlay2 works there).

"Reboot" stops the container (SIGRTMIN+3: systemd's clean halt) and starts it again with
its disks; "replace" starts a new container (new root disk, new EC2 instance id) on the same
data volume. The shipped scripts run unmodified; everything above is configuration of the
simulated machine and its surroundings.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from testkit import render
from testkit.instance import aws_front, iam, network, services
from testkit.instance import images as instance_images
from testkit.locks import host_lock
from testkit.processes import Service, stop_process_group

REGION = "us-east-1"
AVAILABILITY_ZONE = f"{REGION}a"
ECR_HOST = f"{services.MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
DOMAIN = "sim.test"
SUBDOMAIN = "llm"
ROLE = iam.ROLE
DATA_VOLUME_BYTES = 4 * 1024**3
READY_TIMEOUT = 600.0
LABEL = "org.ec2-inference.instance"
CASES = ("cpu", "https", "autoscaling")
# The autoscaling case's S3 model cache (model_cache_bucket), filled in moto before the boot.
MODEL_CACHE_BUCKET = "ec2i-sim-models"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TRUST_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SHUTDOWN_LOG = "/var/log/ec2i-shutdown-calls.log"


class InstanceError(RuntimeError):
    """The simulated instance could not be started or did not become ready."""


@dataclass
class State:
    """Everything `up` started, by id, so that `down` can remove exactly that."""

    name: str
    case: str
    directory: str
    tfvars: dict[str, Any] = field(default_factory=dict)
    octet: int | None = None
    host_veth: str | None = None
    sidecar: str | None = None
    sidecar_pid: int | None = None
    services: dict[str, int] = field(default_factory=dict)
    loop_device: str | None = None
    containers: list[str] = field(default_factory=list)  # every instance container, in order
    ec2_instance_id: str | None = None
    volume_id: str | None = None
    generation: int = 0
    started_at: float | None = None  # wall clock of the current container's (re)start
    ready_seconds: list[float] = field(default_factory=list)  # start -> /ready, per boot
    converged_seconds: list[float] = field(default_factory=list)  # start -> main-setup done
    identity: dict[str, Any] | None = None  # testkit/instance/iam.py: who may call moto
    missing_permissions: list[str] = field(default_factory=list)  # left out of the role


class Instance:
    def __init__(self, state: State) -> None:
        self.state = state
        self.dir = Path(state.directory)
        self._docker: docker.DockerClient | None = None
        self._deployment: render.Deployment | None = None
        self.applied: render.Applied | None = None
        # Services this process started (reaped in down(); another process's `down` stops
        # them by PID from the state).
        self._services: list[Service] = []

    # --- state -----------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, case: str = "cpu", name: str | None = None) -> Instance:
        if case not in CASES:
            raise InstanceError(f"unknown case {case!r}; choose one of {', '.join(CASES)}")
        directory.mkdir(parents=True, exist_ok=True)
        name = name or f"ec2i-sim-{secrets.token_hex(3)}"
        instance = cls(State(name=name, case=case, directory=str(directory.resolve())))
        instance.save()
        return instance

    @classmethod
    def load(cls, directory: Path) -> Instance:
        data = json.loads((directory / "state.json").read_text())
        return cls(State(**data))

    def save(self) -> None:
        path = self.dir / "state.json"
        path.write_text(json.dumps(asdict(self.state), indent=2))

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker.from_env()
        return self._docker

    @property
    def addresses(self) -> network.Addresses:
        if self.state.octet is None:
            raise InstanceError("the instance has no network yet")
        return network.Addresses(self.state.octet)

    @property
    def container(self) -> str:
        if not self.state.containers:
            raise InstanceError("no instance container was started")
        return self.state.containers[-1]

    # --- Terraform -------------------------------------------------------------------

    def base_tfvars(self, image_tags: instance_images.Images) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": "llm",
            "environment": "sim",
            "region": REGION,
            "ami_id": render.AMI_ID,
            "use_gpu": False,
            # Clients come from the harness's own network only (plain HTTP stays local).
            "allowed_cidr_blocks": [f"{network.SUBNET_PREFIX}.0.0/16"],
            "image_uri": f"{ECR_HOST}/{instance_images.PROXY_REPOSITORY}:{image_tags.proxy_tag}",
            "vllm_cpu_image": f"{services.PUBLIC_REGISTRY_HOST}/"
                              f"{instance_images.VLLM_REPOSITORY}:{image_tags.vllm_tag}",
            # The harness waits for /ready itself (the gate's address is the stand-in's EIP).
            "wait_for_ready": False,
        }
        if self.state.case == "https":
            values |= {
                "domain_name": DOMAIN,
                "subdomain": SUBDOMAIN,
                "create_route53_records": False,
                "enable_https": True,
                "acme_email": f"ops@{DOMAIN}",
                "acme_server": f"https://127.0.0.1:{services.ACME_PORT}/dir",
                # Logs stay on the instance (Docker's local driver, rotated): the CPU case
                # sends them to CloudWatch, this one proves the other path.
                "enable_cloudwatch_logs": False,
            }
        if self.state.case == "autoscaling":
            # One instance of the group, booted behind nothing: the test client plays the
            # load balancer (plain HTTP to NGINX on port 80, as the target group does).
            values |= {
                "deployment_mode": "autoscaling",
                "domain_name": DOMAIN,
                "subdomain": SUBDOMAIN,
                "route53_zone_id": "Z0SIMULATED000000000",
                "create_route53_records": False,
                "model_cache_bucket": MODEL_CACHE_BUCKET,
            }
        return values

    @property
    def deployment(self) -> render.Deployment:
        if self._deployment is None:
            (self.dir / "terraform").mkdir(parents=True, exist_ok=True)
            self._deployment = render.Deployment(self.dir / "terraform")
        return self._deployment

    def apply(self, **changes: Any) -> render.Applied:
        """`terraform apply` with the instance's variables plus `changes`; the new scripts
        go to the bucket and the new user_data to IMDS, as the provider and S3 would have
        them (the running instance sees them at its next boot)."""
        self.state.tfvars.update(changes)
        self.save()
        self.applied = self.deployment.apply(self.state.tfvars)
        self._save_applied()
        if self.state.identity:
            _trust, policy = self.role_policies()
            iam.put_role_policy(self.moto_url, iam.Identity.from_dict(self.state.identity),
                                policy, REGION, self.state.missing_permissions)
        if self.state.sidecar:
            self.mirror_log_group()
            self.upload_scripts()
            self.write_metadata()
        return self.applied

    def files(self) -> render.Applied:
        """What the last apply left behind (applied now if nothing was applied yet)."""
        saved = self.dir / "applied.json"
        if self.applied is None and saved.exists():
            data = json.loads(saved.read_text())
            self.applied = render.Applied(data["files"], data["outputs"], data["resources"])
        if self.applied is None:
            self.applied = self.deployment.apply(self.state.tfvars)
            self._save_applied()
        return self.applied

    def _save_applied(self) -> None:
        assert self.applied is not None
        # Of the state's resources, the instance role and its policies (for moto's IAM).
        roles = {address: values for address, values in self.applied.resources.items()
                 if address.split(".")[-2] in ("aws_iam_role", "aws_iam_role_policy")}
        (self.dir / "applied.json").write_text(json.dumps(
            {"files": self.applied.files, "outputs": self.applied.outputs, "resources": roles}))

    def role_policies(self) -> tuple[str, str]:
        """(trust policy, permissions) of the instance role the apply made: every inline
        policy of the role EC2 may assume, merged into one document."""
        resources = self.files().resources
        roles = [values for address, values in resources.items()
                 if address.split(".")[-2] == "aws_iam_role"
                 and "ec2.amazonaws.com" in values["assume_role_policy"]]
        if len(roles) != 1:
            raise InstanceError(f"expected one instance role in the apply, found {len(roles)}")
        role = roles[0]
        statements = [statement for address, values in resources.items()
                      if address.split(".")[-2] == "aws_iam_role_policy"
                      and values["role"] in (role["name"], role["id"])
                      for statement in json.loads(values["policy"])["Statement"]]
        return role["assume_role_policy"], json.dumps(
            {"Version": "2012-10-17", "Statement": statements})

    # --- AWS, locally ----------------------------------------------------------------

    @property
    def moto_url(self) -> str:
        return f"http://{self.addresses.instance}:{services.MOTO_PORT}"

    def aws(self, service: str) -> Any:
        """A client of this instance's AWS (moto) with the harness's administrator keys."""
        keys = iam.Identity.from_dict(self.state.identity).harness if self.state.identity \
            else None
        return iam.client(self.moto_url, service, REGION, keys)

    def setup_iam(self) -> None:
        """The instance role with the applied policy; from here moto checks every call."""
        trust, policy = self.role_policies()
        self.state.identity = iam.setup(self.moto_url, trust, policy, REGION,
                                        self.state.missing_permissions).as_dict()
        self.save()

    def upload_scripts(self) -> None:
        applied = self.files()
        s3 = self.aws("s3")
        bucket = applied.outputs["scripts_bucket"]
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        # The manifest last, as Terraform uploads it (depends_on): an instance that sees it
        # finds every file it names.
        names = sorted((n for n in applied.files if n != render.BOOTSTRAP),
                       key=lambda n: n == render.MANIFEST)
        for name in names:
            s3.put_object(Bucket=bucket, Key=f"scripts/{name}",
                          Body=applied.files[name].encode())

    def mirror_log_group(self) -> None:
        """The log group Terraform created (root output log_group_name), in moto."""
        name = self.files().outputs.get("log_group_name")
        if not name:
            return
        logs = self.aws("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=name)

    def fill_model_cache(self) -> None:
        """The autoscaling case's model_cache_bucket: the model's files under <model id>/,
        as a user uploads them once (docs/OPERATIONS.md)."""
        model = self.files().files["inference.env"].split("MODEL_ID='")[1].split("'")[0]
        s3 = self.aws("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=MODEL_CACHE_BUCKET)
        for name, body in (("config.json", json.dumps({"model_type": "simulated"})),
                           ("model.safetensors", "simulated weights\n")):
            s3.put_object(Bucket=MODEL_CACHE_BUCKET, Key=f"{model}/{name}", Body=body.encode())

    def delete_scripts(self) -> None:
        s3 = self.aws("s3")
        bucket = self.files().outputs["scripts_bucket"]
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])

    def launch_ec2_instance(self) -> None:
        """An EC2 instance in moto with the data volume attached at /dev/sdf (made once)."""
        ec2 = self.aws("ec2")
        old = self.state.ec2_instance_id
        if old:
            # As the replacement does on AWS: the volume leaves the old instance, which goes.
            if self.state.volume_id:
                ec2.detach_volume(VolumeId=self.state.volume_id, InstanceId=old,
                                  Device="/dev/sdf")
            ec2.terminate_instances(InstanceIds=[old])
        reservation = ec2.run_instances(ImageId=render.AMI_ID, MinCount=1, MaxCount=1,
                                        InstanceType="m7i.xlarge",
                                        Placement={"AvailabilityZone": AVAILABILITY_ZONE})
        self.state.ec2_instance_id = reservation["Instances"][0]["InstanceId"]
        if self.state.volume_id is None:
            volume = ec2.create_volume(Size=4, AvailabilityZone=AVAILABILITY_ZONE,
                                       VolumeType="gp3", Encrypted=True)
            self.state.volume_id = volume["VolumeId"]
        ec2.attach_volume(VolumeId=self.state.volume_id, InstanceId=self.state.ec2_instance_id,
                          Device="/dev/sdf")
        self.save()

    def write_metadata(self) -> None:
        root = self.dir / "imds"
        root.mkdir(parents=True, exist_ok=True)
        (root / "user-data").write_text(self.files().files[render.BOOTSTRAP])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))
        if self.state.identity is None:
            raise InstanceError("the instance role has no credentials yet (setup_iam)")
        role = iam.Identity.from_dict(self.state.identity).instance
        metadata = {
            "instance-id": self.state.ec2_instance_id,
            "instance-type": "m7i.xlarge",
            "ami-id": render.AMI_ID,
            "local-ipv4": self.addresses.instance,
            # The Elastic IP of the real instance; here the namespace's own address, so
            # that DNS, NGINX and the ACME validation all meet on it.
            "public-ipv4": self.addresses.instance,
            "placement/availability-zone": AVAILABILITY_ZONE,
            "placement/region": REGION,
            "iam/info": {"Code": "Success", "InstanceProfileArn":
                         f"arn:aws:iam::{services.MOTO_ACCOUNT}:instance-profile/{ROLE}"},
            f"iam/security-credentials/{ROLE}": {
                "Code": "Success", "LastUpdated": now, "Type": "AWS-HMAC",
                "AccessKeyId": role.access_key_id, "SecretAccessKey": role.secret_access_key,
                "Token": role.session_token, "Expiration": expires,
            },
        }
        (root / "meta-data.json").write_text(json.dumps(metadata))

    def aws_env(self) -> dict[str, str]:
        """Environment for a tool run on the host against this instance's AWS (moto), e.g.
        `python tools/keys.py` as an operator runs it."""
        if self.state.identity is None:
            raise InstanceError("moto has no harness credentials yet (setup_iam)")
        keys = iam.Identity.from_dict(self.state.identity).harness
        return {**os.environ, "AWS_ENDPOINT_URL": self.moto_url, "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": keys.access_key_id,
                "AWS_SECRET_ACCESS_KEY": keys.secret_access_key}

    def api_keys_parameter(self) -> str:
        """The SSM parameter of the API keys (from the root output `api_key_command`)."""
        command: str = self.files().outputs["api_key_command"]
        return command.split("--name ")[1].split()[0]

    def api_keys(self) -> list[str]:
        """The keys in the parameter: a comma list (what a first boot creates) or a JSON
        key set (what tools/keys.py writes), in their order."""
        value = self.aws("ssm").get_parameter(Name=self.api_keys_parameter(),
                                              WithDecryption=True)["Parameter"]["Value"]
        if value.lstrip().startswith("{"):
            return [entry["key"] for entry in json.loads(value)["keys"]]
        return [key.strip() for key in value.split(",") if key.strip()]

    # --- the namespace and its services ----------------------------------------------

    def start_network(self) -> None:
        instance_images.check_instance_image(self.docker)
        sidecar = self.docker.containers.run(
            instance_images.INSTANCE_IMAGE, ["sleep", "infinity"], detach=True,
            name=f"{self.state.name}-net", network_mode="none",
            hostname=f"ip-{self.state.name}", labels={LABEL: self.state.name})
        self.state.sidecar = sidecar.id
        self.save()
        sidecar.reload()
        self.state.sidecar_pid = int(sidecar.attrs["State"]["Pid"])
        # Another process may be choosing a subnet at the same time: choose and take it
        # (the host side's address) under the machine's lock.
        with host_lock("instance-network"):
            addresses = network.free_addresses()
            self.state.octet = addresses.octet
            self.state.host_veth = f"ec2i{addresses.octet}{secrets.token_hex(2)}"
            self.save()
            network.wire(self.state.sidecar_pid, self.state.host_veth, addresses)
        pid = self.state.sidecar_pid
        network.dnat(pid, network.IMDS_ADDRESS, 80, services.IMDS_PORT)
        network.dnat(pid, addresses.registry(0), 443, services.ECR_REGISTRY_PORT)
        network.dnat(pid, addresses.registry(1), 443, services.PUBLIC_REGISTRY_PORT)
        network.dnat(pid, addresses.registry(2), 443, services.AWS_FRONT_PORT)

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        assert self.state.sidecar_pid is not None
        started = services.start_in_namespace(self.state.sidecar_pid, name, argv,
                                              self.dir / "logs", env)
        self._services.append(started)
        self.state.services[name] = started.pid
        self.save()

    def start_services(self) -> None:
        python = sys.executable
        tls = services.issue_certificate(self.dir / "tls", "registries",
                                         dns_names=[ECR_HOST, services.PUBLIC_REGISTRY_HOST])
        # All addresses of the instance's namespace: the tests reach moto through the veth.
        self._start("moto", [python, "-m", "moto.server", "-H", "0.0.0.0",  # noqa: S104
                             "-p", str(services.MOTO_PORT)])
        self._start("imds", [python, "-m", "testkit.instance.imds", "--listen",
                             f"127.0.0.1:{services.IMDS_PORT}", "--root", str(self.dir / "imds")])
        ecr = services.registry_config(self.dir / "registry-ecr",
                                       f"127.0.0.1:{services.ECR_REGISTRY_PORT}", tls,
                                       {"AWS": services.ECR_PASSWORD})
        public = services.registry_config(self.dir / "registry-public",
                                          f"127.0.0.1:{services.PUBLIC_REGISTRY_PORT}", tls)
        front = services.issue_certificate(self.dir / "tls", "aws-front", dns_names=[
            aws_front.logs_host(REGION), aws_front.agent_host(REGION)])
        downloads = self.dir / "downloads"
        aws_front.agent_package(downloads)
        self._start("aws-front", [python, "-m", "testkit.instance.aws_front", "--listen",
                                  f"127.0.0.1:{services.AWS_FRONT_PORT}", "--cert", str(front[0]),
                                  "--key", str(front[1]),
                                  "--moto", f"127.0.0.1:{services.MOTO_PORT}",
                                  "--downloads", str(downloads)])
        self._start("registry-ecr", ["docker-registry", "serve", str(ecr)])
        self._start("registry-public", ["docker-registry", "serve", str(public)])
        if self.state.case == "https":
            listener = services.issue_certificate(self.dir / "tls", "pebble",
                                                  dns_names=["localhost"],
                                                  ip_addresses=["127.0.0.1",
                                                                self.addresses.instance])
            self._start("challtestsrv", [
                "pebble-challtestsrv", "-defaultIPv4", self.addresses.instance,
                "-defaultIPv6", "", "-dns01", "127.0.0.1:53",
                "-management", f"127.0.0.1:{services.CHALLTESTSRV_MANAGEMENT_PORT}",
                "-http01", "", "-https01", "", "-tlsalpn01", ""])
            config = services.pebble_config(self.dir / "tls", listener)
            self._start("pebble", ["pebble", "-config", str(config), "-dnsserver",
                                   "127.0.0.1:53"], env=services.PEBBLE_ENV)
        self._wait_http(f"{self.moto_url}/moto-api/", "moto")

    def _wait_http(self, url: str, what: str, timeout: float = 30,
                   verify: ssl.SSLContext | bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=2, verify=verify)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise InstanceError(f"{what} did not answer on {url} within {timeout:.0f} s; "
                            f"see {self.dir / 'logs'}")

    # --- the data volume -------------------------------------------------------------

    def attach_loop_device(self) -> None:
        backing = self.dir / "data-volume.img"
        if not backing.exists():
            with backing.open("wb") as file:
                file.truncate(DATA_VOLUME_BYTES)
        device = network.run(["losetup", "--find", "--show", str(backing)]).stdout.strip()
        self.state.loop_device = device
        self.save()

    def ebs_link(self) -> str:
        assert self.state.volume_id is not None
        return ("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
                + self.state.volume_id.replace("-", ""))

    def grow_data_volume(self, size_bytes: int) -> None:
        """What `aws ec2 modify-volume --size` does: the volume (and moto's record of it)
        grows in place; the instance sees the larger device at once."""
        assert self.state.loop_device is not None and self.state.volume_id is not None
        with (self.dir / "data-volume.img").open("r+b") as file:
            file.truncate(size_bytes)
        network.run(["losetup", "--set-capacity", self.state.loop_device])
        self.aws("ec2").modify_volume(VolumeId=self.state.volume_id,
                                      Size=size_bytes // 1024**3)

    # --- the instance container ------------------------------------------------------

    def _instance_files(self, generation: int) -> Path:
        """Per-container configuration of the simulated machine (not of the product)."""
        root = self.dir / f"machine-{generation}"
        seed = root / "seed"
        seed.mkdir(parents=True, exist_ok=True)
        hostname = "ip-" + self.addresses.instance.replace(".", "-")
        (seed / "meta-data").write_text(f"instance-id: {self.state.ec2_instance_id}\n"
                                        f"local-hostname: {hostname}\n")
        (seed / "user-data").write_text(self.files().files[render.BOOTSTRAP])
        (root / "aws-config").write_text(
            "[default]\n"
            "# The instance harness: every AWS API call goes to moto in this namespace.\n"
            f"endpoint_url = http://127.0.0.1:{services.MOTO_PORT}\n")
        (root / "hosts").write_text(
            "127.0.0.1 localhost\n"
            f"{self.addresses.registry(0)} {ECR_HOST}\n"
            f"{self.addresses.registry(1)} {services.PUBLIC_REGISTRY_HOST}\n"
            f"{self.addresses.registry(2)} {aws_front.logs_host(REGION)} "
            f"{aws_front.agent_host(REGION)}\n")
        (root / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        # What udev does on a Nitro instance: the EBS volume's id as a by-id link.
        (root / "ebs-link.conf").write_text(
            f"d /dev/disk/by-id 0755 root root -\n"
            f"L {self.ebs_link()} - - - - {self.state.loop_device}\n")
        (root / "docker").mkdir(exist_ok=True)
        if self.state.case == "https":
            # Let's Encrypt's roots are in every trust store; pebble's (new at every pebble
            # start) is added to the image's bundle, so that the instance's own checks
            # (check-services.sh's curl) trust the certificate NGINX serves, as on AWS.
            bundle = subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "--entrypoint", "cat",
                 instance_images.INSTANCE_IMAGE, TRUST_BUNDLE],
                capture_output=True, text=True, check=True).stdout
            (root / "ca-certificates.crt").write_text(bundle + self.acme_root())
        return root

    def start_instance(self) -> None:
        self.state.generation += 1
        generation = self.state.generation
        root = self._instance_files(generation)
        assert self.state.loop_device is not None
        mounts = [
            f"{root / 'seed'}:/var/lib/cloud/seed/nocloud:ro",
            f"{root / 'aws-config'}:/root/.aws/config:ro",
            f"{root / 'hosts'}:/etc/hosts",
            f"{root / 'resolv.conf'}:/etc/resolv.conf",
            f"{root / 'ebs-link.conf'}:/etc/tmpfiles.d/ec2i-ebs-link.conf:ro",
            f"{root / 'docker'}:/var/lib/docker",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        ]
        if (root / "ca-certificates.crt").exists():
            mounts.append(f"{root / 'ca-certificates.crt'}:{TRUST_BUNDLE}")
        argv = [
            "docker", "run", "--detach", "--tty", "--name",
            f"{self.state.name}-vm{generation}", "--label", f"{LABEL}={self.state.name}",
            "--network", f"container:{self.state.sidecar}",
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "--stop-signal", "SIGRTMIN+3", "--stop-timeout", "90",
            "--device", self.state.loop_device,
            *[arg for mount in mounts for arg in ("--volume", mount)],
            instance_images.INSTANCE_IMAGE,
        ]
        self.state.started_at = time.time()
        container = network.run(argv).stdout.strip()
        self.state.containers.append(container)
        self.save()

    # --- the endpoint ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self.state.case == "https":
            return f"https://{SUBDOMAIN}.{DOMAIN}"
        return f"http://{self.addresses.instance}"

    def acme_root(self) -> str:
        """PEM of the root pebble signs certificates with (new at every pebble start)."""
        ca = ssl.create_default_context(cafile=str(services.ca_dir() / "ca.crt"))
        response = httpx.get(f"https://{self.addresses.instance}:{services.ACME_MANAGEMENT_PORT}"
                             "/roots/0", verify=ca, timeout=10)
        response.raise_for_status()
        return response.text

    def http_client(self, timeout: float = 30) -> httpx.Client:
        """A client for the endpoint: for HTTPS it reaches the instance's address with the
        domain as Host and TLS server name, trusting only pebble's root."""
        if self.state.case != "https":
            return httpx.Client(timeout=timeout)
        trust = ssl.create_default_context(cadata=self.acme_root())
        return httpx.Client(transport=DomainTransport(
            f"{SUBDOMAIN}.{DOMAIN}", self.addresses.instance, trust), timeout=timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT, record: bool = True) -> float:
        """Seconds from the container's (re)start until /ready answers 200 through NGINX."""
        assert self.state.started_at is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            state = self.docker.containers.get(self.container).attrs["State"]
            if not state["Running"]:
                raise InstanceError(f"the instance container stopped ({state['Status']});\n"
                                    f"{self.console()[-3000:]}")
            try:
                with self.http_client(timeout=5) as client:
                    response = client.get(f"{self.endpoint}/ready")
                if response.status_code == 200:
                    seconds = time.time() - self.state.started_at
                    if record:
                        self.state.ready_seconds.append(round(seconds, 1))
                        self.save()
                    return seconds
                last = f"{response.status_code} {response.text[:200]}"
            except (httpx.TransportError, ssl.SSLError, httpx.HTTPStatusError) as error:
                last = repr(error)
            time.sleep(2)
        log = self.exec("tail", "-n", "40", "/var/log/user-data.log", check=False).stdout
        raise InstanceError(f"{self.endpoint}/ready did not answer 200 within {timeout:.0f} s "
                            f"(last: {last});\n/var/log/user-data.log:\n{log}")

    def wait_converged(self, timeout: float = READY_TIMEOUT) -> float:
        """Seconds from the container's (re)start until main-setup.sh finished in this boot
        (its `setup.done` marker is newer than the start: the first boot's bootstrap, or a
        later boot's recovery, is done) and /ready answers through NGINX again."""
        assert self.state.started_at is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.exec("stat", "-c", "%Y", "/var/lib/inference/setup.done",
                             check=False).stdout.strip()
            if done.isdigit() and int(done) >= int(self.state.started_at) - 1:
                self.wait_ready(max(deadline - time.monotonic(), 1), record=False)
                seconds = time.time() - self.state.started_at
                self.state.converged_seconds.append(round(seconds, 1))
                self.save()
                return seconds
            time.sleep(2)
        log = self.exec("tail", "-n", "40", "/var/log/inference-recovery.log",
                        "/var/log/user-data.log", check=False).stdout
        raise InstanceError(f"main-setup did not finish within {timeout:.0f} s of the start;"
                            f"\n{log}")

    # --- the operations --------------------------------------------------------------

    def up(self, upload_scripts: bool = True, wait: bool = True,
           missing_permissions: Sequence[str] = (),
           tfvars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Boot. `missing_permissions`: IAM actions left out of the instance role; `tfvars`:
        variables of the root module on top of the case's (e.g. use_spot)."""
        try:
            tags = instance_images.ensure_images(self.docker, self.dir)
            if not self.state.tfvars:
                self.state.tfvars = self.base_tfvars(tags) | (tfvars or {})
            self.state.missing_permissions = list(missing_permissions)
            self.save()
            self.files()
            self.start_network()
            self.start_services()
            self.mirror_log_group()
            self.setup_iam()
            if upload_scripts:
                self.upload_scripts()
            if self.state.case == "autoscaling":
                self.fill_model_cache()
            self.launch_ec2_instance()
            self.write_metadata()
            self.attach_loop_device()
            self.start_instance()
            if wait:
                self.wait_ready()
                self.wait_converged()
        except BaseException:
            if os.environ.get("EC2I_INSTANCE_KEEP") != "1":
                with contextlib.suppress(Exception):
                    (self.dir / "failed-console.log").write_text(self.console())
                self.down()
            raise
        return self.summary() if wait else {}

    def summary(self) -> dict[str, Any]:
        keys = self.api_keys()
        result: dict[str, Any] = {
            "endpoint": self.endpoint,
            "api_key": keys[0],
            "model": self.state.tfvars.get("model_id") or self.files().files["inference.env"]
            .split("MODEL_ID='")[1].split("'")[0],
            "name": self.state.name,
        }
        if self.state.case == "https":
            ca_file = self.dir / "acme-root.pem"
            ca_file.write_text(self.acme_root())
            result |= {"address": self.addresses.instance, "ca_certificate": str(ca_file)}
        return result

    def exec(self, *argv: str, check: bool = True, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", "exec", self.container, *argv], capture_output=True,
                                text=True, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise InstanceError(f"{' '.join(argv)} exited {result.returncode} in the instance:"
                                f"\n{result.stdout}\n{result.stderr}")
        return result

    def console(self, since: float | None = None) -> str:
        """What systemd printed on the container's console (`docker logs`), all boots."""
        argv = ["docker", "logs", self.container]
        if since is not None:
            argv[2:2] = ["--since", str(int(since))]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    def stop_container(self) -> None:
        subprocess.run(["docker", "stop", self.container], capture_output=True, check=False,
                       timeout=180)

    def reboot(self, wait: bool = True) -> float | None:
        self.stop_container()
        return self.start(wait)

    def start(self, wait: bool = True) -> float | None:
        """Start the stopped instance with its disks (what `aws ec2 start-instances` does
        after a stop: the idle stop's poweroff, a schedule); seconds until /ready."""
        self.state.started_at = time.time()
        self.save()
        network.run(["docker", "start", self.container])
        if not wait:
            return None
        seconds = self.wait_ready()
        self.wait_converged()
        return seconds

    def running(self) -> bool:
        """Whether the instance is up (its container runs; false once it powered off)."""
        state = self.docker.containers.get(self.container).attrs["State"]
        return bool(state["Running"])

    def announce_spot_interruption(self, action: str = "stop", seconds: int = 120) -> str:
        """Serve the notice EC2 gives two minutes before it interrupts a Spot instance:
        spot/instance-action in the instance metadata, {"action", "time"} (404 until
        then). Returns the notice as IMDS serves it."""
        path = self.dir / "imds" / "meta-data.json"
        metadata = json.loads(path.read_text())
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
        metadata["spot/instance-action"] = {"action": action, "time": when}
        path.write_text(json.dumps(metadata))
        return json.dumps(metadata["spot/instance-action"])

    def interrupt_spot(self, wait: bool = True) -> float | None:
        """The interruption itself, behaviour stop: EC2 stops the instance (a clean halt)
        and, once capacity returns, starts it again with its disks, its id and its address;
        the notice is gone by then. Seconds from the start until /ready."""
        self.write_metadata()
        return self.reboot(wait)

    def record_shutdowns(self) -> str:
        """Divert the instance's `shutdown` (dpkg-divert, as an administrator would) to a
        wrapper that appends each call, with the caller's arguments and cgroup (its
        systemd unit), to SHUTDOWN_LOG, then runs the real one: the shipped scripts stay
        as they are and the machine still powers off. Returns the log's path."""
        wrapper = (
            "#!/bin/bash\n"
            "# Boot tests (testkit/instance/harness.py): record the call, then shut down.\n"
            f"{{ date -Is; echo \"argv: $*\"; cat /proc/$$/cgroup; }} >>{SHUTDOWN_LOG}\n"
            "exec -a shutdown /usr/sbin/shutdown.distrib \"$@\"\n")
        self.exec("dpkg-divert", "--local", "--rename", "--divert",
                  "/usr/sbin/shutdown.distrib", "--add", "/usr/sbin/shutdown")
        self.exec("bash", "-c", f"cat >/usr/sbin/shutdown <<'EOF'\n{wrapper}EOF\n"
                  "chmod 0755 /usr/sbin/shutdown")
        return SHUTDOWN_LOG

    def replace(self, wait: bool = True) -> float | None:
        """A new instance (new root disk, new instance id) on the same data volume."""
        self.stop_container()
        network.run(["docker", "rm", self.container], check=False)
        self.launch_ec2_instance()
        self.write_metadata()
        self.start_instance()
        if not wait:
            return None
        seconds = self.wait_ready()
        self.wait_converged()
        return seconds

    def down(self) -> None:
        """Remove what `up` started, by id: containers, services, the veth, the loop
        device, the directories of the instance's docker."""
        for container in reversed(self.state.containers):
            subprocess.run(["docker", "stop", container], capture_output=True, check=False,
                           timeout=180)
            subprocess.run(["docker", "rm", "--force", container], capture_output=True,
                           check=False)
        for pid in self.state.services.values():
            stop_process_group(pid, grace=5)
        for service in self._services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)
        self._services.clear()
        self.state.services.clear()
        if self.state.sidecar:
            subprocess.run(["docker", "rm", "--force", self.state.sidecar],
                           capture_output=True, check=False)
        if self.state.host_veth:
            network.unwire(self.state.host_veth)
        if self.state.loop_device:
            network.run(["losetup", "--detach", self.state.loop_device], check=False)
            self.state.loop_device = None
        self.save()
        for machine in self.dir.glob("machine-*"):
            shutil.rmtree(machine / "docker", ignore_errors=True)

    def unit_property(self, unit: str, prop: str) -> str:
        return self.exec("systemctl", "show", "--property", prop, "--value", unit).stdout.strip()


class DomainTransport(httpx.BaseTransport):
    """Requests for `domain` go to `address`, with the domain kept as Host and TLS name."""

    def __init__(self, domain: str, address: str, trust: ssl.SSLContext) -> None:
        self.domain = domain
        self.address = address
        self.inner = httpx.HTTPTransport(verify=trust)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self.domain:
            request.url = request.url.copy_with(host=self.address)
            request.extensions = {**request.extensions, "sni_hostname": self.domain}
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
