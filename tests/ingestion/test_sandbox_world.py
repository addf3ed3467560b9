"""The sandbox world generator: deterministic, advanceable, and its truth matches its records."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import json
import re
import shutil
import statistics
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingestion.sandbox.world import advance_world, generate_world

SEED, CUSTOMERS, DAYS = 42, 300, 60
AS_OF = dt.date(2026, 6, 1)
ADVANCE_DAYS = 3
OSLO = ZoneInfo("Europe/Oslo")
FUNNEL = ("view_item", "add_to_cart", "begin_checkout", "add_shipping_info", "add_payment_info", "purchase")
MONEY = re.compile(r"^-?\d+\.\d{2}$")
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
JSONL_FILES = (
    "world/shopify/customers.jsonl",
    "world/shopify/orders.jsonl",
    "world/shopify/products.jsonl",
    "world/shopify/checkouts.jsonl",
    "world/klaviyo/profiles.jsonl",
    "world/klaviyo/events.jsonl",
    "world/klaviyo/metrics.jsonl",
    "world/klaviyo/campaigns.jsonl",
    "world/klaviyo/lists.jsonl",
)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("worlds")
    roots = {name: base / name for name in ("main", "again", "other_seed", "advanced", "two_workers")}
    generate_world(roots["main"], seed=SEED, customers=CUSTOMERS, days=DAYS, as_of=AS_OF)
    generate_world(roots["again"], seed=SEED, customers=CUSTOMERS, days=DAYS, as_of=AS_OF)
    generate_world(roots["other_seed"], seed=SEED + 1, customers=CUSTOMERS, days=DAYS, as_of=AS_OF)
    generate_world(roots["two_workers"], seed=SEED, customers=CUSTOMERS, days=DAYS, as_of=AS_OF, workers=2)
    shutil.copytree(roots["main"], roots["advanced"], dirs_exist_ok=True)
    advance_world(roots["advanced"], ADVANCE_DAYS)
    return roots


@pytest.fixture(scope="module")
def long_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a year up to New Year: long enough for purchase cycles and the Christmas season."""
    root = tmp_path_factory.mktemp("long_world")
    generate_world(root, seed=5, customers=400, days=183, as_of=dt.date(2027, 1, 1))
    return root


@pytest.fixture(scope="module")
def root(worlds: dict[str, Path]) -> Path:
    return worlds["main"]


@pytest.fixture(scope="module")
def summary(root: Path) -> dict:
    return json.loads((root / "truth/summary.json").read_text())


@pytest.fixture(scope="module")
def orders(root: Path) -> list[dict]:
    return read_jsonl(root / "world/shopify/orders.jsonl")


@pytest.fixture(scope="module")
def customers(root: Path) -> list[dict]:
    return read_jsonl(root / "world/shopify/customers.jsonl")


@pytest.fixture(scope="module")
def profiles(root: Path) -> list[dict]:
    return read_jsonl(root / "world/klaviyo/profiles.jsonl")


@pytest.fixture(scope="module")
def events(root: Path) -> list[dict]:
    return read_jsonl(root / "world/klaviyo/events.jsonl")


@pytest.fixture(scope="module")
def ga4_rows(root: Path) -> list[tuple[str, str]]:
    """(file name, raw line) of every GA4 row, duplicates included."""
    return [(path.name, line) for path in sorted((root / "ga4").iterdir()) for line in read_gzip_lines(path)]


@pytest.fixture(scope="module")
def identities(root: Path) -> list[dict]:
    return read_gzip_csv(root / "truth/identities.csv.gz")


@pytest.fixture(scope="module")
def people(root: Path) -> list[dict]:
    return read_gzip_csv(root / "truth/people.csv.gz")


# -- helpers --------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_gzip_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()


def read_gzip_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"))))


def memberships_of(root: Path) -> dict[tuple[str, str], str]:
    """(list name, profile id) -> joined, from list_memberships.jsonl."""
    names = {x["id"]: x["attributes"]["name"] for x in read_jsonl(root / "world/klaviyo/lists.jsonl")}
    rows = read_jsonl(root / "world/klaviyo/list_memberships.jsonl")
    return {(names[m["list_id"]], m["profile_id"]): m["joined"] for m in rows}


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cents(value: str) -> int:
    return int(Decimal(value) * 100)


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def order_problem(order: dict) -> str | None:
    """The README's malformed-record rules, applied independently of the generator."""
    if not MONEY.match(str(order["total_price"])):
        return "total_price is not a number"
    for line in order["line_items"]:
        if line["quantity"] < 0:
            return "line item quantity is negative"
        if line["price"] is None:
            return "line item has no price"
    return None


def customer_problem(customer: dict) -> str | None:
    try:
        parse_time(customer["created_at"])
    except ValueError:
        return "created_at is not a date"
    email = customer["email"]
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email.strip()):
        return "email is not a valid address"
    return None


def net_revenue(order: dict) -> int:
    """README: 0 for test, cancelled or malformed orders, else total minus successful refunds."""
    if order["test"] or order["cancelled_at"] or order_problem(order):
        return 0
    refunded = sum(
        cents(t["amount"])
        for refund in order["refunds"]
        for t in refund["transactions"]
        if t["kind"] == "refund" and t["status"] == "success"
    )
    return cents(order["total_price"]) - refunded


def is_counted(order: dict) -> bool:
    return not order["test"] and not order["cancelled_at"] and not order_problem(order)


def money(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def closed_funnel(ga4_rows: list[tuple[str, str]]) -> dict[tuple, int]:
    """Sessions per (event_date, device, medium, step) reaching each step in order, duplicates removed."""
    sessions: dict[tuple, list[dict]] = defaultdict(list)
    for line in dict.fromkeys(line for _, line in ga4_rows):
        event = json.loads(line)
        params = {p["key"]: p["value"] for p in event["event_params"]}
        sessions[(event["user_pseudo_id"], params["ga_session_id"]["int_value"])].append(event)
    counts: Counter = Counter()
    for session in sessions.values():
        session.sort(key=lambda e: e["event_timestamp"])
        reached = 0
        for event in session:
            if reached < len(FUNNEL) and event["event_name"] == FUNNEL[reached]:
                reached += 1
        first = session[0]
        for step in FUNNEL[:reached]:
            counts[
                (first["event_date"], first["device"]["category"], first["traffic_source"]["medium"], step)
            ] += 1
    return counts


# -- determinism ----------------------------------------------------------------------------------


def test_same_inputs_give_byte_identical_files(worlds: dict[str, Path]) -> None:
    first, second = all_files(worlds["main"]), all_files(worlds["again"])
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_worker_processes_give_the_same_files(worlds: dict[str, Path]) -> None:
    assert all_files(worlds["two_workers"]) == all_files(worlds["main"])


def test_another_seed_gives_another_world(worlds: dict[str, Path]) -> None:
    first, other = all_files(worlds["main"]), all_files(worlds["other_seed"])
    for name in ("world/shopify/orders.jsonl", "world/klaviyo/events.jsonl", "truth/summary.json"):
        assert first[name] != other[name]


def test_gzip_files_carry_no_name_and_no_time(root: Path) -> None:
    for path in [
        *sorted((root / "ga4").iterdir()),
        root / "truth/people.csv.gz",
        root / "truth/identities.csv.gz",
    ]:
        header = path.read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08"
        assert header[3] & 0x08 == 0, f"{path.name} stores a file name"
        assert header[4:8] == b"\0\0\0\0", f"{path.name} stores a modification time"


# -- layout ---------------------------------------------------------------------------------------


def test_layout_and_meta_follow_the_readme(root: Path, summary: dict) -> None:
    for name in JSONL_FILES:
        text = (root / name).read_text(encoding="utf-8")
        assert text.endswith("\n"), name
        ids = [json.loads(line)["id"] for line in text.splitlines()]
        assert ids == sorted(ids), f"{name} is not sorted by id"
        assert len(ids) == len(set(ids)), f"{name} repeats an id"
    meta = json.loads((root / "world/meta.json").read_text())
    assert meta["api_tokens"] == {"shopify": "shpat_sandbox_token", "klaviyo": "pk_sandbox_key"}
    assert meta["hash_key"] == "sandbox_hash_key"
    assert (meta["seed"], meta["customers"], meta["days"]) == (SEED, CUSTOMERS, DAYS)
    assert meta["as_of"] == AS_OF.isoformat()
    assert meta["start_date"] == (AS_OF - dt.timedelta(days=DAYS)).isoformat()
    assert (meta["currency"], meta["timezone"]) == ("EUR", "Europe/Oslo")
    expected_files = [
        f"events_{(AS_OF - dt.timedelta(days=n)).strftime('%Y%m%d')}.json.gz" for n in range(DAYS, 0, -1)
    ]
    assert sorted(p.name for p in (root / "ga4").iterdir()) == expected_files
    assert summary["ga4"]["files"] == DAYS
    for part in ("identities.csv.gz", "people.csv.gz", "funnel_daily.csv", "summary.json"):
        assert (root / "truth" / part).is_file()
    assert not (root / ".world-building").exists()


def test_summary_has_the_promised_keys(summary: dict) -> None:
    assert set(summary["world"]) >= {"seed", "customers", "days", "start_date", "as_of"}
    shopify = summary["shopify"]
    assert set(shopify["customers"]) == {"records", "test", "malformed", "valid_nontest"}
    assert set(shopify["orders"]) == {
        "records",
        "test",
        "cancelled",
        "malformed",
        "counted",
        "web",
        "pos",
        "with_customer",
    }
    for key in ("gross_revenue", "refunded", "net_revenue", "net_revenue_of_customers"):
        assert MONEY.match(shopify[key]), key
    assert set(summary["klaviyo"]) >= {
        "profiles",
        "events",
        "events_by_metric",
        "metrics",
        "campaigns",
        "lists",
        "list_memberships",
    }
    assert set(summary["klaviyo"]["list_memberships"]) == {"Newsletter", "Customers"}
    assert set(summary["ga4"]["funnel"]) == set(FUNNEL)
    assert set(summary["people"]) == {"total", "test", "churned"}
    assert all(set(m) == {"source", "table", "id", "problem"} for m in summary["malformed"])


def test_generating_again_replaces_the_previous_world(tmp_path: Path) -> None:
    generate_world(tmp_path, seed=1, customers=40, days=20, as_of=AS_OF)
    (tmp_path / "ga4" / "events_19990101.json.gz").write_bytes(b"stale")
    generate_world(tmp_path, seed=1, customers=40, days=10, as_of=AS_OF)
    assert len(list((tmp_path / "ga4").iterdir())) == 10


# -- advancing ------------------------------------------------------------------------------------


def test_advancing_only_adds_and_updates(worlds: dict[str, Path]) -> None:
    old_root, new_root = worlds["main"], worlds["advanced"]
    updated_field = {
        "world/shopify/customers.jsonl": lambda r: parse_time(r["updated_at"]),
        "world/shopify/orders.jsonl": lambda r: parse_time(r["updated_at"]),
        "world/klaviyo/profiles.jsonl": lambda r: parse_time(r["attributes"]["updated"]),
    }
    for name in JSONL_FILES:
        old = {json.loads(line)["id"]: line for line in (old_root / name).read_text().splitlines()}
        new = {json.loads(line)["id"]: line for line in (new_root / name).read_text().splitlines()}
        assert old.keys() <= new.keys(), f"{name} lost records"
        changed = [key for key in old if old[key] != new[key]]
        if name not in updated_field:
            assert changed == [], f"{name} changed records that never change"
            continue
        updated = updated_field[name]
        for key in changed:
            assert updated(json.loads(new[key])) > updated(json.loads(old[key])), (
                f"{name} {key} changed silently"
            )
            assert updated(json.loads(new[key])) >= dt.datetime(2026, 6, 1, tzinfo=OSLO)
    for path in sorted((old_root / "ga4").iterdir()):
        assert (new_root / "ga4" / path.name).read_bytes() == path.read_bytes(), path.name
    old_members, new_members = memberships_of(old_root), memberships_of(new_root)
    new_profiles = read_jsonl(new_root / "world/klaviyo/profiles.jsonl")
    consent = {p["id"]: p["attributes"]["subscriptions"]["email"]["marketing"] for p in new_profiles}
    for key, joined in new_members.items():
        if old_members.get(key) != joined:  # joined (again) in the added days
            assert parse_time(joined) >= dt.datetime(2026, 6, 1, tzinfo=OSLO), key
    left = old_members.keys() - new_members.keys()
    assert all(name == "Newsletter" for name, _ in left), "only consent can end a membership"
    for _, profile_id in left:
        assert consent[profile_id]["consent"] != "SUBSCRIBED"
        assert parse_time(consent[profile_id]["last_updated"]) >= dt.datetime(2026, 6, 1, tzinfo=OSLO)
    assert len(new_members) > len(old_members)
    assert len(list((new_root / "ga4").iterdir())) == DAYS + ADVANCE_DAYS
    old_summary = json.loads((old_root / "truth/summary.json").read_text())
    new_summary = json.loads((new_root / "truth/summary.json").read_text())
    assert new_summary["world"]["as_of"] == (AS_OF + dt.timedelta(days=ADVANCE_DAYS)).isoformat()
    assert new_summary["world"]["start_date"] == old_summary["world"]["start_date"]
    assert new_summary["shopify"]["orders"]["records"] > old_summary["shopify"]["orders"]["records"]
    assert new_summary["people"]["total"] >= old_summary["people"]["total"]


# -- the truth recomputed from the records --------------------------------------------------------


def test_order_counts_and_revenue_match_the_summary(
    summary: dict, orders: list[dict], customers: list[dict]
) -> None:
    counted = [o for o in orders if is_counted(o)]
    valid_customers = {c["id"] for c in customers if "test" not in c["tags"] and not customer_problem(c)}
    of_customers = [o for o in counted if o["customer"] and o["customer"]["id"] in valid_customers]
    expected = {
        "records": len(orders),
        "test": sum(o["test"] for o in orders),
        "cancelled": sum(1 for o in orders if o["cancelled_at"] and not o["test"]),
        "malformed": sum(1 for o in orders if order_problem(o)),
        "counted": len(counted),
        "web": sum(o["source_name"] == "web" for o in orders),
        "pos": sum(o["source_name"] == "pos" for o in orders),
        "with_customer": sum(o["customer"] is not None for o in orders),
    }
    shopify = summary["shopify"]
    assert shopify["orders"] == expected
    assert shopify["net_revenue"] == money(sum(net_revenue(o) for o in orders))
    assert shopify["gross_revenue"] == money(sum(cents(o["total_price"]) for o in counted))
    assert shopify["net_revenue_of_customers"] == money(sum(net_revenue(o) for o in of_customers))
    assert shopify["orders_of_customers"] == len(of_customers)
    assert Decimal(shopify["gross_revenue"]) - Decimal(shopify["refunded"]) == Decimal(shopify["net_revenue"])


def test_customer_counts_and_malformed_records_match_the_summary(
    summary: dict, customers: list[dict], orders: list[dict]
) -> None:
    problems = {("customers", c["id"]): customer_problem(c) for c in customers if customer_problem(c)}
    problems |= {("orders", o["id"]): order_problem(o) for o in orders if order_problem(o)}
    listed = {(m["table"], m["id"]): m["problem"] for m in summary["malformed"]}
    assert listed == problems
    assert {m["source"] for m in summary["malformed"]} == {"shopify"}
    tests = [c for c in customers if "test" in c["tags"]]
    assert summary["shopify"]["customers"] == {
        "records": len(customers),
        "test": len(tests),
        "malformed": sum(1 for key in problems if key[0] == "customers"),
        "valid_nontest": len(customers) - len(tests) - sum(1 for key in problems if key[0] == "customers"),
    }
    # ~0.5 %: a few planted by person index plus a random share
    assert 0 < summary["shopify"]["customers"]["malformed"] <= 0.01 * len(customers) + 3
    assert 0 < summary["shopify"]["orders"]["malformed"] <= 0.01 * len(orders) + 3
    malformed_customers = {key[1] for key in problems if key[0] == "customers"}
    assert not [o for o in orders if o["customer"] and o["customer"]["id"] in malformed_customers]


def test_test_accounts_place_only_test_orders(customers: list[dict], orders: list[dict]) -> None:
    test_ids = {c["id"] for c in customers if "test" in c["tags"]}
    assert test_ids
    assert all(c["email"].endswith("@shop360-sandbox.test") for c in customers if c["id"] in test_ids)
    test_orders = [o for o in orders if o["test"]]
    assert test_orders
    assert all(o["customer"] and o["customer"]["id"] in test_ids for o in test_orders)
    assert all(o["test"] for o in orders if o["customer"] and o["customer"]["id"] in test_ids)


def test_shopify_money_is_consistent(orders: list[dict], customers: list[dict]) -> None:
    for order in orders:
        if order_problem(order):
            continue
        shipping = sum(cents(s["price"]) for s in order["shipping_lines"])
        lines = order["line_items"]
        assert cents(order["total_price"]) == cents(order["subtotal_price"]) + shipping
        assert cents(order["subtotal_price"]) == cents(order["total_line_items_price"]) - cents(
            order["total_discounts"]
        )
        assert cents(order["total_line_items_price"]) == sum(
            cents(li["price"]) * li["quantity"] for li in lines
        )
        assert cents(order["total_discounts"]) == sum(cents(li["total_discount"]) for li in lines)
        assert cents(order["total_discounts"]) == sum(cents(d["amount"]) for d in order["discount_codes"])
        for key in (
            "total_price",
            "subtotal_price",
            "total_discounts",
            "total_tax",
            "total_line_items_price",
        ):
            assert MONEY.match(order[key]), (order["id"], key)
    by_customer = defaultdict(list)
    for order in orders:
        if order["customer"]:
            by_customer[order["customer"]["id"]].append(order)
    for customer in customers:
        mine = by_customer[customer["id"]]
        assert customer["orders_count"] == len(mine)
        assert customer["total_spent"] == money(sum(net_revenue(o) for o in mine))
        assert customer["last_order_id"] == (max(o["id"] for o in mine) if mine else None)


def test_order_numbers_follow_creation(orders: list[dict]) -> None:
    assert [o["order_number"] for o in orders] == list(range(1001, 1001 + len(orders)))
    assert all(o["name"] == f"#{o['order_number']}" for o in orders)
    created = [parse_time(o["created_at"]) for o in orders]
    assert created == sorted(created)


def test_people_truth_adds_up(
    summary: dict, people: list[dict], orders: list[dict], identities: list[dict]
) -> None:
    assert summary["people"]["total"] == len(people)
    assert summary["people"]["test"] == sum(int(p["is_test"]) for p in people)
    assert summary["people"]["churned"] == sum(int(p["churned"]) for p in people)
    assert summary["people"]["total"] == pytest.approx(CUSTOMERS, rel=0.1)
    assert sum(cents(p["net_revenue"]) for p in people) == cents(summary["shopify"]["net_revenue"])
    owner = {i["identifier"]: i["person_id"] for i in identities if i["id_type"] == "order_id"}
    assert set(owner) == {str(o["id"]) for o in orders}
    counted_days: dict[str, list[dt.date]] = defaultdict(list)
    for order in orders:
        if is_counted(order):
            counted_days[owner[str(order["id"])]].append(parse_time(order["created_at"]).date())
    for person in people:
        days = sorted(counted_days[person["person_id"]])
        assert int(person["orders"]) == len(days)
        if not days:
            assert person["churned"] == "0"
            continue
        gap = (days[-1] - days[0]).days / (len(days) - 1) if len(days) > 1 else None
        threshold = min(180.0, max(30.0, 3 * gap)) if gap is not None else 180.0
        assert person["churned"] == str(int((AS_OF - days[-1]).days > threshold)), person["person_id"]


def test_identities_name_every_identifier(
    identities: list[dict], customers: list[dict], profiles: list[dict], ga4_rows: list[tuple[str, str]]
) -> None:
    known = {(i["source"], i["id_type"], i["identifier"]) for i in identities}
    assert len(known) == len(identities)
    assert all(("shopify", "customer_id", str(c["id"])) in known for c in customers)
    assert all(("shopify", "email", c["email"]) in known for c in customers if c["email"])
    assert all(("klaviyo", "profile_id", p["id"]) in known for p in profiles)
    assert all(("klaviyo", "email", p["attributes"]["email"]) in known for p in profiles)
    cookies, user_ids = set(), set()
    for _, line in ga4_rows:
        event = json.loads(line)
        cookies.add(event["user_pseudo_id"])
        if event["user_id"] is not None:
            user_ids.add(event["user_id"])
    assert all(("ga4", "user_pseudo_id", c) in known for c in cookies)
    assert user_ids <= {str(c["id"]) for c in customers}


# -- planted properties: identity -----------------------------------------------------------------


def test_people_appear_under_several_identifiers(
    identities: list[dict], customers: list[dict], orders: list[dict]
) -> None:
    emails_by_person: dict[str, set[str]] = defaultdict(set)
    customer_ids_by_person: dict[str, set[str]] = defaultdict(set)
    for row in identities:
        if row["id_type"] == "email":
            emails_by_person[row["person_id"]].add(row["identifier"])
        if row["id_type"] == "customer_id":
            customer_ids_by_person[row["person_id"]].add(row["identifier"])
    variants = [
        e for e in emails_by_person.values() if len(e) > 1 and len({x.strip().lower() for x in e}) == 1
    ]
    assert len(variants) >= 10, "expected email case/whitespace variants of one address"
    assert any(e != e.strip() for emails in variants for e in emails), (
        "expected whitespace around some emails"
    )
    assert any(e != e.lower() for emails in variants for e in emails), (
        "expected upper-case letters in some emails"
    )
    assert any(len(ids) > 1 for ids in customer_ids_by_person.values()), "expected duplicate customer records"
    assert any(c["state"] == "disabled" and c["email"] and c["orders_count"] for c in customers), "no guests"
    assert any(c["email"] is None and c["phone"] for c in customers), "no phone-only store customers"
    phones = [row["identifier"] for row in identities if row["id_type"] == "phone"]
    assert any(" " in p for p in phones) and all(p.startswith("+") for p in phones)
    assert all(re.fullmatch(r"\+\d{9,13}", c["phone"]) for c in customers if c["phone"])
    countries = Counter(c["default_address"]["country"] for c in customers)
    assert countries.most_common(1)[0][0] == "Norway" and {"Sweden", "Denmark", "Germany"} <= set(countries)


def test_ga4_identifies_visitors_only_after_login(ga4_rows: list[tuple[str, str]]) -> None:
    by_cookie: dict[str, list[dict]] = defaultdict(list)
    for _, line in ga4_rows:
        event = json.loads(line)
        by_cookie[event["user_pseudo_id"]].append(event)
    assert all(re.fullmatch(r"\d{10}\.\d{10}", cookie) for cookie in by_cookie)
    anonymous = [c for c, evs in by_cookie.items() if all(e["user_id"] is None for e in evs)]
    logged_in = [evs for evs in by_cookie.values() if any(e["user_id"] for e in evs)]
    assert len(anonymous) > len(by_cookie) / 4
    browsed_first = 0
    for evs in logged_in:
        evs.sort(key=lambda e: e["event_timestamp"])
        browsed_first += evs[0]["user_id"] is None
    assert browsed_first > 0, "expected anonymous browsing before the first login"


# -- planted properties: orders -------------------------------------------------------------------


def test_orders_carry_the_planted_patterns(orders: list[dict]) -> None:
    pos = [o for o in orders if o["source_name"] == "pos"]
    web = [o for o in orders if o["source_name"] == "web"]
    assert pos and all(o["location_id"] for o in pos) and all(o["location_id"] is None for o in web)
    assert any(o["customer"] is None for o in pos) and any(o["customer"] for o in pos)
    gateways = Counter(g for o in orders for g in o["payment_gateway_names"])
    assert {"shopify_payments", "paypal", "klarna", "cash"} <= set(gateways)
    for order in pos:
        local = parse_time(order["created_at"])
        assert local.weekday() != 6 and 10 <= local.hour < 20, "store orders happen in opening hours"
    web_hours = Counter(parse_time(o["created_at"]).hour for o in web)
    assert sum(web_hours[h] for h in range(18, 24)) > 3 * sum(web_hours[h] for h in range(0, 7))
    cancelled = [o for o in orders if o["cancelled_at"]]
    assert cancelled and all(o["financial_status"] == "voided" and o["cancel_reason"] for o in cancelled)
    assert all(parse_time(o["cancelled_at"]) > parse_time(o["created_at"]) for o in cancelled)
    assert any(o["discount_codes"] for o in orders)
    refunded = [o for o in orders if o["refunds"]]
    statuses = Counter(o["financial_status"] for o in refunded)
    assert statuses["refunded"] and statuses["partially_refunded"]
    for order in refunded:
        line_ids = {li["id"] for li in order["line_items"]}
        for refund in order["refunds"]:
            assert parse_time(refund["created_at"]) > parse_time(order["created_at"])
            assert {r["line_item_id"] for r in refund["refund_line_items"]} <= line_ids
            assert any(t["kind"] == "refund" and t["status"] == "success" for t in refund["transactions"])
        assert parse_time(order["updated_at"]) >= max(parse_time(r["created_at"]) for r in order["refunds"])


def test_replenishable_products_are_bought_again_on_a_cycle(long_world: Path) -> None:
    summary = json.loads((long_world / "truth/summary.json").read_text())
    orders = read_jsonl(long_world / "world/shopify/orders.jsonl")
    identities = read_gzip_csv(long_world / "truth/identities.csv.gz")
    cycles = summary["planted"]["replenish_cycles_days"]
    assert len(cycles) >= 5 and 40 <= summary["shopify"]["products"]["records"] <= 80
    owner = {i["identifier"]: i["person_id"] for i in identities if i["id_type"] == "order_id"}
    bought: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for order in orders:
        for line in order["line_items"]:
            if str(line["product_id"]) in cycles:
                bought[(owner[str(order["id"])], str(line["product_id"]))].append(
                    parse_time(order["created_at"])
                )
    ratios = []
    for (_, product), times in bought.items():
        times.sort()
        ratios += [(b - a).days / cycles[product] for a, b in itertools.pairwise(times)]
    assert len(ratios) >= 50
    assert 0.8 < statistics.median(ratios) < 1.2
    assert sum(0.7 <= r <= 1.3 for r in ratios) / len(ratios) > 0.4


def test_abandoned_checkouts_belong_to_people_who_gave_an_email(root: Path) -> None:
    checkouts = read_jsonl(root / "world/shopify/checkouts.jsonl")
    assert checkouts
    assert all(c["email"] and c["completed_at"] is None for c in checkouts)
    assert all(c["line_items"] and MONEY.match(c["total_price"]) for c in checkouts)


def test_demand_peaks_in_november_and_december(long_world: Path) -> None:
    orders = read_jsonl(long_world / "world/shopify/orders.jsonl")
    created = [parse_time(o["created_at"]).date() for o in orders]
    autumn = sum(1 for d in created if d.month in (9, 10)) / 61
    holidays = sum(1 for d in created if d.month in (11, 12)) / 61
    black_friday = [d for d in created if dt.date(2026, 11, 27) <= d <= dt.date(2026, 11, 30)]
    rest_of_november = [d for d in created if d.month == 11 and d not in black_friday]
    assert holidays > 1.4 * autumn
    assert len(black_friday) / 4 > 1.4 * len(rest_of_november) / 26


# -- planted properties: Klaviyo ------------------------------------------------------------------


def test_klaviyo_ids_and_counts(root: Path, summary: dict, profiles: list[dict], events: list[dict]) -> None:
    metrics = read_jsonl(root / "world/klaviyo/metrics.jsonl")
    campaigns = read_jsonl(root / "world/klaviyo/campaigns.jsonl")
    assert all(ULID.match(p["id"]) for p in profiles)
    assert all(re.fullmatch(r"[A-Za-z0-9]{6}", m["id"]) for m in metrics)
    assert len({e["id"] for e in events}) == len(events)
    metric_name = {m["id"]: m["attributes"]["name"] for m in metrics}
    by_metric = Counter(metric_name[e["relationships"]["metric"]["data"]["id"]] for e in events)
    assert summary["klaviyo"]["events_by_metric"] == {name: by_metric[name] for name in metric_name.values()}
    assert summary["klaviyo"]["profiles"] == len(profiles)
    assert summary["klaviyo"]["campaigns"] == len(campaigns)
    assert all(by_metric[name] > 0 for name in metric_name.values()), by_metric
    weeks = DAYS / 7
    assert weeks <= len(campaigns) <= 2 * weeks + 1
    received = by_metric["Received Email"]
    assert 0.2 < by_metric["Opened Email"] / received < 0.45
    assert 0.01 < by_metric["Clicked Email"] / received < 0.06


def test_only_subscribed_profiles_receive_campaigns(
    profiles: list[dict], events: list[dict], root: Path
) -> None:
    metrics = {m["id"]: m["attributes"]["name"] for m in read_jsonl(root / "world/klaviyo/metrics.jsonl")}
    receivers = {
        e["relationships"]["profile"]["data"]["id"]
        for e in events
        if metrics[e["relationships"]["metric"]["data"]["id"]] == "Received Email"
    }
    consent = {p["id"]: p["attributes"]["subscriptions"]["email"]["marketing"] for p in profiles}
    assert receivers
    assert all(consent[r]["consent"] != "NEVER_SUBSCRIBED" for r in receivers)
    unsubscribed = {
        e["relationships"]["profile"]["data"]["id"]
        for e in events
        if metrics[e["relationships"]["metric"]["data"]["id"]] == "Unsubscribed"
    }
    assert unsubscribed and all(consent[p]["consent"] == "UNSUBSCRIBED" for p in unsubscribed)
    for profile_id in unsubscribed:
        assert not consent[profile_id]["can_receive_email_marketing"]
        assert consent[profile_id]["consent_timestamp"]


def test_profiles_hold_consent_and_zero_party_answers(profiles: list[dict], customers: list[dict]) -> None:
    states = Counter(p["attributes"]["subscriptions"]["email"]["marketing"]["consent"] for p in profiles)
    assert states["SUBSCRIBED"] and states["UNSUBSCRIBED"] and states["NEVER_SUBSCRIBED"]
    answers = Counter(key for p in profiles for key in p["attributes"]["properties"])
    assert answers["interests"] and answers["preferred_channel"] and answers["cart_abandon_reason"]
    reasons = Counter(p["attributes"]["properties"].get("cart_abandon_reason") for p in profiles)
    assert reasons.most_common(2)[1][0] == "shipping_cost"  # most common after "no answer"
    shopify_emails = {c["email"] for c in customers if c["email"]}
    normalised = {e.strip().lower() for e in shopify_emails}
    profile_emails = [p["attributes"]["email"] for p in profiles]
    assert any(e not in shopify_emails and e.strip().lower() in normalised for e in profile_emails)


def test_list_memberships_follow_consent_and_orders(
    root: Path,
    summary: dict,
    profiles: list[dict],
    orders: list[dict],
    identities: list[dict],
    people: list[dict],
) -> None:
    rows = read_jsonl(root / "world/klaviyo/list_memberships.jsonl")
    assert all(set(m) == {"list_id", "profile_id", "joined"} for m in rows)
    keys = [(m["list_id"], m["profile_id"]) for m in rows]
    assert keys == sorted(set(keys)), "memberships are unique and sorted by list, then profile"
    members = memberships_of(root)
    assert summary["klaviyo"]["list_memberships"] == Counter(name for name, _ in members)
    by_id = {p["id"]: p["attributes"] for p in profiles}
    assert {profile_id for _, profile_id in members} <= by_id.keys()
    newsletter = {
        profile_id: attributes["subscriptions"]["email"]["marketing"]["consent_timestamp"]
        for profile_id, attributes in by_id.items()
        if attributes["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    }
    assert {p: j for (name, p), j in members.items() if name == "Newsletter"} == newsletter
    owner = {i["identifier"]: i["person_id"] for i in identities if i["id_type"] == "order_id"}
    first_order: dict[str, dt.datetime] = {}
    for order in orders:
        if not order["test"]:
            person, created = owner[str(order["id"])], parse_time(order["created_at"])
            first_order[person] = min(created, first_order.get(person, created))
    customers = {
        p["profile_id"]: max(first_order[p["person_id"]], parse_time(by_id[p["profile_id"]]["created"]))
        for p in people
        if p["profile_id"] and p["person_id"] in first_order
    }
    assert {p: parse_time(j) for (name, p), j in members.items() if name == "Customers"} == customers
    assert newsletter and customers and newsletter.keys() & customers.keys()
    assert all(m["joined"].endswith("+00:00") for m in rows)  # UTC, as Klaviyo writes times


def test_placed_order_events_mirror_web_orders(root: Path, events: list[dict], orders: list[dict]) -> None:
    metrics = {m["id"]: m["attributes"]["name"] for m in read_jsonl(root / "world/klaviyo/metrics.jsonl")}
    placed = [e for e in events if metrics[e["relationships"]["metric"]["data"]["id"]] == "Placed Order"]
    by_id = {str(o["id"]): o for o in orders}
    assert placed
    for event in placed:
        order = by_id[event["attributes"]["event_properties"]["$event_id"]]
        assert order["source_name"] == "web" and not order["test"]
        assert Decimal(str(event["attributes"]["event_properties"]["$value"])) == Decimal(
            order["total_price"]
        )
        assert event["attributes"]["timestamp"] >= parse_time(order["created_at"]).timestamp()


def test_campaign_clicks_lead_to_orders(long_world: Path) -> None:
    metrics = {
        m["id"]: m["attributes"]["name"] for m in read_jsonl(long_world / "world/klaviyo/metrics.jsonl")
    }
    events = read_jsonl(long_world / "world/klaviyo/events.jsonl")
    times: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        name = metrics[event["relationships"]["metric"]["data"]["id"]]
        times[event["relationships"]["profile"]["data"]["id"]][name].append(event["attributes"]["timestamp"])
    window = 5 * 86_400

    def ordered_within_window(metric: str, skip_clicked: bool = False) -> float:
        hits = total = 0
        for profile in times.values():
            for ts in profile[metric]:
                if skip_clicked and any(0 <= c - ts <= window for c in profile["Clicked Email"]):
                    continue
                total += 1
                hits += any(0 < o - ts <= window for o in profile["Placed Order"])
        return hits / total

    assert ordered_within_window("Clicked Email") > 2 * ordered_within_window(
        "Received Email", skip_clicked=True
    )


# -- planted properties: GA4 ----------------------------------------------------------------------


def test_ga4_files_are_sorted_and_dated_in_oslo(ga4_rows: list[tuple[str, str]], summary: dict) -> None:
    previous: dict[str, int] = {}
    for name, line in ga4_rows:
        event = json.loads(line)
        ts = event["event_timestamp"]
        assert ts >= previous.get(name, 0), f"{name} is not sorted by event_timestamp"
        previous[name] = ts
        local = dt.datetime.fromtimestamp(ts / 1e6, tz=OSLO)
        assert event["event_date"] == local.strftime("%Y%m%d") == name[7:15]
        keys = {p["key"] for p in event["event_params"]}
        assert {"ga_session_id", "ga_session_number", "page_location"} <= keys
    assert summary["ga4"]["events"] == len(ga4_rows)


def test_ga4_holds_exact_duplicates(ga4_rows: list[tuple[str, str]], summary: dict) -> None:
    duplicates = len(ga4_rows) - len({line for _, line in ga4_rows})
    assert duplicates == summary["ga4"]["duplicate_events"]
    assert 0.003 < duplicates / len(ga4_rows) < 0.03


def test_funnel_truth_is_the_closed_funnel(
    root: Path, ga4_rows: list[tuple[str, str]], summary: dict
) -> None:
    counts = closed_funnel(ga4_rows)
    totals = {step: sum(n for key, n in counts.items() if key[3] == step) for step in FUNNEL}
    assert summary["ga4"]["funnel"] == totals
    sessions = {
        (json.loads(line)["user_pseudo_id"], json.loads(line)["event_params"][0]["value"]["int_value"])
        for _, line in ga4_rows
    }
    assert summary["ga4"]["sessions"] == len(sessions)
    channel = {
        "organic": "organic_search",
        "cpc": "paid_search",
        "email": "email",
        "social": "social",
        "(none)": "direct",
    }
    expected = {
        (f"{d[:4]}-{d[4:6]}-{d[6:]}", device, channel[medium], step): n
        for (d, device, medium, step), n in counts.items()
    }
    with open(root / "truth/funnel_daily.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {
        (r["date"], r["device"], r["channel"], r["step"]): int(r["sessions"])
        for r in rows
        if r["sessions"] != "0"
    } == expected
    drops = {f"{a}→{b}": 1 - totals[b] / totals[a] for a, b in itertools.pairwise(FUNNEL)}
    assert max(drops, key=drops.get) == "add_shipping_info→add_payment_info"
    assert 0.45 < drops["add_shipping_info→add_payment_info"] < 0.7
    assert all(drop < 0.4 for step, drop in drops.items() if step != "add_shipping_info→add_payment_info")


def test_ga4_purchases_point_at_web_orders(
    ga4_rows: list[tuple[str, str]], orders: list[dict], summary: dict
) -> None:
    purchases = {
        json.loads(line)["ecommerce"]["transaction_id"]
        for _, line in ga4_rows
        if '"event_name":"purchase"' in line
    }
    web = {str(o["id"]) for o in orders if o["source_name"] == "web"}
    assert purchases <= web
    missing = len(web - purchases)
    assert missing == summary["ga4"]["web_orders_without_ga4_purchase"]
    assert 0.03 < missing / len(web) < 0.2


def test_ga4_sessions_come_from_every_channel_and_device(ga4_rows: list[tuple[str, str]]) -> None:
    sources, devices = Counter(), Counter()
    for _, line in ga4_rows:
        event = json.loads(line)
        if event["event_name"] == "session_start":
            source = event["traffic_source"]
            sources[(source["source"], source["medium"])] += 1
            devices[event["device"]["category"]] += 1
    assert {
        ("google", "organic"),
        ("google", "cpc"),
        ("klaviyo", "email"),
        ("(direct)", "(none)"),
        ("facebook", "social"),
    } <= set(sources)
    assert set(devices) == {"mobile", "desktop", "tablet"} and devices.most_common(1)[0][0] == "mobile"
