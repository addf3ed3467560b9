"""The ``shop360`` command: the sandbox, the demo run, and setup steps the Makefile calls."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from ingestion import paths

DEFAULT_SEED = 42
DEFAULT_CUSTOMERS = 1000
DEFAULT_DAYS = 90

DAGSTER_YAML = """\
# Written by `shop360 prepare-dagster-home`.
concurrency:
  pools:
    # DuckDB allows one writer: the warehouse-writing assets share a pool of one slot.
    default_limit: 1
telemetry:
  enabled: false
"""


def _generate(args: argparse.Namespace) -> None:
    from ingestion.sandbox.world import generate_world

    as_of = date.fromisoformat(args.as_of) if args.as_of else None
    started = time.perf_counter()
    summary = generate_world(
        paths.sandbox_dir(), seed=args.seed, customers=args.customers, days=args.days, as_of=as_of
    )
    shopify = summary["shopify"]
    print(
        f"sandbox world in {paths.sandbox_dir()} ({time.perf_counter() - started:.1f} s): "
        f"{shopify['customers']['records']} Shopify customers, {shopify['orders']['records']} orders, "
        f"{summary['klaviyo']['profiles']} Klaviyo profiles, {summary['klaviyo']['events']} events, "
        f"{summary['ga4']['events']} GA4 events in {summary['ga4']['files']} daily files"
    )


def _advance(args: argparse.Namespace) -> None:
    from ingestion.sandbox.world import advance_world

    summary = advance_world(paths.sandbox_dir(), args.days)
    shopify = summary["shopify"]
    print(
        f"sandbox world advanced to {summary['world']['as_of']}: {shopify['customers']['records']} Shopify "
        f"customers, {shopify['orders']['records']} orders, {summary['ga4']['files']} GA4 daily files"
    )


def _serve(args: argparse.Namespace) -> None:
    from ingestion.sandbox.server import SandboxServer

    server = SandboxServer(paths.sandbox_dir(), host=args.host, port=args.port)
    server.start()
    print(f"Shopify: {server.shopify_base_url}\nKlaviyo: {server.klaviyo_base_url}\n(Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


def dbt_parse() -> None:
    """Build the dbt manifest that dagster-dbt reads when the definitions are imported."""
    from orchestration.dbt_manifest import parse_project

    parse_project()


def prepare_dagster_home() -> Path:
    """Create ``$DAGSTER_HOME`` (default ``data/dagster_home``) with shop360's instance settings."""
    home = Path(os.environ.get("DAGSTER_HOME") or paths.data_dir() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _demo(args: argparse.Namespace) -> int:
    if not (paths.sandbox_dir() / "world" / "meta.json").exists():
        _generate(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from orchestration.nightly import run_nightly

    prepare_dagster_home()
    print(f"running the nightly job on {paths.warehouse_path()} …", flush=True)
    report = run_nightly(log_level=args.log_level)
    print(report.render())
    return 0 if report.success else 1


def _backfill_ga4(args: argparse.Namespace) -> int:
    from orchestration.nightly import run_ga4_backfill
    from orchestration.retention import retention_cutoff, retention_months

    first, last = date.fromisoformat(args.first), date.fromisoformat(args.last)
    if last < first:
        raise SystemExit(f"--to {last} is before --from {first}")
    if first < (kept_from := retention_cutoff()):
        raise SystemExit(
            f"--from {first} is older than the GA4 retention period ({retention_months()} months, "
            f"SHOP360_GA4_RETENTION_MONTHS): events before {kept_from} are deleted by every run"
        )
    prepare_dagster_home()
    print(f"re-loading GA4 export days {first} to {last} into {paths.warehouse_path()} …", flush=True)
    report = run_ga4_backfill(first.isoformat(), last.isoformat())
    print(report.render())
    return 0 if report.success else 1


def _forget(args: argparse.Namespace) -> int:
    from orchestration.erasure import (
        PersonNotFound,
        WarehouseBusy,
        customer_request,
        email_request,
        forget,
        redact_request,
    )

    try:
        if args.email:
            request = email_request(args.email)
        elif args.shopify_customer_id:
            request = customer_request(args.shopify_customer_id)
        else:
            request = redact_request(Path(args.shopify_redact))
    except ValueError as error:
        print(f"shop360 forget: {error}", file=sys.stderr)
        return 2
    prepare_dagster_home()
    try:
        report = forget(
            request,
            dry_run=args.dry_run,
            wait_seconds=args.wait,
            compact=not args.no_compact,
            on_progress=lambda step: print(f"… {step}", flush=True),
        )
    except (PersonNotFound, WarehouseBusy, FileNotFoundError) as error:
        print(f"shop360 forget: {error}; nothing was changed", file=sys.stderr)
        return 1
    print(report.render())
    return 0 if report.succeeded else 1


def _export_person(args: argparse.Namespace) -> int:
    from orchestration.access import export_person
    from orchestration.erasure import PersonNotFound, WarehouseBusy, email_request

    try:
        request = email_request(args.email)
    except ValueError as error:
        print(f"shop360 export-person: {error}", file=sys.stderr)
        return 2
    try:
        report = export_person(request, Path(args.output) if args.output else None, wait_seconds=args.wait)
    except (PersonNotFound, WarehouseBusy, FileNotFoundError) as error:
        print(f"shop360 export-person: {error}", file=sys.stderr)
        return 1
    print(report.render())
    return 0


def _add_privacy_commands(commands: argparse._SubParsersAction) -> None:
    forget = commands.add_parser(
        "forget",
        help="right to erasure: remove a person from every layer and keep them out of future loads",
    )
    subject = forget.add_mutually_exclusive_group(required=True)
    subject.add_argument("--email", action="append", help="an email of the person (repeatable)")
    subject.add_argument(
        "--shopify-customer-id", action="append", help="a Shopify customer id of the person (repeatable)"
    )
    subject.add_argument(
        "--shopify-redact", metavar="FILE", help="a Shopify customers/redact webhook payload (JSON)"
    )
    forget.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")
    forget.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait this long for running jobs to finish"
    )
    forget.add_argument(
        "--no-compact",
        action="store_true",
        help="skip rewriting the warehouse file (deleted rows then stay on disk until the next compaction)",
    )
    export = commands.add_parser(
        "export-person", help="right of access: everything held about a person, as one JSON document"
    )
    export.add_argument("--email", action="append", required=True, help="an email of the person (repeatable)")
    export.add_argument(
        "--output", metavar="FILE", help="where to write it (default: data/exports/<request>.json)"
    )
    export.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait this long for a running job to finish"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop360", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_world_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--seed", type=int, default=DEFAULT_SEED)
        command.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
        command.add_argument("--days", type=int, default=DEFAULT_DAYS)
        command.add_argument("--as-of", help="the world's today (YYYY-MM-DD); default: today")

    sandbox = commands.add_parser("sandbox", help="the fake shop: generate a world, serve its APIs")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    generate = sandbox_commands.add_parser(
        "generate", help="write a deterministic world and its ground truth"
    )
    add_world_options(generate)
    advance = sandbox_commands.add_parser("advance", help="move the world forward (new and edited records)")
    advance.add_argument("--days", type=int, default=1)
    serve = sandbox_commands.add_parser("serve", help="serve the world's Shopify and Klaviyo APIs")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8360)

    demo = commands.add_parser("demo", help="generate the sandbox world if absent and run the nightly job")
    add_world_options(demo)
    run = commands.add_parser("run", help="run the nightly job now, in this process, and print its summary")
    for command in (demo, run):
        command.add_argument(
            "--log-level",
            default="WARNING",
            help="the run's console log level (the instance keeps every event)",
        )
    backfill = commands.add_parser(
        "backfill-ga4",
        help="re-load a range of GA4 export days (daily partitions) in one run and rebuild the models below",
    )
    backfill.add_argument("--from", dest="first", required=True, help="first export day (YYYY-MM-DD)")
    backfill.add_argument("--to", dest="last", required=True, help="last export day (YYYY-MM-DD)")
    _add_privacy_commands(commands)
    commands.add_parser("dbt-parse", help="build the dbt manifest (needed before loading the definitions)")
    commands.add_parser("prepare-dagster-home", help="write $DAGSTER_HOME/dagster.yaml")

    # its own options and --help: orchestration/bench.py
    commands.add_parser("bench", help="time a full and an incremental nightly run per stage", add_help=False)

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from orchestration.bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        {"generate": _generate, "advance": _advance, "serve": _serve}[args.sandbox_command](args)
    elif args.command == "demo":
        return _demo(args)
    elif args.command == "run":
        return _run(args)
    elif args.command == "backfill-ga4":
        return _backfill_ga4(args)
    elif args.command == "forget":
        return _forget(args)
    elif args.command == "export-person":
        return _export_person(args)
    elif args.command == "dbt-parse":
        dbt_parse()
    elif args.command == "prepare-dagster-home":
        print(prepare_dagster_home())
    return 0


if __name__ == "__main__":
    sys.exit(main())
