"""Build the proxy image from its context and push it under a content-hash tag.

    python tools/build.py --registry <ecr-url|host:port>[/repository] [--repository NAME]
                          [--context app] [--platform linux/amd64|linux/arm64]
                          [--username U --password-stdin] [--network host]

The tag is a hash of the build context (paths and bytes of the files Docker would send,
.dockerignore respected) plus the target platform's architecture (`<hash>-amd64`), so an
unchanged context costs one registry lookup and no build, and an image built for another
platform never hides behind the same tag. The image is built for --platform (the
instance's, default linux/amd64), never silently for the machine that runs the build: an
image whose architecture is not the one asked for is refused before it is pushed.
modules/build computes the same hash in Terraform to decide when to run this script; the
rules here and in modules/build/main.tf must stay the same (a test holds them together).

ECR registries (<account>.dkr.ecr.<region>.amazonaws.com) are logged into with boto3's
get_authorization_token (AWS_ENDPOINT_URL is honoured, as boto3 does); any other
registry takes --username/--password-stdin or no credentials. Progress goes to stderr;
stdout gets one JSON line: {"image", "tag", "digest", "platform",
"status": pushed|already-present}.

It needs the Python packages docker and boto3 (boto3 for ECR only); without them it exits
at once with the pip command that installs them for the interpreter that runs it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import docker
    import docker.errors
except ModuleNotFoundError:  # main() says how to install it before anything needs it
    pass

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPOSITORY = "inference-proxy"
TAG_LENGTH = 16
# The instance's platforms: x86_64 instances and Graviton (arm64) ones.
PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_PLATFORM = "linux/amd64"
# What the tools need, as pip installs it (the same lower bounds as pyproject's test extras).
REQUIREMENTS = {"docker": "docker>=7.1", "boto3": "boto3>=1.34"}
# Docker sends these whatever .dockerignore says, and they decide what is built.
ALWAYS_IN_CONTEXT = ("Dockerfile", ".dockerignore")
ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)

Log = Callable[[str], None]
Auth = dict[str, str]


class BuildError(Exception):
    """A build or push that did not produce an image in the registry."""


class DaemonUnavailable(BuildError):
    """No Docker daemon answers."""


class ContextError(BuildError):
    """The build context or its Dockerfile is missing."""


class RegistryUnavailable(BuildError):
    """The registry cannot be reached."""


class RegistryAuthError(BuildError):
    """The registry refused the credentials (or asked for some and got none)."""


class ImageBuildFailed(BuildError):
    """`docker build` reported an error."""


class PushFailed(BuildError):
    """`docker push` reported an error."""


@dataclass(frozen=True)
class Target:
    """Where the image goes: `address` is the host[:port] pushes go to."""

    address: str
    repository: str
    auth: Auth | None = field(default=None, repr=False)  # never in a log or traceback

    def reference(self, tag: str) -> str:
        return f"{self.address}/{self.repository}:{tag}"


@dataclass(frozen=True)
class BuildResult:
    image: str
    tag: str
    digest: str
    status: str  # "pushed" or "already-present"
    platform: str = DEFAULT_PLATFORM

    def json_line(self) -> str:
        return json.dumps(
            {"image": self.image, "tag": self.tag, "digest": self.digest,
             "platform": self.platform, "status": self.status}
        )


# --- the content hash -------------------------------------------------------------------


def _segment_regex(segment: str) -> str:
    """One path segment of a glob (`*`, `?`, `[...]`, `\\x`) as a regex; never crosses `/`."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif char == "[" and "]" in segment[i + 1 :]:
            end = segment.index("]", i + 1)
            body = segment[i + 1 : end]
            negate = body[:1] in {"!", "^"}
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@functools.cache
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as Terraform's fileset() reads it: `**` as a whole segment spans directories."""
    segments = pattern.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(out))


@dataclass(frozen=True)
class IgnoreRule:
    exclude: bool  # False for a `!pattern` exception
    pattern: str

    def matches(self, path: str) -> bool:
        # A pattern names files and, like a directory name in .dockerignore, everything below.
        return bool(glob_regex(self.pattern).fullmatch(path)) or bool(
            glob_regex(self.pattern + "/**").fullmatch(path)
        )


def ignore_rules(text: str) -> list[IgnoreRule]:
    """Parse .dockerignore: blank lines and # comments skipped, `!` marks an exception."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        rules.append(IgnoreRule(exclude, line.lstrip("!").strip().strip("/")))
    return rules


def _walk_files(context: Path) -> Iterator[str]:
    # fileset() follows symlinks to files and directories; so does this walk.
    for directory, _dirs, files in os.walk(context, followlinks=True):
        for name in files:
            path = Path(directory, name)
            if path.is_file():
                yield path.relative_to(context).as_posix()


def context_files(context: Path) -> list[str]:
    """The files the tag covers, sorted: every file .dockerignore does not exclude (the
    last matching rule wins), plus Dockerfile and .dockerignore themselves."""
    dockerignore = context / ".dockerignore"
    rules = ignore_rules(dockerignore.read_text()) if dockerignore.is_file() else []
    kept = set()
    for path in _walk_files(context):
        verdicts = [rule.exclude for rule in rules if rule.matches(path)]
        if not verdicts or not verdicts[-1]:
            kept.add(path)
    kept.update(name for name in ALWAYS_IN_CONTEXT if (context / name).is_file())
    return sorted(kept)


def content_hash(context: Path) -> str:
    """sha256 of a `sha256sum`-style manifest ("<file sha256>  <path>\\n" per file)."""
    manifest = "".join(
        f"{hashlib.sha256((context / path).read_bytes()).hexdigest()}  {path}\n"
        for path in context_files(context)
    )
    return hashlib.sha256(manifest.encode()).hexdigest()


def content_tag(context: Path) -> str:
    return content_hash(context)[:TAG_LENGTH]


def image_tag(context: Path, platform: str = DEFAULT_PLATFORM) -> str:
    """The tag an image of `context` built for `platform` is pushed under: `<hash>-<arch>`."""
    return f"{content_tag(context)}-{architecture(platform)}"


def architecture(platform: str) -> str:
    """`linux/arm64` -> `arm64`; only the instance's platforms are accepted."""
    if platform not in PLATFORMS:
        raise BuildError(f"platform {platform!r} is not one of {', '.join(PLATFORMS)}")
    return platform.split("/")[1]


def missing_requirements(names: Iterable[str]) -> list[str]:
    """The pip requirements of `names` that this interpreter cannot import."""
    return [REQUIREMENTS[name] for name in names if importlib.util.find_spec(name) is None]


def install_hint(missing: Sequence[str]) -> str:
    """What to run so that the next apply finds `missing` (pip requirements)."""
    packages = " ".join(f"'{requirement}'" for requirement in missing)
    names = ", ".join(requirement.split(">")[0] for requirement in missing)
    head = f"{sys.executable}, the Python running this build, lacks {names}."
    if sys.prefix != sys.base_prefix:  # a virtualenv: install into it
        return f"{head} Install with:\n  {sys.executable} -m pip install {packages}"
    # A system Python refuses pip (PEP 668); modules/build uses the repository's .venv.
    venv = ROOT / ".venv"
    return (f"{head} Create the virtualenv that Terraform's modules/build uses when it "
            f"exists:\n  python3 -m venv {venv} && {venv}/bin/python -m pip install {packages}")


# --- registries -------------------------------------------------------------------------


def split_registry(registry: str, repository: str | None) -> tuple[str, str]:
    """`host[:port][/repo]` plus --repository into (host, repository)."""
    registry = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    host, _, path = registry.partition("/")
    if path and repository:
        raise BuildError(f"--registry {registry} already names a repository; drop --repository")
    return host, path or repository or DEFAULT_REPOSITORY


def ecr_login(ecr_client: Any, host: str) -> tuple[str, Auth]:
    """Credentials for an ECR registry, and the registry address from proxyEndpoint."""
    account = ECR_HOST.match(host)
    kwargs = {"registryIds": [account.group("account")]} if account else {}
    try:
        data = ecr_client.get_authorization_token(**kwargs)["authorizationData"][0]
    except Exception as exc:  # botocore raises many unrelated types; all mean "no login"
        raise RegistryAuthError(f"ECR get_authorization_token failed: {exc}") from exc
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    address = str(data["proxyEndpoint"]).removeprefix("https://").removeprefix("http://")
    return address.rstrip("/"), {"username": username, "password": password}


def _registry_error(exc: docker.errors.APIError, address: str) -> BuildError:
    message = str(exc.explanation or exc)
    lowered = message.lower()
    if exc.status_code == 401 or "unauthorized" in lowered or "no basic auth" in lowered:
        return RegistryAuthError(
            f"registry {address} refused the credentials ({message}); "
            "check --username/--password-stdin or the AWS identity"
        )
    if any(s in lowered for s in ("connection refused", "no such host", "dial tcp", "timeout")):
        return RegistryUnavailable(f"registry {address} is unreachable: {message}")
    return BuildError(f"registry {address}: {message}")


def remote_digest(client: docker.DockerClient, reference: str, auth: Auth | None) -> str | None:
    """The digest `reference` has in its registry, or None when the tag is not there."""
    try:
        found = client.api.inspect_distribution(reference, auth_config=auth)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise _registry_error(exc, reference.split("/", 1)[0]) from exc
    return str(found["Descriptor"]["digest"])


# --- build and push ---------------------------------------------------------------------


def _stream_errors(
    chunks: Iterable[Mapping[str, Any]], error: type[BuildError], what: str
) -> Iterator[Mapping[str, Any]]:
    """Pass chunks through; raise on the first error (docker-py does not for pushes)."""
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or chunk).strip()
            raise error(f"{what} failed: {message}")
        yield chunk


def build_image(
    client: docker.DockerClient,
    context: Path,
    reference: str,
    *,
    network: str | None,
    build_args: Mapping[str, str],
    log: Log,
    platform: str = DEFAULT_PLATFORM,
) -> str:
    """`docker build` of `context` for `platform`, tagged `reference`; returns the image id.
    Raises, and leaves no tag, when the engine produced an image for another architecture
    (an engine without emulation uses a local base image of its own platform as it is)."""
    image_id = ""
    what = f"docker build of {context}"
    try:
        chunks = client.api.build(
            path=str(context),
            tag=reference,
            platform=platform,
            network_mode=network,
            buildargs=dict(build_args),
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in _stream_errors(chunks, ImageBuildFailed, what):
            if text := chunk.get("stream"):
                log(str(text).rstrip("\n"))
            image_id = str(chunk.get("aux", {}).get("ID", image_id))
    except docker.errors.APIError as exc:  # refused before streaming, e.g. an empty Dockerfile
        raise ImageBuildFailed(f"{what} failed: {exc.explanation or exc}") from exc
    if not image_id:
        raise ImageBuildFailed(f"docker build of {context} ended without an image id")
    built = str(client.api.inspect_image(image_id).get("Architecture") or "")
    if built != architecture(platform):
        with contextlib.suppress(docker.errors.DockerException):
            client.api.remove_image(reference, noprune=True)
        raise ImageBuildFailed(
            f"{what} for {platform} produced a linux/{built} image: its base image is "
            f"only available here for linux/{built}. Build where the base image exists for "
            f"{platform} (a registry that serves it, or an engine with QEMU emulation or "
            "buildx), or choose an instance type of this architecture."
        )
    return image_id


def push_image(client: docker.DockerClient, target: Target, tag: str, log: Log) -> str:
    """`docker push`; returns the manifest digest the registry reported."""
    repository = f"{target.address}/{target.repository}"
    chunks = client.api.push(repository, tag=tag, auth_config=target.auth, stream=True, decode=True)
    digest = ""
    last_status: dict[str, str] = {}
    for chunk in _stream_errors(chunks, PushFailed, f"docker push of {repository}:{tag}"):
        status, layer = str(chunk.get("status", "")), str(chunk.get("id", ""))
        if status and last_status.get(layer) != status:  # one line per layer step, not per byte
            last_status[layer] = status
            log(f"{layer}: {status}" if layer else status)
        digest = str(chunk.get("aux", {}).get("Digest", digest))
    if not digest:
        raise PushFailed(f"push of {repository}:{tag} ended without a digest")
    return digest


def build_and_push(
    client: docker.DockerClient,
    context: Path,
    target: Target,
    *,
    network: str | None = None,
    build_args: Mapping[str, str] | None = None,
    platform: str = DEFAULT_PLATFORM,
    log: Log,
) -> BuildResult:
    """Make sure the image of `context` for `platform` is in the registry under its tag."""
    if not context.is_dir():
        raise ContextError(f"build context {context} is not a directory")
    if not (context / "Dockerfile").is_file():
        raise ContextError(f"no Dockerfile in {context}")
    tag = image_tag(context, platform)
    reference = target.reference(tag)
    digest = remote_digest(client, reference, target.auth)
    if digest is not None:
        log(f"{reference} is already in the registry ({digest}); nothing to build")
        return BuildResult(reference, tag, digest, "already-present", platform)
    log(f"building {reference} from {context} for {platform}")
    build_image(client, context, reference, network=network, build_args=build_args or {},
                log=log, platform=platform)
    try:
        digest = push_image(client, target, tag, log)
    except (BuildError, docker.errors.DockerException):
        # The local tag would read as "built and pushed"; only the registry may say that.
        with contextlib.suppress(docker.errors.DockerException):
            client.api.remove_image(reference, noprune=True)
        raise
    return BuildResult(reference, tag, digest, "pushed", platform)


# --- command line -----------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--registry", required=True, help="ECR URL or host:port, optionally with /repository"
    )
    parser.add_argument("--repository", help=f"repository name (default {DEFAULT_REPOSITORY})")
    parser.add_argument(
        "--context", type=Path, default=ROOT / "app", help="build context (default: app/)"
    )
    parser.add_argument("--username", help="registry user (not for ECR)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    parser.add_argument("--network", help="network for RUN steps: host where dockerd has no bridge")
    parser.add_argument(
        "--platform", choices=PLATFORMS, default=DEFAULT_PLATFORM,
        help=f"the instance's platform to build for (default {DEFAULT_PLATFORM}, not this "
        "machine's)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--region", help="AWS region for ECR (default: from the registry host)")
    parser.add_argument(
        "--registry-override",
        metavar="HOST:PORT",
        help="push to this address instead of the registry's own, with the registry's "
        "credentials (a mirror, or a local registry in tests)",
    )
    args = parser.parse_args(argv)
    if args.password_stdin and not args.username:
        parser.error("--password-stdin needs --username")
    for item in args.build_arg:
        if "=" not in item:
            parser.error(f"--build-arg {item}: expected KEY=VALUE")
    return args


def resolve_target(
    args: argparse.Namespace, password: str | None, ecr_client: Callable[[str | None], Any]
) -> Target:
    """Registry address, repository and credentials from the command line (and ECR)."""
    host, repository = split_registry(args.registry, args.repository)
    auth: Auth | None = None
    ecr = ECR_HOST.match(host)
    if ecr:
        if args.username:
            raise BuildError("ECR credentials come from AWS; drop --username")
        host, auth = ecr_login(ecr_client(args.region or ecr.group("region")), host)
    elif args.username:
        auth = {"username": args.username, "password": password or ""}
    return Target(args.registry_override or host, repository, auth)


def _ecr_client(region: str | None) -> Any:
    import boto3  # only ECR needs it; imported late so other registries work without AWS config

    return boto3.client("ecr", region_name=region)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # First, before anything else: the packages this run will need.
    host = args.registry.removeprefix("https://").removeprefix("http://").partition("/")[0]
    missing = missing_requirements(["docker", *(["boto3"] if ECR_HOST.match(host) else [])])
    if missing:
        _stderr(f"build.py: error: {install_hint(missing)}")
        return 2
    password = sys.stdin.read().rstrip("\n") if args.password_stdin else None
    try:
        target = resolve_target(args, password, _ecr_client)
        try:
            client = docker.from_env()
        except docker.errors.DockerException as exc:
            raise DaemonUnavailable(
                f"cannot reach the Docker daemon ({exc}); start dockerd or set DOCKER_HOST"
            ) from exc
        try:
            result = build_and_push(
                client,
                args.context.resolve(),
                target,
                network=args.network,
                build_args=dict(item.split("=", 1) for item in args.build_arg),
                platform=args.platform,
                log=_stderr,
            )
        finally:
            client.close()
    except BuildError as exc:
        _stderr(f"build.py: error: {exc}")
        return 1
    except docker.errors.DockerException as exc:
        _stderr(f"build.py: error: Docker: {exc}")
        return 1
    print(result.json_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
