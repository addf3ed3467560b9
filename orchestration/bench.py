"""The nightly benchmark (``shop360 bench``, ``make bench``): a full and an incremental nightly run
through Dagster on a sandbox world of a fixed size, timed per stage, beside DuckDB's own
``read_json`` of the same data. A report, not a test: it asserts nothing about speed.

Per run of a size (``--size S:3`` runs it three times and reports medians):

1. Outside the timing: the world of the size (seed 42, as of 2026-06-01) and the same world advanced
   by one day are generated once and cached pristine under ``<workdir>/worlds/``; the run copies the
   first into a fresh data directory (``<workdir>/runs/<size>/``), so runs are independent.
2. Reference figures: DuckDB's ``read_json`` of the world's GA4 export files, and of its Shopify and
   Klaviyo NDJSON dumps (``world/*/*.jsonl`` of the resources the pipeline loads), each into a table
   of a scratch file, with the DuckDB settings the pipeline loads that source with.
3. The sandbox APIs are served by their own process (``python -m ingestion.sandbox.server``) with the
   rate limits raised, so the figures are shop360's and not the fake's throttle; the nightly run uses
   them through ``SHOP360_SANDBOX_URL``.
4. The full nightly: ``shop360 run`` in a child process (the command a person runs), while the
   /proc RSS of its whole process tree (dbt included) is sampled for the peak memory.
5. The world is swapped for the advanced one (``sandbox advance --days 1``), the API process restarted
   on it, and the incremental nightly timed the same way.

Per stage, from the run's Dagster event log (step start to success): each source's raw step, with
dlt's own extract/normalize/load times and rows from the pipeline's last trace; the raw checks;
``dbt build`` (rows: the rows of the models it built, from their row count metadata); the mart checks;
the BI publish. The report goes to stdout as a table and to a JSON file (every run, the medians,
the world's ground truth counts, the machine and the git commit) that later runs can be compared with.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

from ingestion import paths, pipelines, settings

SEED = 42
AS_OF = dt.date(2026, 6, 1)
# customers, days: XS is the test suite's world size (every planted case), for the smoke test
SIZES = {"XS": (400, 60), "S": (10_000, 90), "M": (100_000, 365)}
SOURCES = ("shopify", "klaviyo", "ga4")
# The sandbox's rate limits, raised far beyond what one client sends: the bench measures shop360.
RAISED_LIMITS = {
    "--shopify-bucket-size": "1000000",
    "--shopify-leak-per-second": "1000000",
    "--klaviyo-burst-per-second": "1000000",
    "--klaviyo-steady-per-minute": "100000000",
}
RSS_SAMPLE_SECONDS = 0.2
SLOWEST_MODELS = 5
SERVER_START_TIMEOUT = 900  # an M world takes a while to load into the API process
# the targets for a nightly run at size M on a 2-core machine
TARGET_FULL_RUN_S = 600
TARGET_PEAK_MB = 4096
TARGET_GA4_OVER_READ_JSON = 2
TARGET_INCREMENTAL_SHARE = 0.10
# how a stage's asset checks ended: passed, failed (severity ERROR) or warned (severity WARN)
CHECK_OUTCOMES = ("checks_passed", "checks_failed", "checks_warned")
TABLE_HEADER = ("stage", "full s", "rows", "rows/s", "incr. s", "rows", "rows/s")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """The benchmark could not measure (a failed run, a server that did not start, a bad argument)."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Worlds
# ------------------------------------------------------------------------------------------------


def world_params(size: str) -> dict:
    customers, days = SIZES[size]
    return {"seed": SEED, "customers": customers, "days": days, "as_of": AS_OF}


def _is_world(root: Path, params: dict, as_of: dt.date) -> bool:
    """Whether ``root`` holds a complete world drawn with ``params`` by this generator, ending ``as_of``."""
    from ingestion.sandbox.world import GENERATOR_VERSION

    meta_file, summary = root / "world" / "meta.json", root / "truth" / "summary.json"
    if not meta_file.exists() or not summary.exists():
        return False
    meta = json.loads(meta_file.read_text())
    expected = {**params, "as_of": as_of.isoformat(), "generator_version": GENERATOR_VERSION}
    return all(meta.get(key) == value for key, value in expected.items())


def cached_worlds(workdir: Path, size: str) -> tuple[Path, Path]:
    """The pristine world of ``size`` and the same world advanced by one day (generated when missing)."""
    from ingestion.sandbox.world import GENERATOR_VERSION, advance_world, generate_world

    params = world_params(size)
    folder = workdir / "worlds" / f"{size}-seed{SEED}-{AS_OF:%Y%m%d}-v{GENERATOR_VERSION}"
    base, advanced = folder / "base", folder / "advanced"
    if not _is_world(base, params, AS_OF):
        _log(f"generating the {size} world ({params['customers']:,} customers × {params['days']} days) …")
        shutil.rmtree(base, ignore_errors=True)
        generate_world(base, **params)
    if not _is_world(advanced, params, AS_OF + dt.timedelta(days=1)):
        _log(f"advancing a copy of the {size} world by one day …")
        shutil.rmtree(advanced, ignore_errors=True)
        partial = folder / "advanced.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(base, partial)
        advance_world(partial, 1)
        partial.rename(advanced)
    return base, advanced


def world_stats(root: Path) -> dict:
    """The ground truth counts of a world (``truth/summary.json``)."""
    summary = json.loads((root / "truth" / "summary.json").read_text())
    shopify, klaviyo = summary["shopify"], summary["klaviyo"]
    return {
        "as_of": summary["world"]["as_of"],
        "shopify_customers": shopify["customers"]["records"],
        "shopify_orders": shopify["orders"]["records"],
        "shopify_checkouts": shopify["checkouts"]["records"],
        "shopify_products": shopify["products"]["records"],
        "klaviyo_profiles": klaviyo["profiles"],
        "klaviyo_events": klaviyo["events"],
        "ga4_events": summary["ga4"]["events"],
        "ga4_files": summary["ga4"]["files"],
    }


def _replace_sandbox(pristine: Path, run_dir: Path) -> None:
    target = run_dir / "sandbox"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(pristine, target)


# ------------------------------------------------------------------------------------------------
# Reference: DuckDB's own read_json of the same data
# ------------------------------------------------------------------------------------------------


def _duckdb_config(source: str) -> dict:
    """The DuckDB settings the pipeline loads ``source`` with, as one connection's config."""
    load = pipelines.duckdb_load_settings(source)
    return {**load["global_config"], **load.get("local_config", {})}


def _read_json(files: list[Path], source: str, scratch: Path) -> dict:
    """Time ``create table as select * from read_json(files)`` into a scratch DuckDB file."""
    import duckdb

    database = scratch / f"reference_{source}.duckdb"
    database.unlink(missing_ok=True)
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    started = time.perf_counter()
    with duckdb.connect(str(database), config=_duckdb_config(source)) as connection:
        connection.execute(
            f"create table t as select * from read_json([{listed}], format='newline_delimited')"
        )
        seconds = time.perf_counter() - started
        rows = connection.execute("select count(*) from t").fetchone()[0]
    database.unlink(missing_ok=True)
    return {"wall_s": seconds, "rows": rows, "files": len(files)}


def reference_reads(sandbox: Path, scratch: Path) -> dict:
    """DuckDB ``read_json`` of the GA4 export files and of each source's NDJSON files (one table each)."""
    scratch.mkdir(parents=True, exist_ok=True)
    results = {"ga4": _read_json(sorted((sandbox / "ga4").glob(settings.GA4_FILE_GLOB)), "ga4", scratch)}
    for source in ("shopify", "klaviyo"):
        loaded = set(pipelines.describe_source(source).resources)  # the dumps of what the pipeline loads
        per_file = {
            path.stem: _read_json([path], source, scratch)
            for path in sorted((sandbox / "world" / source).glob("*.jsonl"))
            if path.stem in loaded
        }
        results[source] = {
            "wall_s": sum(result["wall_s"] for result in per_file.values()),
            "rows": sum(result["rows"] for result in per_file.values()),
            "files": len(per_file),
            "per_file": per_file,
        }
    return results


# ------------------------------------------------------------------------------------------------
# The sandbox API process and the timed nightly run
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def sandbox_server(sandbox: Path, log_file: Path):
    """Serve ``sandbox`` from its own process with raised rate limits; yields its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "ingestion.sandbox.server", "--root", str(sandbox), "--port", str(port)]
    for option, value in RAISED_LIMITS.items():
        command += [option, value]
    with open(log_file, "ab") as log:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:  # the port opens once the world is loaded
            if server.poll() is not None:
                raise BenchError(f"the sandbox server exited with {server.returncode}; see {log_file}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the sandbox server did not start in {SERVER_START_TIMEOUT} s; see {log_file}"
                )
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def tree_rss(root_pid: int) -> int:
    """Bytes resident in ``root_pid`` and all its descendants (the sum of their RSS), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(entry.path, "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and ")"
            children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        pending.extend(children.get(pid, []))
    return total


def run_child(command: list[str], env: dict[str, str], log_file: Path) -> tuple[int, float, int, float]:
    """Run ``command``; its exit code, wall seconds, the peak RSS of its process tree (bytes) and
    when it started (epoch seconds)."""
    peak = 0
    started_at, started = time.time(), time.perf_counter()
    with open(log_file, "wb") as log:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(RSS_SAMPLE_SECONDS):
                peak = max(peak, tree_rss(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            child.wait()
        finally:
            done.set()
            sampler.join()
            if child.poll() is None:
                child.kill()
                child.wait()
    return child.returncode, time.perf_counter() - started, peak, started_at


def timed_nightly(run_dir: Path, url: str, label: str) -> dict:
    """``shop360 run`` against the sandbox at ``url`` in ``run_dir``; its stages, rows and peak memory."""
    home = run_dir / "dagster_home"
    # the run must see the sandbox only: drop source settings this process may carry (real accounts,
    # or an earlier in-process run's sandbox), which would otherwise switch the child to them
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("SOURCES__")}
    env = {
        **inherited,
        "SHOP360_DATA_DIR": str(run_dir),
        "DAGSTER_HOME": str(home),
        "SHOP360_SANDBOX_URL": url,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    log_file = run_dir / f"{label}.log"
    command = [sys.executable, "-m", "orchestration.cli", "run"]
    code, seconds, peak, started_at = run_child(command, env, log_file)
    result = {"exit_code": code, "wall_s": seconds, "peak_rss_mb": peak / 2**20, "log": str(log_file)}
    result.update(read_run(home))
    stages = result["stages"]
    for source in SOURCES:
        if source in stages:
            stages[source]["dlt"] = dlt_steps(run_dir, source)
            stages[source]["rows"] = stages[source]["dlt"].get("rows")  # loaded now, not the table's
    # interpreter, imports, definitions and dbt manifest, the GA4 days to load: before the first step
    startup = (result.pop("first_step_at") or started_at) - started_at
    stages["start-up"] = {"wall_s": startup, "rows": None}
    stages["other"] = {"wall_s": seconds - sum(stage["wall_s"] for stage in stages.values()), "rows": None}
    result["raw_rows"] = raw_table_rows(run_dir / "warehouse.duckdb")
    if code != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
        _log(f"the {label} run exited with {code} (the figures are kept); {log_file} ends:\n{tail}")
    return result


def _stage_of(step_key: str) -> str:
    """The report's stage of a Dagster step: a source, checks, dbt build or publish."""
    if step_key.endswith("_raw_checks") or step_key == "mart_checks":
        return "raw checks" if step_key != "mart_checks" else "mart checks"
    if step_key.endswith("_raw") and step_key.removesuffix("_raw") in SOURCES:
        return step_key.removesuffix("_raw")
    return {"dbt_models": "dbt build", "bi__snapshot": "publish"}.get(step_key, step_key)


def read_run(home: Path) -> dict:
    """The stages of the newest run in the Dagster instance at ``home``: step times from the event
    log, rows from the materialisation metadata, checks from the check evaluations."""
    import dagster as dg

    kinds = dg.DagsterEventType
    stages: dict[str, dict] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            raise BenchError(f"no Dagster run in {home}")
        run = runs[0]
        started: dict[str, float] = {}
        first_step = None
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            stage = stages.setdefault(
                _stage_of(event.step_key),
                {"wall_s": 0.0, "rows": None, "steps": [], **dict.fromkeys(CHECK_OUTCOMES, 0)},
            )
            if event.event_type == kinds.STEP_START:
                started[event.step_key] = entry.timestamp
                first_step = min(first_step or entry.timestamp, entry.timestamp)
            elif event.event_type in (kinds.STEP_SUCCESS, kinds.STEP_FAILURE):
                stage["wall_s"] += entry.timestamp - started.pop(event.step_key, entry.timestamp)
                stage["steps"].append(event.step_key)
                if event.event_type == kinds.STEP_FAILURE:
                    stage["failed"] = True
            elif event.event_type == kinds.ASSET_MATERIALIZATION:
                meta = event.step_materialization_data.materialization.metadata
                if "dagster/row_count" in meta:  # a table's rows after the step (views have none)
                    stage["rows"] = (stage["rows"] or 0) + meta["dagster/row_count"].value
                if "Execution Duration" in meta:  # dagster-dbt's, from dbt's run results
                    stage.setdefault("models_s", {})[event.asset_key.to_user_string()] = meta[
                        "Execution Duration"
                    ].value
            elif event.event_type == kinds.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                if evaluation.passed:
                    stage["checks_passed"] += 1
                elif evaluation.severity == dg.AssetCheckSeverity.WARN:  # reported, the run goes on
                    stage["checks_warned"] += 1
                else:
                    stage["checks_failed"] += 1
    return {"run_id": run.run_id, "status": run.status.value, "stages": stages, "first_step_at": first_step}


def dlt_steps(run_dir: Path, source: str) -> dict:
    """dlt's extract/normalize/load seconds of the source's last load, and the rows it normalised."""
    import dlt

    pipeline = dlt.attach(pipeline_name=f"shop360_{source}", pipelines_dir=str(run_dir / "dlt_pipelines"))
    trace = pipeline.last_trace
    if trace is None:
        return {}
    steps = {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in trace.steps
        if step.step in ("extract", "normalize", "load") and step.started_at and step.finished_at
    }
    normalized = trace.last_normalize_info
    row_counts = normalized.row_counts if normalized else {}
    rows = sum(count for table, count in row_counts.items() if not table.startswith("_dlt"))
    return {"steps_s": steps, "rows": rows, "row_counts": dict(row_counts)}


def raw_table_rows(warehouse: Path) -> dict[str, int]:
    """Rows of every raw table (not dlt's own) after the run, ``schema.table`` -> rows."""
    import duckdb

    if not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name like 'raw\\_%' escape '\\' and schema_name not like '%\\_staging' escape '\\' "
            "and table_name not like '\\_dlt%' escape '\\'"
        ).fetchall()
        return {
            f"{schema}.{table}": connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[
                0
            ]
            for schema, table in sorted(tables)
        }


def one_run(size: str, worlds: tuple[Path, Path], workdir: Path) -> dict:
    """References, the full and the incremental nightly run on a fresh copy of the size's world."""
    base, advanced = worlds
    run_dir = workdir / "runs" / size
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    _replace_sandbox(base, run_dir)
    _log("  DuckDB read_json of the same files …")
    references = reference_reads(run_dir / "sandbox", run_dir / "scratch")
    # other work on the machine slows whichever stage it hits: the report shows how busy it was
    results = {"reference": references, "load_average_1m": {"before": os.getloadavg()[0]}}
    for label, pristine in (("full", base), ("incremental", advanced)):
        if label == "incremental":
            _replace_sandbox(pristine, run_dir)  # `sandbox advance --days 1`, from the cache
        with sandbox_server(run_dir / "sandbox", run_dir / "sandbox_server.log") as url:
            _log(f"  {label} nightly run …")
            results[label] = timed_nightly(run_dir, url, label)
    shutil.rmtree(run_dir / "scratch", ignore_errors=True)
    results["load_average_1m"]["after"] = os.getloadavg()[0]
    return results


# ------------------------------------------------------------------------------------------------
# Summaries and the report
# ------------------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[dict]) -> dict:
    """Per run kind (full, incremental) and stage, the median seconds and rows over ``runs``; the
    largest peak memory; the median reference figures."""
    summary: dict[str, dict] = {}
    for kind in ("full", "incremental"):
        stages: dict[str, dict] = {}
        for name in runs[0][kind]["stages"]:
            present = [run[kind]["stages"][name] for run in runs if name in run[kind]["stages"]]
            stage = {
                "wall_s": _median([item["wall_s"] for item in present]),
                "rows": _median([item.get("rows") for item in present]),
            }
            if "dlt" in present[0]:
                stage["rows"] = _median([item["dlt"].get("rows") for item in present])
                stage["dlt_s"] = {
                    step: _median([item["dlt"].get("steps_s", {}).get(step) for item in present])
                    for step in ("extract", "normalize", "load")
                }
            if "models_s" in present[0]:
                models = present[0]["models_s"]
                stage["models"] = len(models)
                stage["tests"] = sum(present[0][key] for key in CHECK_OUTCOMES)
                stage["models_s_sum"] = _median([sum(item["models_s"].values()) for item in present])
                slowest = sorted(models, key=models.get, reverse=True)[:SLOWEST_MODELS]
                stage["slowest_models_s"] = {
                    model: _median([item["models_s"].get(model) for item in present]) for model in slowest
                }
            stages[name] = stage
        summary[kind] = {
            "wall_s": _median([run[kind]["wall_s"] for run in runs]),
            "peak_rss_mb": max(run[kind]["peak_rss_mb"] for run in runs),
            "stages": stages,
            "all_succeeded": all(run[kind]["exit_code"] == 0 for run in runs),
        }
    summary["reference"] = {
        source: {
            "wall_s": _median([run["reference"][source]["wall_s"] for run in runs]),
            "rows": runs[0]["reference"][source]["rows"],
        }
        for source in runs[0]["reference"]
    }
    ga4 = summary["full"]["stages"].get("ga4", {}).get("wall_s")
    summary["ga4_over_read_json"] = ga4 / summary["reference"]["ga4"]["wall_s"] if ga4 else None
    summary["incremental_over_full"] = summary["incremental"]["wall_s"] / summary["full"]["wall_s"]
    return summary


def _rate(rows: float | None, seconds: float | None) -> str:
    return f"{rows / seconds:,.0f}" if rows and seconds and seconds > 0 else ""


def _cells(stage: dict | None, seconds: float | None = None, rows: float | None = None) -> list[str]:
    if stage is not None:
        seconds, rows = stage["wall_s"], stage["rows"]
    if seconds is None:
        return ["", "", ""]
    return [f"{seconds:.2f}", f"{rows:,.0f}" if rows is not None else "", _rate(rows, seconds)]


def stage_names(summary: dict) -> list[str]:
    order = ["start-up", *SOURCES, "raw checks", "dbt build", "mart checks", "publish"]
    present = set(summary["full"]["stages"]) | set(summary["incremental"]["stages"])
    return [name for name in order if name in present] + sorted(present - {*order, "other"}) + ["other"]


def render_table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _load_range(runs: list[dict]) -> str:
    loads = [value for run in runs for value in run.get("load_average_1m", {}).values()]
    return f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} CPUs" if loads else "not recorded"


def render_size(size: str, result: dict) -> str:
    summary, stats, params = result["summary"], result["world"], world_params(size)
    full, incremental = summary["full"], summary["incremental"]
    runs = len(result["runs"])
    lines = [
        f"size {size}: {params['customers']:,} customers × {params['days']} days (seed {SEED}, as of "
        f"{AS_OF}): {stats['shopify_customers']:,} Shopify customers, {stats['shopify_orders']:,} orders, "
        f"{stats['shopify_checkouts']:,} checkouts, {stats['klaviyo_profiles']:,} Klaviyo profiles, "
        f"{stats['klaviyo_events']:,} Klaviyo events, {stats['ga4_events']:,} GA4 events in "
        f"{stats['ga4_files']} files",
        f"{runs} run{'s' if runs > 1 else ''} (load average {_load_range(result['runs'])})"
        + (", medians" if runs > 1 else "")
        + "; incremental = the next night after `sandbox advance --days 1`",
        "",
    ]
    table = [list(TABLE_HEADER)]
    for name in stage_names(summary):
        f_stage, i_stage = full["stages"].get(name), incremental["stages"].get(name)
        label = {
            "start-up": "start-up (imports, definitions)",
            "other": "other (Dagster, summary)",
            **{source: f"{source} raw" for source in SOURCES},
        }.get(name, name)
        table.append([label, *_cells(f_stage), *_cells(i_stage)])
        if f_stage and "dlt_s" in f_stage:
            for step in ("extract", "normalize", "load"):
                f_s = f_stage["dlt_s"].get(step)
                i_s = (i_stage or {}).get("dlt_s", {}).get(step)
                table.append(
                    [
                        f"  dlt {step}",
                        *_cells(None, f_s, f_stage["rows"]),
                        *_cells(None, i_s, (i_stage or {}).get("rows")),
                    ]
                )
    table.append(["whole run", *_cells(None, full["wall_s"]), *_cells(None, incremental["wall_s"])])
    table.append(
        [
            "peak memory MB (process tree)",
            f"{full['peak_rss_mb']:,.0f}",
            "",
            "",
            f"{incremental['peak_rss_mb']:,.0f}",
            "",
            "",
        ]
    )
    lines += render_table(table)
    for kind, figures in (("full", full), ("incremental", incremental)):
        dbt = figures["stages"].get("dbt build")
        if dbt and "models" in dbt:
            slowest = ", ".join(
                f"{model.split('/')[-1]} {seconds:.1f}" for model, seconds in dbt["slowest_models_s"].items()
            )
            lines.append(
                f"dbt build ({kind}): {dbt['models']} models, {dbt['tests']} tests; the models' own time "
                f"{dbt['models_s_sum']:.1f} s; slowest: {slowest}"
            )
    lines += ["", "reference (same run): DuckDB read_json of the same files into a table"]
    reference = [["data", "s", "rows", "rows/s"]]
    titles = {"ga4": "GA4 export files", "shopify": "Shopify NDJSON", "klaviyo": "Klaviyo NDJSON"}
    for source, figures in summary["reference"].items():
        reference.append(
            [
                titles[source],
                f"{figures['wall_s']:.2f}",
                f"{figures['rows']:,}",
                _rate(figures["rows"], figures["wall_s"]),
            ]
        )
    lines += render_table(reference)
    lines += ["", f"targets (set for size M on a 2-core machine){'' if size == 'M' else ', for reference'}:"]
    lines += [f"  {line}" for line in target_lines(summary)]
    if not (full["all_succeeded"] and incremental["all_succeeded"]):
        lines.append("NOTE: a nightly run did not succeed (see the logs in the JSON file)")
    return "\n".join(lines)


def target_lines(summary: dict) -> list[str]:
    """Each of the issue's targets with the figure and whether it was met."""
    full, incremental = summary["full"], summary["incremental"]
    peak_mb = max(full["peak_rss_mb"], incremental["peak_rss_mb"])
    ga4, share = summary["ga4_over_read_json"], summary["incremental_over_full"]
    figures = [
        (
            "full run",
            full["wall_s"] <= TARGET_FULL_RUN_S,
            f"{full['wall_s']:.1f} s",
            f"{TARGET_FULL_RUN_S} s",
        ),
        ("peak memory", peak_mb <= TARGET_PEAK_MB, f"{peak_mb:,.0f} MB", f"{TARGET_PEAK_MB:,} MB"),
    ]
    if ga4 is not None:  # a run without GA4 files has no ratio
        ga4_met = ga4 <= TARGET_GA4_OVER_READ_JSON
        figures.append(("GA4 ingestion / read_json", ga4_met, f"{ga4:.2f}", f"{TARGET_GA4_OVER_READ_JSON}"))
    share_met = share <= TARGET_INCREMENTAL_SHARE
    figures.append(("incremental / full run", share_met, f"{share:.1%}", f"{TARGET_INCREMENTAL_SHARE:.0%}"))
    return [
        f"{name}: {shown} (≤ {limit}: {'met' if met else 'missed'})" for name, met, shown, limit in figures
    ]


def scaling(results: dict) -> dict | None:
    """Stage time M/S against rows M/S, when both sizes ran."""
    if not {"S", "M"} <= set(results):
        return None
    small, big = results["S"]["summary"]["full"], results["M"]["summary"]["full"]
    out = {}
    for name in stage_names(results["M"]["summary"]):
        s_stage, m_stage = small["stages"].get(name), big["stages"].get(name)
        if not s_stage or not m_stage:
            continue
        out[name] = {
            "time_ratio": m_stage["wall_s"] / s_stage["wall_s"] if s_stage["wall_s"] else None,
            "rows_ratio": m_stage["rows"] / s_stage["rows"] if s_stage["rows"] and m_stage["rows"] else None,
        }
    out["whole run"] = {"time_ratio": big["wall_s"] / small["wall_s"], "rows_ratio": None}
    return out


def render_scaling(ratios: dict) -> str:
    table = [["stage (full run)", "time M/S", "rows M/S"]]
    for name, ratio in ratios.items():
        table.append(
            [
                name,
                f"{ratio['time_ratio']:.1f}" if ratio["time_ratio"] else "",
                f"{ratio['rows_ratio']:.1f}" if ratio["rows_ratio"] else "",
            ]
        )
    return "\n".join(["scaling from S to M", *render_table(table)])


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        root = paths.PROJECT_ROOT
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        )
        if dirty.stdout.strip():
            commit += "-dirty"
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0],
        "git_commit": commit,
        "versions": {name: _version(name) for name in ("dlt", "duckdb", "dagster", "dbt-core", "dbt-duckdb")},
    }


def run_bench(plan: list[tuple[str, int]], workdir: Path) -> dict:
    """Run every (size, runs) of ``plan``; the report."""
    report = {
        "benchmark": "nightly",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "sandbox_rate_limits": "raised: "
        + ", ".join(f"{key.lstrip('-')}={value}" for key, value in RAISED_LIMITS.items()),
        "sizes": {},
    }
    for size, count in plan:
        worlds = cached_worlds(workdir, size)
        runs = []
        for attempt in range(1, count + 1):
            _log(f"size {size}, run {attempt}/{count}:")
            runs.append(one_run(size, worlds, workdir))
        report["sizes"][size] = {
            "params": {**world_params(size), "as_of": AS_OF.isoformat()},
            "world": world_stats(worlds[0]),
            "world_advanced": world_stats(worlds[1]),
            "runs": runs,
            "summary": summarise(runs),
        }
    report["scaling"] = scaling(report["sizes"])
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return report


def render(report: dict) -> str:
    machine = report["machine"]
    out = [
        f"shop360 nightly benchmark ({machine['cpu_count']} CPUs, {machine['memory_gib']} GiB RAM, "
        f"commit {machine['git_commit']})",
        "sandbox APIs in their own process, rate limits raised (the bench measures shop360, not the fake)",
    ]
    for size, result in report["sizes"].items():
        out += ["", render_size(size, result)]
    if report["scaling"]:
        out += ["", render_scaling(report["scaling"])]
    return "\n".join(out)


def _size(text: str) -> tuple[str, int | None]:
    name, _, runs = text.partition(":")
    if name not in SIZES:
        raise argparse.ArgumentTypeError(f"size must be one of {', '.join(SIZES)}, got {name!r}")
    if runs and (not runs.isdigit() or int(runs) < 1):
        raise argparse.ArgumentTypeError(f"runs must be a whole number ≥ 1, got {runs!r}")
    return name, int(runs) if runs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="shop360 bench",
        description="Time a full and an incremental nightly run per stage on sandbox worlds of fixed sizes, "
        "beside DuckDB's read_json of the same files. "
        + "; ".join(f"{name} = {c:,} customers × {d} days" for name, (c, d) in SIZES.items()),
    )
    parser.add_argument(
        "--size",
        type=_size,
        action="append",
        metavar="SIZE[:RUNS]",
        help="a world size to run (repeatable; S:3 runs S three times); default S",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of a size given without :RUNS (default 1)"
    )
    parser.add_argument("--workdir", type=Path, help="worlds and runs (default: <data dir>/bench)")
    parser.add_argument(
        "--output", type=Path, help="the JSON report (default: <workdir>/results-<time>.json)"
    )
    parser.add_argument(
        "--show", type=Path, metavar="FILE", help="print the report of an earlier results file"
    )
    args = parser.parse_args(argv)
    if args.show:
        print(render(json.loads(args.show.read_text())))
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    plan = [(name, runs or args.repeat) for name, runs in (args.size or [("S", None)])]
    workdir = (args.workdir or paths.data_dir() / "bench").resolve()
    output = args.output or workdir / f"results-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    try:
        report = run_bench(plan, workdir)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nresults: {output}")
    failed = any(
        not result["summary"][kind]["all_succeeded"]
        for result in report["sizes"].values()
        for kind in ("full", "incremental")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
