"""Suite-wide rules. In CI (CI=true) a skipped test is a failure: a missing tool there is
a broken machine preparation, never a reason to pass quietly.

The order files run in: `make pytest` hands whole files to pytest-xdist workers in
collection order (`--dist loadfile --no-loadscope-reorder`). A boot test file (it mostly
waits on its instance) alternates with another file (mostly CPU), so that the two cores stay
busy while instances wait; in each kind the longest come first (`slow(minutes=N)`, then
`slow`, then the rest). Within a file the order is the file's."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run everything: {reason}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def minutes(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        if slow is None:
            return 0.0
        return float(slow.kwargs.get("minutes", 0.1))  # `slow` alone: before the rest

    files: dict[object, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)

    def longest_first(group: list[list[pytest.Item]]) -> list[list[pytest.Item]]:
        return sorted(group, key=lambda tests: -max(minutes(test) for test in tests))

    boots = longest_first([t for t in files.values() if t[0].get_closest_marker("instance")])
    others = longest_first([t for t in files.values() if not t[0].get_closest_marker("instance")])
    order: list[list[pytest.Item]] = []
    for index in range(max(len(boots), len(others))):
        order += [group[index] for group in (boots, others) if index < len(group)]
    items[:] = [test for tests in order for test in tests]
