"""The Dagster UI as the people who run shop360 see it: `dagster dev` on the session's instance, driven
by Playwright in Debian's Chromium (installed by `make browser`, which `make test` runs first).

The session's nightly run is recorded in a persistent instance (``dagster_home`` fixture) whose run
queue launches nothing, so the UI shows that run and cannot start runs of its own. Screenshots go to
``<session data dir>/screenshots/``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ingestion.paths import PROJECT_ROOT
from orchestration.definitions import defs
from orchestration.nightly import NightlyReport

CHROMIUM = Path("/usr/bin/chromium")
# Chromium flags for a machine without a display, a sandbox or an internet connection
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
LOAD_TIMEOUT_SECONDS = 240
# the asset graph's groups, source by source and layer by layer
GROUPS = (
    "raw_shopify",
    "raw_klaviyo",
    "raw_ga4",
    "staging_shopify",
    "staging_klaviyo",
    "staging_ga4",
    "intermediate",
    "marts",
    "audit",
    "bi",
)
# how long a locator's action or assertion waits: a busy CI machine has shown the UI still "Loading..."
# past expect()'s own 5 s default, which page.set_default_timeout() does not change
UI_TIMEOUT_MS = 60_000
expect.set_options(timeout=UI_TIMEOUT_MS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _location_loaded(base_url: str) -> bool:
    """Whether the webserver answers and has loaded the shop360 code location."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return any(entry["name"] == "shop360" and entry["loadStatus"] == "LOADED" for entry in entries)


@pytest.fixture(scope="module")
def dagster_ui(nightly: NightlyReport, dagster_home: Path, data_dir: Path) -> Iterator[str]:
    """`dagster dev` on a free port, on the session's instance and warehouse; yields its base URL."""
    assert nightly.success, nightly.render()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SHOP360_DATA_DIR": str(data_dir)}
    log = (data_dir / "dagster_dev.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its webserver and daemon are stopped with it, as a group
    )
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
        while not _location_loaded(base_url):
            assert process.poll() is None, (data_dir / "dagster_dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not load shop360 in time"
            time.sleep(1)
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run `make browser` (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screenshots(data_dir: Path) -> Path:
    directory = data_dir / "screenshots"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    # a new instance greets its first visitor with a newsletter dialog: skip it whenever it shows
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    yield page
    page.close()


def _checks_of(asset: str) -> list[str]:
    """The asset checks the definitions declare on ``asset`` (``schema/table``)."""
    keys = defs.resolve_asset_graph().asset_check_keys
    return sorted(key.name for key in keys if key.asset_key.to_user_string() == asset)


def test_the_asset_graph_reads_like_the_architecture(page: Page, dagster_ui: str, screenshots: Path) -> None:
    page.goto(f"{dagster_ui}/asset-groups")
    graph = page.locator("foreignObject")  # the graph's nodes (the group list beside it is plain HTML)
    for group in GROUPS:
        expect(graph.get_by_text(group, exact=True)).to_have_count(1)
    page.screenshot(path=screenshots / "asset_graph.png")


def test_every_mart_shows_its_checks_passing(page: Page, dagster_ui: str, screenshots: Path) -> None:
    page.goto(f"{dagster_ui}/locations/shop360/asset-groups/marts/lineage")
    count = len(_checks_of("marts/customer_360"))
    # the whole marts graph opens too far out to show a node's details: zoom in towards customer_360
    for _ in range(2):
        page.get_by_role("button", name="zoom_in").click()
    expect(page.get_by_text(f"{count} / {count} Passed").first).to_be_visible()  # customer_360's node
    page.screenshot(path=screenshots / "marts_lineage.png")
    marts = sorted(
        key.path[1] for key in defs.resolve_asset_graph().get_all_asset_keys() if key.path[0] == "marts"
    )
    assert len(marts) >= 10
    for mart in marts:
        checks = _checks_of(f"marts/{mart}")
        assert checks, f"marts/{mart} has no checks"
        page.goto(f"{dagster_ui}/assets/marts/{mart}?view=checks")
        expect(page.get_by_text(f"Checks ({len(checks)})")).to_be_visible()
        expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(checks))


def test_customer_360_page_shows_its_row_count_preview_and_checks(
    page: Page, dagster_ui: str, nightly: NightlyReport, screenshots: Path
) -> None:
    page.goto(f"{dagster_ui}/assets/marts/customer_360")
    status = page.locator("section, div", has=page.get_by_text("Row count", exact=True)).last
    expect(status.get_by_text(f"{nightly.people:,}", exact=True)).to_be_visible()
    page.screenshot(path=screenshots / "customer_360.png")
    for key in ("Execution Duration", "preview"):
        expect(page.get_by_text(key, exact=True).first).to_be_attached()
    page.get_by_text("preview", exact=True).first.scroll_into_view_if_needed()
    expect(page.get_by_role("columnheader", name="customer_key")).to_be_visible()
    page.screenshot(path=screenshots / "customer_360_metadata.png")

    page.goto(f"{dagster_ui}/assets/marts/customer_360?view=checks")
    checks = _checks_of("marts/customer_360")
    assert "identity_over_merge" in checks and "unique_customer_360_customer_key" in checks
    expect(page.get_by_text(f"Checks ({len(checks)})")).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(checks))
    page.screenshot(path=screenshots / "customer_360_checks.png")


def test_the_reconciliation_check_shows_its_numbers(
    page: Page, dagster_ui: str, truth: dict, screenshots: Path
) -> None:
    page.goto(f"{dagster_ui}/assets/marts/fct_orders?view=checks")
    page.get_by_text("reconciles_with_shopify", exact=True).first.click()
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
    metadata = page.locator("tr", has=page.get_by_text("raw_net_revenue", exact=True)).first
    expect(metadata).to_contain_text(str(float(truth["shopify"]["net_revenue"])))
    expect(page.locator("tr", has=page.get_by_text("orders_differing", exact=True)).first).to_contain_text(
        "0"
    )
    page.screenshot(path=screenshots / "fct_orders_reconciliation.png")


def test_a_raw_table_page_shows_its_load_freshness_and_key_checks(
    page: Page, dagster_ui: str, warehouse, screenshots: Path
) -> None:
    (orders,) = warehouse.execute("select count(*) from raw_shopify.orders").fetchone()
    (load_id,) = warehouse.execute("select max(_dlt_load_id) from raw_shopify.orders").fetchone()
    page.goto(f"{dagster_ui}/assets/raw_shopify/orders")
    status = page.locator("section, div", has=page.get_by_text("Row count", exact=True)).last
    expect(status.get_by_text(f"{orders:,}", exact=True)).to_be_visible()
    expect(page.get_by_text("Freshness policy", exact=True).first).to_be_visible()
    expect(page.get_by_text("Passing", exact=True).first).to_be_visible()
    for key in ("rows_loaded", "new_rows", "load_ids"):
        expect(page.get_by_text(key, exact=True).first).to_be_attached()
    expect(page.get_by_text(load_id, exact=True).first).to_be_attached()
    page.screenshot(path=screenshots / "raw_shopify_orders.png")

    page.goto(f"{dagster_ui}/assets/raw_shopify/orders?view=checks")
    assert _checks_of("raw_shopify/orders") == ["primary_key_unique", "row_count_change"]
    for check in ("primary_key_unique", "row_count_change"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(2)
    page.screenshot(path=screenshots / "raw_shopify_orders_checks.png")
