"""docs/ARCHITECTURE.md summarizes the plan of the gpu_https_dns case resource by module;
the table must be the one the plan of today's code gives."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from testkit import inventory

HERE = Path(__file__).resolve().parent
DOC = inventory.ROOT / "docs" / "ARCHITECTURE.md"
BEGIN = "<!-- BEGIN_PLAN_SUMMARY -->"
END = "<!-- END_PLAN_SUMMARY -->"
ORDER = ["vpc", "ecr", "build", "ec2", "monitoring", "scripts_bucket", "route53", "(root)"]


def summary_table(summary: Any) -> str:
    """One row per module: how many resources of each type the plan creates."""
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for address in summary.values:
        module = re.match(r"module\.([a-z0-9_]+)", address)
        name = module[1] if module else "(root)"
        # Drop instance keys first: for_each keys may contain dots ("0.0.0.0/0").
        resource_type = re.sub(r"\[[^\]]*\]", "", address).split(".")[-2]
        by_module[name][resource_type] += 1
    rows = ["| module | resources | what |", "|---|---:|---|"]
    for name in sorted(by_module, key=lambda m: ORDER.index(m) if m in ORDER else 99):
        kinds = ", ".join(
            f"`{kind}`" + (f" x{n}" if n > 1 else "") for kind, n in sorted(by_module[name].items())
        )
        rows.append(f"| `{name}` | {sum(by_module[name].values())} | {kinds} |")
    rows.append(f"| total | {summary.counts['resources']} | |")
    return "\n".join(rows)


def test_architecture_doc_summarizes_todays_gpu_https_plan(plan_summary: Any) -> None:
    summary = plan_summary(".", tf_var_files=[str(HERE / "gpu_https_dns.tfvars")])
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} needs the {BEGIN} / {END} markers"
    documented = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    expected = summary_table(summary)
    assert documented == expected, (
        "docs/ARCHITECTURE.md is out of date; put this between the markers:\n" + expected
    )
