"""tools/keys.py against moto server's SSM: what it writes is a key set the proxy loads,
keys are printed once and never listed, a first-boot comma list is converted."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from inference_proxy import keys as proxy_keys

from tools import keys

ROOT = Path(__file__).resolve().parents[2]
PARAMETER = "/demo-dev/proxy-api-keys"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def ssm(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1")
    yield client
    with contextlib.suppress(client.exceptions.ParameterNotFound):
        client.delete_parameter(Name=PARAMETER)


def stored(ssm: Any) -> str:
    value: str = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    return value


def run(ssm: Any, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = keys.main(["--parameter", PARAMETER, *args], ssm=ssm)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_rotate_remove_round_trip_the_proxy_loads(
    ssm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ssm,
        "add",
        "alice",
        "--rpm",
        "60",
        "--tpm",
        "20000",
        "--concurrency",
        "4",
        "--models",
        "Qwen/Qwen2.5-7B-Instruct",
        capsys=capsys,
    )
    alice_key = out.strip()
    assert code == 0 and alice_key.startswith("sk-") and len(alice_key) > 40
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Type"] == "SecureString"
    code, out, _ = run(ssm, "add", "bob", capsys=capsys)
    bob_key = out.strip()

    key_set = proxy_keys.load_key_set(stored(ssm), None)
    alice = key_set.authenticate(b"Bearer " + alice_key.encode())
    assert alice is not None and alice.name == "alice"
    assert alice.limits == proxy_keys.Limits(4, 60, 20000)
    assert alice.models == frozenset({"Qwen/Qwen2.5-7B-Instruct"})

    code, out, err = run(ssm, "list", capsys=capsys)
    assert code == 0
    assert out.splitlines() == [
        "alice concurrency=4 rpm=60 tpm=20000 models=Qwen/Qwen2.5-7B-Instruct",
        "bob models=all (no limits)",
    ]
    assert alice_key not in out + err and bob_key not in out + err

    code, out, _ = run(ssm, "rotate", "alice", capsys=capsys)
    rotated = out.strip()
    assert code == 0 and rotated not in {alice_key, ""}
    key_set = proxy_keys.load_key_set(stored(ssm), None)
    assert key_set.authenticate(b"Bearer " + alice_key.encode()) is None
    renewed = key_set.authenticate(b"Bearer " + rotated.encode())
    assert renewed is not None and renewed.limits == alice.limits  # limits kept

    assert run(ssm, "remove", "bob", capsys=capsys)[0] == 0
    assert [k.name for k in proxy_keys.load_key_set(stored(ssm), None)] == ["alice"]


def test_a_first_boot_comma_list_is_converted_keeping_its_keys(
    ssm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="sk-first-boot-key", Type="SecureString")
    first_id = keys.key_id("sk-first-boot-key")
    assert first_id == proxy_keys.key_id("sk-first-boot-key")  # the proxy's name for it
    code, out, err = run(ssm, "list", capsys=capsys)
    assert code == 0
    assert out.splitlines() == [f"{first_id} models=all (no limits)"]
    assert "sk-first-boot-key" not in out + err
    assert run(ssm, "add", "carol", "--tpm", "100", capsys=capsys)[0] == 0
    loaded = proxy_keys.load_key_set(stored(ssm), None)
    assert stored(ssm).startswith('{"keys":')
    assert [k.name for k in loaded] == [first_id, "carol"]
    assert loaded.authenticate(b"Bearer sk-first-boot-key") is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remove", "nobody"], "no key named 'nobody'"),
        (["rotate", "nobody"], "no key named 'nobody'"),
        (["add", "bad name"], "a name is 1-64"),
    ],
)
def test_mistakes_exit_2_saying_what_to_fix(
    ssm: Any, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(ssm, *args, capsys=capsys)
    assert code == 2 and message in err and out == ""


def test_duplicate_add_is_refused(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(ssm, "add", "dave", capsys=capsys)[0] == 0
    code, out, err = run(ssm, "add", "dave", capsys=capsys)
    assert code == 2 and "exists" in err and out == ""


def test_the_command_line_prints_only_the_key_on_stdout(moto_endpoint: str, ssm: Any) -> None:
    env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto_endpoint}
    tool = [sys.executable, str(ROOT / "tools" / "keys.py"), "--parameter", PARAMETER]
    result = subprocess.run(
        [*tool, "add", "erin", "--rpm", "5"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert result.stdout.strip().startswith("sk-") and len(result.stdout.splitlines()) == 1
    assert "erin" in result.stderr and result.stdout.strip() not in result.stderr
