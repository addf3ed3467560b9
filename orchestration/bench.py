"""GA4 ingestion benchmark: shop360's dlt GA4 source against DuckDB's own ``read_json`` on one file.

The target (from the issue): ingesting one GA4 export file of 1,000,000 events takes at most twice
as long as DuckDB's ``read_json`` of the same file in the same run, with a peak memory under 1.5 GB.
``make bench`` (``python -m orchestration.bench``) prints both figures; it is a report, not a test.

1. Outside the timing, one gzip NDJSON export file ``<workdir>/ga4/events_20260101.json.gz`` with
   exactly N events is built from a small sandbox world (``seed_customers(N)`` customers, 30 days):
   its GA4 lines are cycled, every copy with its own ``user_pseudo_id`` / ``ga_session_id`` suffix
   (so copies are distinct sessions) and ``event_date`` 20260101. The file is reused while it
   holds N lines.
2. Each measurement runs in a fresh child process (``--measure``), so its peak RSS is its own: the
   parent reaps the child with ``os.wait4`` and reads that child's ``ru_maxrss`` (the largest of the
   child and anything it spawned and reaped; not the sum of processes running at once).
   * ``reference``: DuckDB ``create table t as select * from read_json(<file>)`` into a scratch file;
   * ``shop360``: ``dlt.pipeline(...).run(ga4_source(bucket_url=<folder>))`` into a scratch DuckDB
     file (dataset ``raw_ga4``): the source and the destination settings the nightly job runs
     (``ingestion.pipelines.warehouse_destination("ga4", …)``), with a fresh pipeline directory.
   Wall and CPU seconds cover the work only (open → load → close), not interpreter start-up or
   imports; both scratch databases must hold exactly N rows afterwards, or the benchmark fails.
   With ``--repeat K`` the two alternate K times and the report gives medians (and every run).
3. The report (a table on stdout, the same as JSON in ``--json``, default ``<workdir>/bench_ga4.json``)
   gives wall and CPU seconds, rows, rows/s and peak RSS per measurement, dlt's own per-step times
   (extract/normalize/load), the ratio shop360/reference, whether the targets are met, the CPU
   count, the load average and the dlt/duckdb/pyarrow versions. The exit code is 0 when the
   measurements ran, targets met or not, and 1 when one failed.

The ratio is only as good as the machine is quiet: other work during a run slows whichever
measurement it hits, so the table shows the load average, and the CPU-time ratio beside the wall
ratio. Knobs for trying changes without editing the source: ``--dlt-config KEY=VALUE`` (dlt's
environment variable names, e.g. ``DATA_WRITER__ROW_GROUP_SIZE=122880``), ``--loader-file-format``,
``--source module:function`` (a candidate GA4 source), and ``--profile`` (cProfile on the first
shop360 run, timings inflated; hot spots in ``<workdir>/profile_shop360.txt``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from importlib import metadata
from pathlib import Path

from ingestion import paths

DEFAULT_EVENTS = 1_000_000
EXPORT_DATE = "20260101"
EXPORT_NAME = f"events_{EXPORT_DATE}.json.gz"
RATIO_TARGET = 2.0
PEAK_RSS_TARGET_MB = 1536  # 1.5 GB, in MiB like ru_maxrss
# The world the export file is cycled from: about 22 GA4 events per customer over its 30 days, and
# seed_customers() customers, so 1,000,000 events repeat a 65,000-event world (2 s to draw) 16 times.
SEED_WORLD = {"seed": 42, "days": 30, "as_of": dt.date(2026, 1, 1)}
SEED_CUSTOMERS = (100, 3000)  # at least, at most
MEASUREMENTS = ("reference", "shop360")
PIPELINE_NAME = "shop360_ga4"  # as in the nightly job (ingestion.pipelines.make_pipeline)
DATASET = "raw_ga4"
DEFAULT_SOURCE = "ingestion.ga4:ga4_source"
_COPY_MARK = "@@shop360-bench-copy@@"
_WRITE_BATCH = 20_000  # lines per gzip write
GZIP_LEVEL = 4  # as the sandbox writes its GA4 files


class BenchError(RuntimeError):
    """The benchmark could not measure (a failed child, a wrong row count, a bad argument)."""


# ------------------------------------------------------------------------------------------------
# The export file
# ------------------------------------------------------------------------------------------------


def count_lines(path: Path) -> int | None:
    """Lines in a gzip file, or None if it is missing or not a complete gzip file."""
    if not path.exists():
        return None
    lines = 0
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                lines += chunk.count(b"\n")
    except (OSError, EOFError, zlib.error):
        return None
    return lines


def _template(line: str) -> list[str]:
    """One event line cut where a copy's suffix goes (after ``user_pseudo_id`` and ``ga_session_id``)."""
    if _COPY_MARK in line:
        raise BenchError(f"a GA4 line already holds the copy mark {_COPY_MARK!r}")
    record = json.loads(line)
    record["event_date"] = EXPORT_DATE
    if isinstance(record.get("user_pseudo_id"), str):
        record["user_pseudo_id"] += _COPY_MARK
    session_ids = []
    for param in record.get("event_params") or []:
        value = param.get("value") or {}
        if param.get("key") == "ga_session_id" and isinstance(value.get("int_value"), int):
            session_ids.append(str(value["int_value"]))
            value["int_value"] = f"{value['int_value']}{_COPY_MARK}"
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    for session_id in session_ids:  # the marked number went out as a JSON string: unquote it
        text = text.replace(f'"{session_id}{_COPY_MARK}"', f"{session_id}{_COPY_MARK}")
    return text.split(_COPY_MARK)


def seed_customers(events: int) -> int:
    """Customers of the seed world for a file of ``events`` events: fewer repeats, but a small world."""
    low, high = SEED_CUSTOMERS
    return min(high, max(low, events // 300))


def _seed_lines(world_root: Path, customers: int) -> list[list[str]]:
    """The templates of every GA4 line of a freshly drawn small world, in file order."""
    from ingestion.sandbox.world import generate_world

    generate_world(world_root, customers=customers, **SEED_WORLD)
    templates = []
    for day_file in sorted((world_root / "ga4").glob("events_*.json.gz")):
        with gzip.open(day_file, "rt", encoding="utf-8") as handle:
            templates.extend(_template(line) for line in handle if line.strip())
    if not templates:
        raise BenchError(f"the seed world in {world_root} has no GA4 events")
    return templates


def build_export(workdir: Path, events: int) -> tuple[Path, bool]:
    """``<workdir>/ga4/events_20260101.json.gz`` with exactly ``events`` lines; (path, built now?)."""
    target = workdir / "ga4" / EXPORT_NAME
    if count_lines(target) == events:
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    world_root = workdir / "seed_world"
    templates = _seed_lines(world_root, seed_customers(events))
    copies = -(-events // len(templates))
    width = len(str(copies - 1))
    partial = target.with_name(target.name + ".part")  # outside the source's glob while it is written
    with (
        open(partial, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as zipped,
    ):
        batch: list[str] = []
        for index in range(events):
            copy, position = divmod(index, len(templates))
            batch.append(f"{copy:0{width}d}".join(templates[position]))
            if len(batch) == _WRITE_BATCH:
                zipped.write(("\n".join(batch) + "\n").encode("utf-8"))
                batch.clear()
        if batch:
            zipped.write(("\n".join(batch) + "\n").encode("utf-8"))
    os.replace(partial, target)
    shutil.rmtree(world_root, ignore_errors=True)
    return target, True


# ------------------------------------------------------------------------------------------------
# The measurements (each runs in a child process: `python -m orchestration.bench --measure ...`)
# ------------------------------------------------------------------------------------------------


def _count_rows(database: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(f"select count(*) from {table}").fetchone()[0]


def _cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure_reference(export: Path, scratch: Path) -> dict:
    """DuckDB's own NDJSON reader: the whole file into one table of a scratch database."""
    import duckdb

    database = scratch / "reference.duckdb"
    quoted = str(export).replace("'", "''")
    cpu, started = _cpu_seconds(), time.perf_counter()
    connection = duckdb.connect(str(database))
    connection.execute(f"create table t as select * from read_json('{quoted}', format='newline_delimited')")
    connection.close()
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "rows": _count_rows(database, "t"), "steps": {}}


def _load_source(spec: str) -> object:
    """The source factory named ``module:function``."""
    module_name, _, function_name = spec.partition(":")
    if not function_name:
        raise BenchError(f"--source must look like module:function, got {spec!r}")
    return getattr(importlib.import_module(module_name), function_name)


def _measure_shop360(
    export: Path, scratch: Path, loader_file_format: str | None, profile: Path | None, source: str
) -> dict:
    """The nightly job's GA4 source, through a dlt pipeline into a scratch DuckDB file."""
    import dlt

    from ingestion.pipelines import warehouse_destination

    ga4_source = _load_source(source)

    database = scratch / "shop360.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=warehouse_destination("ga4", database),  # the nightly job's load settings
        dataset_name=DATASET,
        pipelines_dir=str(scratch / "dlt_pipelines"),
    )
    run_options = {"loader_file_format": loader_file_format} if loader_file_format else {}
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    cpu, started = _cpu_seconds(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    pipeline.run(ga4_source(bucket_url=str(export.parent)), **run_options)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    if profiler is not None:
        _write_profile(profiler, profile)
    steps = {}
    for step in pipeline.last_trace.steps:
        if step.started_at and step.finished_at and step.step != "run":
            steps[step.step] = (step.finished_at - step.started_at).total_seconds()
    rows = _count_rows(database, f"{DATASET}.events")
    return {"wall_s": wall, "cpu_s": cpu, "rows": rows, "steps": steps}


def _write_profile(profiler: object, path: Path) -> None:
    """cProfile's raw stats (``.prof``) and the top functions by cumulative and own time (``.txt``)."""
    import io
    import pstats

    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path.with_suffix(".prof")))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    path.with_suffix(".txt").write_text(text.getvalue())


def _child(args: argparse.Namespace) -> int:
    scratch = Path(args.scratch)
    export = Path(args.file)
    if args.measure == "reference":
        result = _measure_reference(export, scratch)
    else:
        profile = Path(args.profile_to) if args.profile_to else None
        result = _measure_shop360(export, scratch, args.loader_file_format, profile, args.source)
    Path(args.result).write_text(json.dumps(result))
    return 0


def run_measurement(
    name: str,
    export: Path,
    workdir: Path,
    *,
    dlt_config: dict[str, str],
    loader_file_format: str | None = None,
    profile: Path | None = None,
    source: str = DEFAULT_SOURCE,
) -> dict:
    """Run one measurement in a fresh child process; its result with the child's peak RSS."""
    scratch = workdir / "scratch" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    result_file = scratch / "result.json"
    log_file = workdir / "logs" / f"{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "orchestration.bench", "--measure", name, "--file", str(export)]
    command += ["--scratch", str(scratch), "--result", str(result_file)]
    if loader_file_format:
        command += ["--loader-file-format", loader_file_format]
    if profile is not None:
        command += ["--profile-to", str(profile)]
    if name == "shop360":
        command += ["--source", source]
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **dlt_config}
    started = time.perf_counter()
    with open(log_file, "wb") as log:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
        child.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - started
    if child.returncode != 0 or not result_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise BenchError(f"the {name} measurement failed (exit {child.returncode}); {log_file} ends:\n{tail}")
    result = json.loads(result_file.read_text())
    shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(OSError):
        scratch.parent.rmdir()  # only when no other scratch is left
    result["process_s"] = process_s  # the child's whole life: start-up, imports, work, checks
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    result["rows_per_s"] = result["rows"] / result["wall_s"] if result["wall_s"] > 0 else None
    return result


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(report: dict) -> str:
    """The report as a small aligned table."""
    export, targets, machine = report["file"], report["targets"], report["machine"]
    repeated = report["config"]["repeat"] > 1
    header = (
        "measurement",
        "wall s" + (" (median)" if repeated else ""),
        "CPU s",
        "rows",
        "rows/s",
        "peak RSS MB",
    )
    rows = [
        (
            name,
            f"{result['wall_s']:.2f}",
            f"{result['cpu_s']:.2f}",
            f"{result['rows']:,}",
            f"{result['rows_per_s']:,.0f}",
            f"{result['peak_rss_mb']:,.0f}",
        )
        for name, result in report["measurements"].items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    versions = ", ".join(f"{name} {version}" for name, version in report["versions"].items())
    out = [
        f"GA4 ingestion benchmark: {report['events']:,} events in {export['path']} "
        f"({export['bytes'] / 2**20:,.1f} MiB gzip{', built now' if export['built'] else ', cached'})",
        f"{machine['cpu_count']} CPUs (load average {machine['load_average_1m']['before']:.1f} before), "
        f"Python {machine['python']}, {versions}",
    ]
    settings = dict(report["config"]["dlt_config"])
    if report["config"]["source"] != DEFAULT_SOURCE:
        settings["source"] = report["config"]["source"]
    if report["config"]["loader_file_format"]:
        settings["loader_file_format"] = report["config"]["loader_file_format"]
    if settings:
        out.append("shop360 dlt settings: " + ", ".join(f"{key}={value}" for key, value in settings.items()))
    out += ["", line(header), line(tuple("-" * width for width in widths)), *map(line, rows), ""]
    if repeated:
        for name, result in report["measurements"].items():
            out.append(f"{name} runs: " + ", ".join(f"{run['wall_s']:.2f}" for run in result["runs"]) + " s")
    steps = report["measurements"]["shop360"]["steps"]
    if steps:
        out.append("shop360 steps (dlt trace): " + ", ".join(f"{s} {t:.2f} s" for s, t in steps.items()))
    if report["config"]["profile"]:
        out.append(f"profiled (timings inflated by cProfile): {report['config']['profile']}")
    out.append(
        f"ratio shop360/reference: {report['ratio']:.2f}  (target ≤ {targets['ratio_max']:.1f}: "
        f"{'met' if targets['ratio_met'] else 'MISSED'}; CPU time ratio {report['cpu_ratio']:.2f})"
    )
    out.append(
        f"peak RSS shop360: {report['measurements']['shop360']['peak_rss_mb']:,.0f} MB  "
        f"(target ≤ {targets['peak_rss_max_mb']:,} MB: {'met' if targets['peak_rss_met'] else 'MISSED'})"
    )
    return "\n".join(out)


def _summarise(results: list[dict]) -> dict:
    """One measurement over its runs: median times, the largest peak RSS, and every run."""
    wall = statistics.median(result["wall_s"] for result in results)
    steps = {
        step: statistics.median(result["steps"][step] for result in results if step in result["steps"])
        for step in results[0]["steps"]
    }
    return {
        "wall_s": wall,
        "wall_s_min": min(result["wall_s"] for result in results),
        "cpu_s": statistics.median(result["cpu_s"] for result in results),
        "rows": results[0]["rows"],
        "rows_per_s": results[0]["rows"] / wall if wall > 0 else None,
        "peak_rss_mb": max(result["peak_rss_mb"] for result in results),
        "steps": steps,
        "runs": results,
    }


def run_bench(
    events: int,
    workdir: Path,
    *,
    dlt_config: dict[str, str] | None = None,
    loader_file_format: str | None = None,
    profile: bool = False,
    repeat: int = 1,
    source: str = DEFAULT_SOURCE,
    log: object = print,
) -> dict:
    """Build (or reuse) the export file, run both measurements ``repeat`` times, and return the report."""
    dlt_config = dict(dlt_config or {})
    log(f"preparing {events:,} GA4 events in {workdir / 'ga4'} …")
    export, built = build_export(workdir, events)
    profile_path = workdir / "profile_shop360" if profile else None
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {name: [] for name in MEASUREMENTS}
    for attempt in range(1, repeat + 1):
        for name in MEASUREMENTS:  # interleaved, so a busy spell hits both alike
            log(f"measuring {name} ({attempt}/{repeat}) …")
            result = run_measurement(
                name,
                export,
                workdir,
                dlt_config=dlt_config if name == "shop360" else {},
                loader_file_format=loader_file_format if name == "shop360" else None,
                profile=profile_path if name == "shop360" and attempt == 1 else None,
                source=source,
            )
            if result["rows"] != events:
                raise BenchError(
                    f"{name} loaded {result['rows']:,} rows into its scratch database, expected {events:,}"
                )
            runs[name].append(result)
    measurements = {name: _summarise(results) for name, results in runs.items()}
    ratio = measurements["shop360"]["wall_s"] / measurements["reference"]["wall_s"]
    cpu_ratio = measurements["shop360"]["cpu_s"] / max(measurements["reference"]["cpu_s"], 1e-9)
    return {
        "benchmark": "ga4_ingestion",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events": events,
        "file": {"path": str(export), "bytes": export.stat().st_size, "lines": events, "built": built},
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        },
        "versions": {name: _version(name) for name in ("dlt", "duckdb", "pyarrow")},
        "config": {
            "repeat": repeat,
            "source": source,
            "dlt_config": dlt_config,
            "loader_file_format": loader_file_format,
            "profile": str(profile_path.with_suffix(".txt")) if profile_path else None,
        },
        "measurements": measurements,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "targets": {
            "ratio_max": RATIO_TARGET,
            "ratio_met": ratio <= RATIO_TARGET,
            "peak_rss_max_mb": PEAK_RSS_TARGET_MB,
            "peak_rss_met": measurements["shop360"]["peak_rss_mb"] <= PEAK_RSS_TARGET_MB,
        },
    }


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="shop360 bench",
        description="GA4 ingestion benchmark: shop360's dlt source against DuckDB's read_json on one file.",
    )
    parser.add_argument("--ga4-events", type=_positive, default=DEFAULT_EVENTS, help="events in the file")
    parser.add_argument("--workdir", type=Path, help="where the file and scratch go (default: <data>/bench)")
    parser.add_argument("--json", type=Path, help="report file (default: <workdir>/bench_ga4.json)")
    parser.add_argument(
        "--dlt-config",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dlt setting for the shop360 run, as an env var name (e.g. DATA_WRITER__BUFFER_MAX_ITEMS=50000)",
    )
    parser.add_argument(
        "--loader-file-format", help="dlt loader_file_format for the shop360 run (e.g. parquet)"
    )
    parser.add_argument(
        "--repeat", type=_positive, default=1, help="run each measurement this often; report the medians"
    )
    parser.add_argument("--profile", action="store_true", help="profile the shop360 run with cProfile")
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help=f"GA4 source factory to measure as shop360, module:function (default {DEFAULT_SOURCE}); "
        "for trying a candidate change to the source",
    )
    # The child side of one measurement (run by the parent, not by people).
    parser.add_argument("--measure", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return _child(args)

    workdir = (args.workdir or paths.data_dir() / "bench").resolve()
    json_path = args.json or workdir / "bench_ga4.json"
    try:
        report = run_bench(
            args.ga4_events,
            workdir,
            dlt_config=dict(args.dlt_config),
            loader_file_format=args.loader_file_format,
            profile=args.profile,
            repeat=args.repeat,
            source=args.source,
            log=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"report: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
