"""Shared fixtures: one small sandbox world per test session, in its own data directory."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion import pipelines
from ingestion.pipelines import stop_sandbox
from ingestion.sandbox.world import generate_world
from orchestration.cli import DAGSTER_YAML
from orchestration.constants import DBT_EXECUTABLE, DBT_PROJECT_DIR
from orchestration.dbt_assets import AS_OF_ENV
from orchestration.dbt_functions import HASH_KEY_ENV
from orchestration.nightly import NightlyReport, run_nightly

# Small enough for CI, large enough to hold every planted case (see ingestion/sandbox/README.md).
WORLD = {"seed": 7, "customers": 400, "days": 60, "as_of": date(2026, 6, 1)}
# Long enough for single-order buyers to reach T = 180 days, for repeat buyers to churn twice and
# for the purchase models to be scored on a 90-day holdout.
LONG_WORLD = {"seed": 5, "customers": 250, "days": 420, "as_of": date(2026, 6, 1)}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh SHOP360_DATA_DIR for the whole session (the warehouse, the world, dlt state)."""
    directory = tmp_path_factory.mktemp("shop360_data")
    previous = os.environ.get("SHOP360_DATA_DIR")
    os.environ["SHOP360_DATA_DIR"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("SHOP360_DATA_DIR", None)
    else:
        os.environ["SHOP360_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def world(data_dir: Path) -> Path:
    """The sandbox root (world/, ga4/, truth/) of the session's small world."""
    root = data_dir / "sandbox"
    generate_world(root, **WORLD)
    return root


@pytest.fixture(scope="session")
def truth(world: Path) -> dict:
    """The ground-truth summary of the session's world."""
    return json.loads((world / "truth" / "summary.json").read_text())


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a world file."""
    with path.open() as handle:
        return [json.loads(line) for line in handle]


def write_jsonl(path: Path, records: list[dict]) -> None:
    """A world file rewritten with ``records``, one compact JSON object per line (as the world is written)."""
    path.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))


def gzip_lines(path: Path) -> int:
    """Lines of a gzip file (events of a GA4 export file)."""
    with gzip.open(path, "rt") as handle:
        return sum(1 for _ in handle)


def order_net_revenue(order: dict) -> Decimal:
    """An order's net revenue by the README definition: 0 when cancelled, else total_price minus
    successful refund transactions."""
    if order["cancelled_at"]:
        return Decimal("0")
    refunded = sum(
        (
            Decimal(transaction["amount"])
            for refund in order["refunds"]
            for transaction in refund["transactions"]
            if transaction["kind"] == "refund" and transaction["status"] == "success"
        ),
        Decimal("0"),
    )
    return Decimal(order["total_price"]) - refunded


def is_linkable(order: dict) -> bool:
    """Whether a source can link the order to anyone (a customer, an email or a phone)."""
    return bool(order["customer"] or (order["email"] or "").strip() or (order["phone"] or "").strip())


# The test instance queues runs but never launches one, so a `dagster dev` started on it (the UI
# test) cannot start runs of its own from the schedule, sensors or automation conditions.
TEST_DAGSTER_YAML = DAGSTER_YAML.replace(
    "concurrency:\n", "concurrency:\n  runs:\n    max_concurrent_runs: 0\n"
)


@pytest.fixture(scope="session")
def dagster_home(data_dir: Path) -> Path:
    """A persistent Dagster instance for the session's runs (the UI test shows what they recorded)."""
    home = data_dir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(TEST_DAGSTER_YAML)
    return home


@pytest.fixture(scope="session")
def nightly(world: Path, dagster_home: Path) -> NightlyReport:
    """One nightly run, in-process, on the session's world: the warehouse most tests read."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return run_nightly(instance)


@pytest.fixture(scope="module")
def warehouse(nightly: NightlyReport):
    """A read-only connection to the session's warehouse (modules needing temp tables define their own)."""
    assert nightly.success, nightly.render()
    with duckdb.connect(str(nightly.warehouse), read_only=True) as connection:
        yield connection


def run_dbt(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """dbt ``args`` on the warehouse in ``data_dir``, with the environment the Dagster asset gives dbt.

    Its target and logs go to ``data_dir``: the project's target holds the manifest Dagster reads.
    """
    env = {
        **os.environ,
        "SHOP360_DATA_DIR": str(data_dir),
        HASH_KEY_ENV: pipelines.hash_key(),
        AS_OF_ENV: pipelines.sandbox_as_of() or "",
        "DBT_TARGET_PATH": str(data_dir / "dbt_target"),
        "DBT_LOG_PATH": str(data_dir / "dbt_logs"),
    }
    return subprocess.run(
        [str(DBT_EXECUTABLE), *args],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def own_world(directory: Path):
    """Switch SHOP360_DATA_DIR to ``directory`` holding a small new world; the session's comes back after.

    For tests that change their world (advance it, break it) or need runs of their own.
    """
    generate_world(directory / "sandbox", seed=11, customers=250, days=30, as_of=date(2026, 6, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOP360_DATA_DIR", str(directory))
        stop_sandbox()
        try:
            yield directory
        finally:
            # also when the caller leaves its loop early (a return closes this generator): the
            # next run must not find this world's fake APIs still serving
            stop_sandbox()


@pytest.fixture(scope="session")
def long_world_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """LONG_WORLD and the warehouse one nightly run built from it: (sandbox root, warehouse file)."""
    directory = tmp_path_factory.mktemp("long_world")
    generate_world(directory / "sandbox", **LONG_WORLD)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOP360_DATA_DIR", str(directory))
        stop_sandbox()
        try:
            with dg.DagsterInstance.ephemeral() as instance:
                report = run_nightly(instance)
        finally:
            stop_sandbox()
    assert report.success, report.render()
    return directory / "sandbox", report.warehouse
