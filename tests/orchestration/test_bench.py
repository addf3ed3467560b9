"""`shop360 bench --size XS` end to end: a smoke test, so the benchmark cannot rot (no timings asserted)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import bench

STAGES = {
    "start-up",
    "shopify",
    "klaviyo",
    "ga4",
    "raw checks",
    "dbt build",
    "mart checks",
    "publish",
    "other",
}


@pytest.mark.e2e
def test_bench_xs_smoke(tmp_path: Path) -> None:
    """Every stage of the full and the incremental run is reported, the raw tables hold the world's
    ground truth after each run, and the printed table has its header."""
    output = tmp_path / "results.json"
    command = [sys.executable, "-m", "orchestration.cli", "bench", "--size", "XS"]
    command += ["--workdir", str(tmp_path), "--output", str(output)]
    # source settings left in the environment (a real account's, or an in-process run's sandbox)
    # must not divert the benchmark from its own sandbox
    stale = {"SOURCES__SHOPIFY__SHOP_URL": "http://127.0.0.1:9", "SOURCES__SHOPIFY__ACCESS_TOKEN": "x"}
    stale |= {"SOURCES__KLAVIYO__BASE_URL": "http://127.0.0.1:9", "SOURCES__KLAVIYO__API_KEY": "x"}
    stale |= {"SOURCES__GA4__BUCKET_URL": str(tmp_path / "nowhere")}
    env = {**os.environ, **stale}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    header = " ".join(bench.TABLE_HEADER).split()  # the words of the table's header line, aligned
    assert header == ["stage", "full", "s", "rows", "rows/s", "incr.", "s", "rows", "rows/s"]
    assert header in [line.split() for line in done.stdout.splitlines()], done.stdout
    targets = done.stdout.split("targets (set for size M on a 2-core machine), for reference:\n")[
        1
    ].splitlines()
    assert [line.split(":")[0] for line in targets[:4]] == [
        "  full run",
        "  peak memory",
        "  GA4 ingestion / read_json",
        "  incremental / full run",
    ]
    assert "rate limits raised" in done.stdout

    # the results file re-prints the same report
    shown = subprocess.run([*command[:4], "--show", str(output)], capture_output=True, text=True, check=True)
    assert done.stdout.startswith(shown.stdout)

    report = json.loads(output.read_text())
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["memory_gib"] > 0
    size = report["sizes"]["XS"]
    (run,) = size["runs"]
    for kind, world in (("full", size["world"]), ("incremental", size["world_advanced"])):
        result = run[kind]
        assert result["exit_code"] == 0, result["log"]
        assert set(result["stages"]) == STAGES, kind
        assert result["peak_rss_mb"] > 0
        for source in ("shopify", "klaviyo", "ga4"):
            assert set(result["stages"][source]["dlt"]["steps_s"]) == {"extract", "normalize", "load"}
        rows = result["raw_rows"]
        assert rows["raw_shopify.customers"] == world["shopify_customers"], kind
        assert rows["raw_shopify.orders"] == world["shopify_orders"], kind
        assert rows["raw_shopify.checkouts"] == world["shopify_checkouts"], kind
        assert rows["raw_klaviyo.profiles"] == world["klaviyo_profiles"], kind
        assert rows["raw_klaviyo.events"] == world["klaviyo_events"], kind
        assert rows["raw_ga4.events"] == world["ga4_events"], kind
        assert result["stages"]["dbt build"]["checks_failed"] == 0
        # check outcomes per stage add up to what the run's own summary says (a WARN is no failure)
        summary = re.search(
            r"checks: (\d+) passed, (\d+) failed, (\d+) warnings", Path(result["log"]).read_text()
        )
        counted = [
            sum(stage.get(key, 0) for stage in result["stages"].values()) for key in bench.CHECK_OUTCOMES
        ]
        assert counted == [int(number) for number in summary.groups()], kind

    # the full run loads every record; the next night only the new and changed ones
    full, incremental = run["full"]["stages"], run["incremental"]["stages"]
    assert full["ga4"]["rows"] == size["world"]["ga4_events"]
    assert 0 < incremental["ga4"]["rows"] < full["ga4"]["rows"]
    assert 0 < incremental["shopify"]["rows"] < full["shopify"]["rows"]
    # the reference reads every GA4 event and every NDJSON record of the world
    assert run["reference"]["ga4"]["rows"] == size["world"]["ga4_events"]
    assert run["reference"]["klaviyo"]["per_file"]["events"]["rows"] == size["world"]["klaviyo_events"]
    assert run["reference"]["shopify"]["per_file"]["orders"]["rows"] == size["world"]["shopify_orders"]
    summary = size["summary"]
    assert summary["full"]["stages"]["dbt build"]["models"] > 0
    assert summary["ga4_over_read_json"] > 0
    assert report["scaling"] is None  # only with S and M


def test_size_argument() -> None:
    """``--size S:3`` runs S three times; a size without runs takes --repeat; bad sizes are refused."""
    assert bench._size("S:3") == ("S", 3)
    assert bench._size("M") == ("M", None)
    for bad in ("L", "S:0", "S:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench._size(bad)


def test_scaling_compares_time_with_rows() -> None:
    """With S and M both run, each stage's time ratio M/S stands beside its rows ratio."""

    def result(seconds: float, ga4_s: float, ga4_rows: int) -> dict:
        stages = {"ga4": {"wall_s": ga4_s, "rows": ga4_rows}, "other": {"wall_s": 1.0, "rows": None}}
        return {"summary": {"full": {"wall_s": seconds, "stages": stages}, "incremental": {"stages": {}}}}

    ratios = bench.scaling({"S": result(100, 10, 1000), "M": result(600, 80, 10_000)})
    assert ratios["ga4"] == {"time_ratio": 8.0, "rows_ratio": 10.0}
    assert ratios["whole run"]["time_ratio"] == 6.0
    assert ratios["other"]["rows_ratio"] is None
    table = bench.render_scaling(ratios)
    assert "time M/S" in table and "8.0" in table and "10.0" in table
    assert bench.scaling({"S": result(100, 10, 1000)}) is None


def test_targets_are_reported_met_or_missed_with_their_figures() -> None:
    summary = {
        "full": {"wall_s": 600.0, "peak_rss_mb": 3000.0},
        "incremental": {"wall_s": 63.0, "peak_rss_mb": 4100.0},  # the higher peak of the two counts
        "ga4_over_read_json": 2.01,
        "incremental_over_full": 0.105,
    }
    assert bench.target_lines(summary) == [
        "full run: 600.0 s (≤ 600 s: met)",
        "peak memory: 4,100 MB (≤ 4,096 MB: missed)",
        "GA4 ingestion / read_json: 2.01 (≤ 2: missed)",
        "incremental / full run: 10.5% (≤ 10%: missed)",
    ]
    # a run without GA4 files has no ratio to report
    assert [line.split(":")[0] for line in bench.target_lines(summary | {"ga4_over_read_json": None})] == [
        "full run",
        "peak memory",
        "incremental / full run",
    ]
