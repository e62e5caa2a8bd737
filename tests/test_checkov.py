"""Security scan gate: checkov over the root module and every module in modules/.

The gate fails on any failed check that is not skipped inline in the resource with a
written reason (`#checkov:skip=CKV_...:why`), on a skip without a reason, on a stale skip
that no longer suppresses anything, and when docs/OPERATIONS.md "Security scan (checkov)"
does not list exactly the skipped check ids. checkov runs offline (BC_SKIP_MAPPING=TRUE,
--skip-download) from its own virtualenv, made by tools/prepare/62-checkov.sh.

Run alone: `.venv/bin/python -m pytest tests/test_checkov.py -q` (~15 s); the totals
are printed with `-s`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
DOC_SECTION = "Security scan (checkov)"
# What checkov records when a skip comment has no `:reason` part.
NO_REASON = "No comment provided"
MIN_REASON_CHARS = 15
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?")

pytestmark = pytest.mark.slow


def checkov_binary() -> Path:
    cache = os.environ.get("EC2I_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ec2-inference"
    )
    path = Path(cache) / "checkov-venv" / "bin" / "checkov"
    if not path.exists():
        pytest.skip(f"{path} is missing; run `bash tools/prepare.sh test`")
    return path


@dataclass(frozen=True)
class Finding:
    check_id: str
    resource: str
    location: str  # file:first-last
    name: str
    reason: str | None  # suppress comment, for skipped checks

    def __str__(self) -> str:
        text = f"{self.location} {self.resource}: {self.check_id} {self.name}"
        return text if self.reason is None else f"{text} (skip reason: {self.reason!r})"


@dataclass(frozen=True)
class ScanResult:
    summary: dict[str, Any]
    passed: list[Finding]
    failed: list[Finding]
    skipped: list[Finding]


def run_checkov(directory: Path, *extra: str) -> ScanResult:
    """checkov on the Terraform under `directory`, offline; nothing skipped from outside."""
    argv = [
        str(checkov_binary()),
        "--directory",
        str(directory),
        "--framework",
        "terraform",
        "--skip-download",
        "--output",
        "json",
        # Test fixtures, virtualenvs and caches are not what we ship.
        "--skip-path",
        r"(^|/)(tests|\.venv|\.terraform|node_modules)(/|$)",
        *extra,
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=600)
    # checkov exits 1 when a check failed; the gate reads the report, not the exit code.
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise AssertionError(f"checkov failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    if not terraform:
        # checkov prints a bare summary when it found nothing to scan.
        raise AssertionError(
            f"checkov scanned no Terraform under {directory}: {result.stdout[:500]}"
        )
    results = terraform[0]["results"]

    def findings(key: str) -> list[Finding]:
        out = []
        for check in results.get(key, []):
            first, last = check["file_line_range"]
            out.append(
                Finding(
                    check_id=check["check_id"],
                    resource=check["resource"],
                    location=f"{check['file_path'].lstrip('/')}:{first}-{last}",
                    name=check["check_name"],
                    reason=check["check_result"].get("suppress_comment"),
                )
            )
        return out

    return ScanResult(
        terraform[0]["summary"],
        findings("passed_checks"),
        findings("failed_checks"),
        findings("skipped_checks"),
    )


def gate_problems(scan: ScanResult) -> list[str]:
    """Everything that makes the gate fail, one line each, saying what to do."""
    problems = [
        f"FAILED {finding}: fix it, or add `#checkov:skip={finding.check_id}:<why>` "
        "inside the resource and a row in docs/OPERATIONS.md"
        for finding in scan.failed
    ]
    for finding in scan.skipped:
        reason = (finding.reason or "").strip()
        if reason == NO_REASON or len(reason) < MIN_REASON_CHARS:
            problems.append(f"SKIPPED WITHOUT A REASON {finding}: write why after the check id")
    return problems


def skip_comments(directory: Path) -> Iterator[tuple[str, str, str]]:
    """(file:line, check id, reason) of every skip comment in the .tf files we ship."""
    for path in sorted(directory.rglob("*.tf")):
        relative = path.relative_to(directory)
        if relative.parts[0] in {"tests", ".venv", ".terraform"}:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                yield f"{relative}:{number}", match.group(1), (match.group(2) or "").strip()


def documented_skips(markdown: str) -> set[str]:
    """Check ids in the first column of the table under the "Security scan" heading."""
    section = re.search(
        rf"^(#+) {re.escape(DOC_SECTION)}\s*$(.*?)(?=^#{{1,2}} |\Z)", markdown, re.M | re.S
    )
    if section is None:
        return set()
    return set(re.findall(r"^\|\s*`?(CKV2?_[A-Z0-9_]+)`?\s*\|", section.group(2), re.M))


@pytest.fixture(scope="module")
def project_scan() -> ScanResult:
    scan = run_checkov(ROOT)
    summary = scan.summary
    print(
        f"\ncheckov {summary.get('checkov_version')}: passed {summary['passed']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']} "
        f"({summary['resource_count']} resources)"
    )
    return scan


def test_every_failed_check_is_fixed_or_skipped_with_a_reason(project_scan: ScanResult) -> None:
    problems = gate_problems(project_scan)
    assert not problems, "checkov gate:\n" + "\n".join(problems)
    assert project_scan.summary["passed"] > 0


def test_the_scan_covers_every_module_with_aws_resources(project_scan: ScanResult) -> None:
    """A module checkov cannot load would pass silently: each must have checked resources."""
    checked = {
        Path(finding.location).parts[1]
        for finding in project_scan.passed + project_scan.failed + project_scan.skipped
        if finding.location.startswith("modules/")
    }
    with_resources = {
        path.parent.name
        for path in (ROOT / "modules").glob("*/*.tf")
        if re.search(r'^resource "aws_', path.read_text(), re.M)
    }
    assert with_resources, "no module declares an AWS resource"
    assert with_resources <= checked, (
        f"checkov checked nothing in {sorted(with_resources - checked)}"
    )


def test_every_skip_comment_still_suppresses_a_check(project_scan: ScanResult) -> None:
    used = {(f.location.split(":")[0], f.check_id) for f in project_scan.skipped}
    stale = [
        f"{where}: #checkov:skip={check_id} suppresses nothing any more; remove it"
        for where, check_id, _ in skip_comments(ROOT)
        if (where.split(":")[0], check_id) not in used
    ]
    assert not stale, "\n".join(stale)


def test_operations_doc_lists_exactly_the_skipped_checks(project_scan: ScanResult) -> None:
    in_code = {finding.check_id for finding in project_scan.skipped}
    in_doc = documented_skips(OPERATIONS.read_text() if OPERATIONS.exists() else "")
    assert in_doc == in_code, (
        f"docs/OPERATIONS.md section {DOC_SECTION!r} must list each skipped check and why;"
        f" missing there: {sorted(in_code - in_doc)}, no longer skipped: {sorted(in_doc - in_code)}"
    )


FIXTURE = """\
resource "aws_s3_bucket" "unexplained" {
  bucket = "unexplained"
}

resource "aws_s3_bucket" "reasonless" {
  #checkov:skip=CKV_AWS_18
  bucket = "reasonless"
}

resource "aws_s3_bucket" "explained" {
  #checkov:skip=CKV_AWS_18:Access logs of this fixture bucket go nowhere on purpose.
  bucket = "explained"
}
"""


def test_gate_rejects_unskipped_failures_and_skips_without_reason(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(FIXTURE)
    scan = run_checkov(tmp_path, "--check", "CKV_AWS_18")
    problems = gate_problems(scan)
    assert len(problems) == 2, problems
    assert problems[0].startswith("FAILED main.tf:1-3 aws_s3_bucket.unexplained: CKV_AWS_18")
    assert problems[1].startswith("SKIPPED WITHOUT A REASON main.tf:5-8 aws_s3_bucket.reasonless")
    assert [f.resource for f in scan.skipped] == [
        "aws_s3_bucket.reasonless",
        "aws_s3_bucket.explained",
    ]


def test_documented_skips_reads_only_its_own_section() -> None:
    markdown = (
        "# Operations\n\n## Other\n\n| `CKV_AWS_1` | x |\n\n"
        f"## {DOC_SECTION}\n\n| check | where | why |\n|---|---|---|\n"
        "| `CKV_AWS_18` | scripts bucket | reasons |\n| CKV2_AWS_62 | b | c |\n\n"
        "## Later\n\n| `CKV_AWS_2` | y |\n"
    )
    assert documented_skips(markdown) == {"CKV_AWS_18", "CKV2_AWS_62"}
