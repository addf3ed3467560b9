"""The GA4 benchmark runs end to end on a small file (a smoke test: no timing assertions)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from orchestration import bench

EVENTS = 2000


def test_bench_smoke(tmp_path: Path, capsys) -> None:
    """Both measurements load every event of the built file, and the report says so."""
    report_path = tmp_path / "report.json"
    argv = ["--ga4-events", str(EVENTS), "--workdir", str(tmp_path), "--json", str(report_path)]
    assert bench.main(argv) == 0

    report = json.loads(report_path.read_text())
    assert report["events"] == EVENTS
    assert set(report["measurements"]) == {"reference", "shop360"}
    for name, measurement in report["measurements"].items():
        assert measurement["rows"] == EVENTS, name
        assert measurement["wall_s"] > 0, name
        assert measurement["rows_per_s"] > 0, name
        assert measurement["peak_rss_mb"] > 0, name
    assert set(report["measurements"]["shop360"]["steps"]) >= {"extract", "normalize", "load"}
    assert report["ratio"] > 0
    assert isinstance(report["targets"]["ratio_met"], bool)
    assert isinstance(report["targets"]["peak_rss_met"], bool)
    assert report["machine"]["cpu_count"] >= 1
    assert set(report["versions"]) == {"dlt", "duckdb", "pyarrow"}
    assert "ratio shop360/reference" in capsys.readouterr().out

    # The file: exactly EVENTS lines of one day, copies of the seed world as distinct sessions.
    export = Path(report["file"]["path"])
    assert export == tmp_path / "ga4" / "events_20260101.json.gz"
    with gzip.open(export, "rt", encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle]
    assert len(events) == EVENTS
    assert {event["event_date"] for event in events} == {"20260101"}


def test_export_copies_are_distinct_sessions(tmp_path: Path) -> None:
    """Cycling the seed world past its end gives new cookies and session ids, and the file is reused."""
    seed_events = len(bench._seed_lines(tmp_path / "seed", bench.seed_customers(EVENTS)))
    events = seed_events + 10
    assert bench.seed_customers(events) == bench.seed_customers(EVENTS)
    export, built = bench.build_export(tmp_path / "work", events)
    assert built
    with gzip.open(export, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert len(lines) == events

    def session(event: dict) -> tuple[str, int]:
        params = {param["key"]: param["value"]["int_value"] for param in event["event_params"]}
        return event["user_pseudo_id"], params["ga_session_id"]

    first, copy = lines[0], lines[seed_events]
    assert {key: value for key, value in first.items() if key not in ("user_pseudo_id", "event_params")} == {
        key: value for key, value in copy.items() if key not in ("user_pseudo_id", "event_params")
    }
    assert session(first) != session(copy)
    assert isinstance(session(copy)[1], int)
    originals = {session(event) for event in lines[:seed_events]}
    assert not originals & {session(event) for event in lines[seed_events:]}

    assert bench.build_export(tmp_path / "work", events) == (export, False)
    assert bench.count_lines(export) == events
