"""Module tests on tftest: every tests/modules/<module>/tftest.yaml case becomes a test, and
the `plan_summary` / `plan_validator` / `lifecycle` fixtures are shared by bespoke tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from testkit.tftest_cases import (
    PLANNER_KEY,
    ROOT,
    Applied,
    CaseFile,
    InventoryMismatch,
    apply_replan_destroy,
    inventory,
)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name == "tftest.yaml":
        return CaseFile.from_parent(parent, path=file_path)
    return None


def pytest_configure(config: pytest.Config) -> None:
    # One planner per session, made on first use (tftest.yaml items and fixtures share it):
    # each module gets one tftest.TerraformTest, initialised once; every case after that
    # costs one plan.
    made: list[inventory.Planner] = []

    def planner() -> inventory.Planner:
        if not made:
            workdir = Path(tempfile.mkdtemp(prefix="tftest-"))
            config.add_cleanup(lambda: shutil.rmtree(workdir, ignore_errors=True))
            made.append(inventory.Planner(workdir))
        return made[0]

    config.stash[PLANNER_KEY] = planner


@pytest.fixture(scope="session")
def _planner(request: pytest.FixtureRequest) -> inventory.Planner:
    planner: inventory.Planner = request.config.stash[PLANNER_KEY]()
    return planner


PlanSummaryFactory = Callable[..., inventory.PlanSummary]


@pytest.fixture(scope="session")
def plan_summary(_planner: inventory.Planner) -> PlanSummaryFactory:
    """plan_summary(module, tf_var_files=[...], **tf_vars) -> PlanSummary with .values
    (per address, unknowns as "(known after apply)"), .counts, .outputs and .raw."""

    def plan(module: str | Path, tf_var_files: Sequence[str | Path] = (),
             **tf_vars: Any) -> inventory.PlanSummary:
        return _planner.plan(ROOT / module, tf_var_files, tf_vars)

    return plan


@pytest.fixture(scope="session")
def plan_validator(plan_summary: PlanSummaryFactory) -> Callable[..., inventory.PlanSummary]:
    """plan_validator(module, inventory_paths, tf_var_files=[...], **tf_vars): plans and
    fails with every difference from the inventory files; returns the summary."""

    def validate(module: str | Path, inventory_paths: Sequence[str | Path],
                 tf_var_files: Sequence[str | Path] = (), **tf_vars: Any
                 ) -> inventory.PlanSummary:
        summary = plan_summary(module, tf_var_files, **tf_vars)
        merged, errors = inventory.read_inventories(Path(p) for p in inventory_paths)
        errors += inventory.check_inventory(summary, merged)
        if errors:
            raise InventoryMismatch("\n".join(errors))
        return summary

    return validate


@pytest.fixture
def lifecycle(tmp_path: Path) -> Iterator[Callable[..., Applied]]:
    """lifecycle(module, tf_vars={...}, extra=[...]) runs init, apply, a second plan and
    destroy in a temporary copy; returns Applied(outputs, resources, replan_exit_code,
    destroyed)."""

    def run(module: str | Path, tf_vars: Mapping[str, Any] | None = None,
            extra: Sequence[str] = ()) -> Applied:
        return apply_replan_destroy(module, tmp_path, tf_vars, extra)

    yield run
