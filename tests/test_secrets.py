"""No secret leaks: the API tokens, the hash key and the alert webhook reach no log, no warehouse
table, no BI file and no Dagster storage.

A world of its own gets known fake secret values; a nightly run (recorded in a persistent Dagster
instance, alerts posted to a local webhook) runs with every log at DEBUG, and then everything it left
behind is scanned: the captured console and log records, every file under the data directory and
dbt's own files, every text column of every DuckDB file (a DuckDB file compresses strings, so it is
read through SQL, not grepped), every Parquet file. The scanners are proven to catch a planted leak.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.paths import PROJECT_ROOT
from ingestion.secrets import redact, redact_error, register_secret
from orchestration.alerts import check_failure_alert
from tests.conftest import own_world
from tests.orchestration.test_control_room import Webhook

# Distinctive fake values: nothing else in a run could contain them by chance.
FAKE_SECRETS = {
    "shopify": "shpat_f4ke5ecret0f7a3c9e1d",
    "klaviyo": "pk_f4ke5ecret2b8d4e6f0a",
    "hash_key": "hk_f4ke5ecret9c1e3a5b7c",
}
WEBHOOK_PATH_SECRET = "f4ke5ecretW3bh00kT0ken"
TEXT_TYPES = ("VARCHAR", "JSON")


def scan_duckdb(database: Path, secrets: list[str]) -> list[str]:
    """``file: schema.table.column`` of every text column of ``database`` holding a secret."""
    found = []
    with duckdb.connect(str(database), read_only=True) as connection:
        columns = connection.execute(
            "select schema_name, table_name, column_name from duckdb_columns() "
            "where not internal and (data_type in ? or data_type like '%STRUCT%' or data_type like '%[]')",
            [list(TEXT_TYPES)],
        ).fetchall()
        for schema, table, column in columns:
            for secret in secrets:
                (hits,) = connection.execute(
                    f'select count(*) from "{schema}"."{table}" where contains("{column}"::varchar, ?)',
                    [secret],
                ).fetchone()
                if hits:
                    found.append(f"{database.name}: {schema}.{table}.{column}")
    return found


def scan_parquet(file: Path, secrets: list[str]) -> list[str]:
    with duckdb.connect() as connection:
        relation = connection.read_parquet(str(file))
        found = []
        for column in relation.columns:
            for secret in secrets:
                (hits,) = connection.execute(
                    f'select count(*) from read_parquet(?) where contains("{column}"::varchar, ?)',
                    [str(file), secret],
                ).fetchone()
                if hits:
                    found.append(f"{file.name}: {column}")
        return found


def scan_sqlite(database: Path, secrets: list[str]) -> list[str]:
    """Every text value of every table of a SQLite file (Dagster's run, event and schedule storage)."""
    found = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        tables = [
            name for (name,) in connection.execute("select name from sqlite_master where type = 'table'")
        ]
        for table in tables:
            for row in connection.execute(f'select * from "{table}"'):
                text = " ".join(value if isinstance(value, str) else repr(value) for value in row)
                found += [f"{database.name}: {table}" for secret in secrets if secret in text]
    return found


def files_under(roots: list[Path]) -> list[Path]:
    """The files among ``roots`` and in the folders among them."""
    return sorted(path for root in roots for path in [root, *root.rglob("*")] if path.is_file())


def scan_files(roots: list[Path], secrets: list[str]) -> list[str]:
    """Every file under ``roots``: DuckDB, Parquet and SQLite files by their contents, the rest as bytes."""
    found = []
    for file in files_under(roots):
        if file.suffix == ".duckdb":
            found += scan_duckdb(file, secrets)
        elif file.suffix == ".parquet":
            found += scan_parquet(file, secrets)
        elif file.suffix == ".db":
            found += scan_sqlite(file, secrets)
        else:
            data = file.read_bytes()
            found += [f"{file}" for secret in secrets if secret.encode() in data]
    return found


@dataclass
class Leaks:
    directory: Path
    run: subprocess.CompletedProcess
    webhook: Webhook

    @property
    def output(self) -> str:
        return self.run.stdout + self.run.stderr

    @property
    def secrets(self) -> list[str]:
        return [*FAKE_SECRETS.values(), self.webhook.url, WEBHOOK_PATH_SECRET]

    @property
    def roots(self) -> list[Path]:
        """What shop360 wrote: the data directory (the sandbox shop's own files, whose meta.json holds
        the secrets like a real shop's .dlt/secrets.toml, left out) and dbt's target and log files."""
        written = [path for path in self.directory.iterdir() if path.name != "sandbox"]
        return [*written, PROJECT_ROOT / "transform" / "target", PROJECT_ROOT / "transform" / "logs"]


@pytest.fixture(scope="module")
def leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leaks]:
    for directory in own_world(tmp_path_factory.mktemp("secrets")):
        meta_file = directory / "sandbox" / "world" / "meta.json"
        meta = json.loads(meta_file.read_text())
        meta["api_tokens"] = {"shopify": FAKE_SECRETS["shopify"], "klaviyo": FAKE_SECRETS["klaviyo"]}
        meta["hash_key"] = FAKE_SECRETS["hash_key"]
        meta_file.write_text(json.dumps(meta, indent=2) + "\n")
        webhook = Webhook()
        webhook.url = webhook.url.replace("XXXX", WEBHOOK_PATH_SECRET)
        home = directory / "dagster_home"
        env = {
            **os.environ,
            "SHOP360_DATA_DIR": str(directory),
            "DAGSTER_HOME": str(home),
            "SHOP360_ALERT_WEBHOOK_URL": webhook.url,
            "RUNTIME__LOG_LEVEL": "DEBUG",  # dlt's own logs too
        }
        # the nightly run as a data engineer starts it, every log at DEBUG on the console
        run = subprocess.run(
            [str(Path(sys.executable).with_name("shop360")), "run", "--log-level", "DEBUG"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        with pytest.MonkeyPatch.context() as patch, dg.DagsterInstance.from_config(str(home)) as instance:
            patch.setenv("SHOP360_ALERT_WEBHOOK_URL", webhook.url)
            # the quarantine warning makes the check alert post to the webhook
            check_failure_alert(dg.build_sensor_context(instance=instance))
        webhook.server.shutdown()
        yield Leaks(directory, run, webhook)


def test_the_run_used_the_fake_secrets(leaks: Leaks) -> None:
    assert leaks.run.returncode == 0, leaks.output[-3000:]
    assert "nightly run succeeded" in leaks.run.stdout
    # the sources authenticated with the fake tokens, and the alert reached the secret webhook path
    assert "raw_shopify/orders " in leaks.run.stdout and "raw_klaviyo/events " in leaks.run.stdout
    assert len(leaks.webhook.received) == 1


def test_no_secret_in_the_console_output(leaks: Leaks) -> None:
    assert "DEBUG" in leaks.output and len(leaks.output.splitlines()) > 1000
    assert [secret for secret in leaks.secrets if secret in leaks.output] == []


def test_no_secret_in_any_file_table_or_dagster_storage(leaks: Leaks) -> None:
    files = files_under(leaks.roots)
    assert any(path.suffix == ".duckdb" for path in files)
    assert any(path.suffix == ".db" for path in files)  # Dagster's SQLite storage
    assert scan_files(leaks.roots, leaks.secrets) == []


def test_the_scanners_catch_a_planted_leak(tmp_path: Path) -> None:
    secret = FAKE_SECRETS["klaviyo"]
    planted = tmp_path / "planted"
    (planted / "logs").mkdir(parents=True)
    (planted / "logs" / "run.log").write_text(f"GET /api/profiles Authorization: Klaviyo-API-Key {secret}\n")
    (planted / "clean.log").write_text("nothing to see\n")
    with duckdb.connect(str(planted / "warehouse.duckdb")) as connection:
        connection.execute("create schema raw_klaviyo")
        connection.execute("create table raw_klaviyo.profiles (id varchar, properties json)")
        connection.execute(
            "insert into raw_klaviyo.profiles values ('01ABC', json_object('note', ?))", [secret]
        )
        connection.execute(f"copy (select 1 as n, 'key={secret}' as detail) to '{planted / 'mart.parquet'}'")
    home = planted / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="leaky", metadata={"request": f"token {secret}"})
        )
    found = scan_files([planted], [secret])
    assert f"{planted / 'logs' / 'run.log'}" in found
    assert "warehouse.duckdb: raw_klaviyo.profiles.properties" in found
    assert "mart.parquet: detail" in found
    assert any(entry.endswith(".db: event_logs") for entry in found), found
    assert not any("clean.log" in entry or "profiles.id" in entry for entry in found)


def test_registered_secrets_are_masked_in_logs_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    secret = "pk_another_f4ke_secret_value"
    register_secret(secret, None, "short")
    with caplog.at_level(logging.DEBUG, logger="dlt"):
        logging.getLogger("dlt").debug("headers={'Authorization': 'Klaviyo-API-Key %s'}", secret)
    assert caplog.messages == ["headers={'Authorization': 'Klaviyo-API-Key [redacted]'}"]
    try:
        try:
            raise ConnectionError(f"refused with {secret}")
        except ConnectionError as cause:
            raise RuntimeError(f"load failed: key {secret} rejected") from cause
    except RuntimeError as error:
        redact_error(error)
        assert str(error) == "load failed: key [redacted] rejected"
        assert str(error.__cause__) == "refused with [redacted]"
    # too short to be a real secret: never masked (it would blank innocent words)
    assert redact("a short word") == "a short word"
