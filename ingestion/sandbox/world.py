"""Deterministic sandbox world: people, and what Shopify, Klaviyo and GA4 hold about them.

`generate_world` draws a fake Nordic beauty shop from a seed and a size and writes, under
`root/`, what each source system holds about its people as of one day (`as_of`), and beside it
the ground truth the marts must reproduce. The on-disk layout and the record conventions are the
contract in `README.md` next to this module.

How the world is drawn
----------------------
* People arrive over time. `EXISTING_BASE_SHARE` of `customers` already know the shop on
  `start_date` (they turn up during the first week); the rest arrive at a constant rate of
  `(1 - EXISTING_BASE_SHARE) × customers / days` per day. So about `customers` people exist after
  `days` days, and new people keep arriving when the world is advanced.
* Every person's life comes from their own random streams (`random.Random(f"{seed}:life:{i}")`,
  and `f"{seed}:ids:{i}"` for their identifiers): a time-ordered sequence of happenings (web
  visits, shopping needs, checkout attempts, store visits, campaign emails, sign-ups, ...)
  simulated until `as_of`. Nothing a person does depends on `as_of`, and nothing is ever scheduled
  before the happening that schedules it, so a later `as_of` replays the same past and only adds
  what happens in the added days: new records, and records updated with a later `updated_at`
  (fulfilments, refunds, cancellations, consent changes, new orders of a customer).
* The shop's catalogue and its campaign calendar have streams of their own.
* Ids are intrinsic, never counters that later records could shift: Shopify ids encode the
  creation second and the person, Klaviyo ids are ULID-like (creation millisecond + random).
  Only `order_number`/`name` are counted, in creation order, which a later `as_of` cannot change.

Advancing: `advance_world(root, days=K)` regenerates the world with `as_of + K` and the same seed,
size and `start_date`. `meta.json`'s `days` stays the size parameter ("`customers` people per
`days` days"); the span actually covered is `span_days` (= `days` until the world is advanced).

Big worlds are drawn by several worker processes, each living every n-th person and spooling its
records by day on disk; the files are the same whatever the number of workers.

Wire-format notes: GA4 integers (`event_timestamp`, `int_value`) are JSON numbers, not the strings
BigQuery's own JSON export writes; Shopify line item, refund and transaction ids are int64 values
above 2**53, like the ids of real shops can be.

Definitions the ground truth uses
---------------------------------
* Net revenue of an order: the README definition (0 for test, cancelled or malformed orders,
  otherwise `total_price` minus successful refund transactions).
* Counted order: not test, not cancelled (as of `as_of`), not malformed.
* Churned (`people.csv` `churned`, summary `people.churned`): a person with at least one counted
  order whose last counted order (Europe/Oslo date) lies more than T days before `as_of`, where
  T = 3 × the mean gap in days between their counted orders, clamped to [30, 180]; T = 180 for a
  person with a single counted order. (`stopped_buying_at` in `people.csv` is the hidden moment
  their purchasing really stopped, which the marts can only estimate.)
* Funnel: per GA4 session (`user_pseudo_id`, `ga_session_id`), exact duplicate rows removed; step
  k counts when steps 1..k occur in this order by `event_timestamp`. Sessions never cross local
  midnight, so a session has one `event_date`. `funnel_daily.csv` channel comes from
  `traffic_source.medium`: organic → organic_search, cpc → paid_search, email → email,
  social → social, (none) → direct.
* GA4 `events` counts the rows in the files including exact duplicates; `duplicate_events`
  counts the extra copies. `web_orders_without_ga4_purchase`: web orders whose id never appears
  as a purchase `transaction_id` (the buyer's device blocks the GA4 tag).
* Klaviyo: as with Klaviyo's Shopify integration, every Shopify customer with an email (except
  the shop's test accounts and malformed records) becomes a profile, and every web order of
  theirs that is not malformed becomes a "Placed Order" event (seconds later, so an order in the
  last minute before `as_of` may not have one yet) with `$event_id` = the order id.
* Klaviyo list memberships (`world/klaviyo/list_memberships.jsonl`, summary
  `klaviyo.list_memberships`): "Newsletter" holds every profile whose email marketing consent is
  SUBSCRIBED as of `as_of` (suppressed profiles stay members, as in Klaviyo), joined at the time of
  that consent (the profile's `consent_timestamp`); a profile whose consent is withdrawn leaves
  it. "Customers" holds the profile of every person with at least one order that is not a test
  order (web or store, whatever became of it), joined at their first order, or when their profile
  was created if that came later (Klaviyo's sync lags the order by seconds; a store customer may
  sign up long after buying). Both only depend on what happened before `as_of`, so advancing the
  world only adds members, or changes and removes memberships because of what happened in the
  added days.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import gzip
import heapq
import io
import itertools
import json
import math
import os
import pickle
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# ------------------------------------------------------------------------------------------------
# Weighted choices (defined first: the constants below use it)
# ------------------------------------------------------------------------------------------------


class Weighted:
    """Items drawn with given weights: built from `(item, ..., weight)` tuples."""

    def __init__(self, pairs: tuple | list):
        self.items = [pair[0] for pair in pairs]
        self.cumulative = list(itertools.accumulate(pair[-1] for pair in pairs))
        self.total = self.cumulative[-1]

    def draw(self, rng: random.Random) -> object:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


# ------------------------------------------------------------------------------------------------
# The shop
# ------------------------------------------------------------------------------------------------

SHOP_DOMAIN = "shop360-sandbox.test"
SHOP_URL = f"https://{SHOP_DOMAIN}"
CURRENCY = "EUR"
TIMEZONE = "Europe/Oslo"
API_TOKENS = {"shopify": "shpat_sandbox_token", "klaviyo": "pk_sandbox_key"}
# the sandbox shop's secret for shop360's keyed hash (a real shop sets its own shop360.hash_key)
HASH_KEY = "sandbox_hash_key"
GENERATOR_VERSION = 1

DAY = 86_400
HOUR = 3_600
UNIX_EPOCH = dt.date(1970, 1, 1)
EARLIEST_START = dt.date(2020, 2, 1)  # Shopify-style ids count seconds from ID_EPOCH

# Shopify ids: ((seconds since ID_EPOCH) * 4 + lane) << PERSON_BITS | person index. Increasing in
# creation time like real ids, unique without any global counter.
ID_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
PERSON_BITS = 21
MAX_PEOPLE = 1 << PERSON_BITS
LANE_CUSTOMER, LANE_ORDER, LANE_CHECKOUT = 0, 1, 2
FIRST_ORDER_NUMBER = 1001
ORDER_NUMBER_PLACEHOLDER = "@@ORDER_NUMBER@@"
PRODUCT_ID_BASE = 8_000_000_000_000
VARIANT_ID_BASE = 9_000_000_000_000
INVENTORY_ITEM_ID_BASE = 10_000_000_000_000
STORES = {
    71_234_567_001: "Oslo – Karl Johans gate",
    71_234_567_002: "Bergen – Torgallmenningen",
}
WEST_NORWAY = {"Bergen", "Stavanger"}

FREE_SHIPPING_FROM = 4_900  # cents, after discounts
SHIPPING_STANDARD = ("Standard", 590)
SHIPPING_EXPRESS = ("Express", 990)
SHIPPING_FREE = ("Free shipping", 0)
VAT_DIVISOR = 5  # prices include 25 % VAT, so the tax is a fifth of the gross

WEB_GATEWAYS = Weighted((("shopify_payments", 0.6), ("paypal", 0.2), ("klarna", 0.2)))
POS_GATEWAYS = Weighted((("shopify_payments", 0.7), ("cash", 0.3)))
TEST_GATEWAY = "bogus"
CANCEL_REASONS = Weighted(
    (("customer", 0.5), ("inventory", 0.2), ("fraud", 0.1), ("declined", 0.1), ("other", 0.1))
)

# ------------------------------------------------------------------------------------------------
# How often things happen (rates are per person per day; probabilities per occasion)
# ------------------------------------------------------------------------------------------------

EXISTING_BASE_SHARE = 0.35
EXISTING_BASE_ARRIVAL_DAYS = 7
KIND_WEIGHTS = Weighted((("shopper", 0.60), ("store", 0.08), ("subscriber", 0.12), ("visitor", 0.20)))
TEST_PERSON_EVERY, TEST_PERSON_OFFSET, TEST_PERSON_BELOW = 250, 3, 2_500
MALFORMED_SIGNUP_EVERY, MALFORMED_SIGNUP_OFFSET = 200, 11
MALFORMED_FIRST_ORDER_EVERY, MALFORMED_FIRST_ORDER_OFFSET = 200, 17
MALFORMED_ORDER_SHARE = 0.004
# People planted by index, so that even small worlds hold every rare case.
PLANTED_ROLES_EVERY = 100
PLANTED_ROLES = {
    23: "dead_mailbox",  # a subscriber whose first campaign bounces
    47: "unsubscriber",  # a subscriber who opens the first campaign and unsubscribes
    61: "spam_complainer",  # a subscriber who marks the first campaign as spam
    33: "duplicate_signup",  # a shopper who signs up early, then again under another way of writing the email
    83: "duplicate_signup",
}

BROWSE_PER_DAY = {
    "shopper": 1 / 16,
    "subscriber": 1 / 22,
    "store": 1 / 45,
    "test": 1 / 10,
    "malformed": 1 / 20,
}
VISITOR_PER_DAY = 1 / 6
NEED_PER_DAY = {"shopper": 1 / 45, "subscriber": 1 / 250}
POS_PER_DAY = {"store": 1 / 35, "shopper": 1 / 90}
TEST_ORDER_PER_DAY = 1 / 20
MEAN_DAYS_UNTIL_STOP = 300
ONE_TIME_BUYER_SHARE = 0.3
BROWSE_AFTER_STOP_FACTOR = 0.2
OPEN_AFTER_STOP_FACTOR = 0.4

ATTEMPT_RIGHT_AWAY = 0.45
RETRY_AFTER_ABANDON = 0.35
MAX_RETRIES = 2
COMEBACK_CODE_ON_RETRY = 0.3
GUEST_ONLY_SHARE = 0.25
ACCOUNT_AT_FIRST_ORDER = 0.65
EARLY_SIGNUP_SHARE = 0.25
DUPLICATE_SIGNUP_SHARE = 0.05
DUPLICATE_ACCOUNT_PREFERENCE = 0.6
POPUP_SUBSCRIBE_SHARE = {"shopper": 0.3, "subscriber": 1.0}
ACCEPTS_MARKETING_AT_CHECKOUT = 0.4
OMNICHANNEL_SHARE = 0.15
POS_DETAIL_WEIGHTS = Weighted((("walk_in", 0.4), ("phone", 0.35), ("email", 0.25)))
POS_SIGNUP_SHARE = 0.35  # of store customers who give an email
CASHIER_LOOKS_UP_CUSTOMER = 0.7
PHONE_SHARE = 0.6
SPACED_PHONE_SHARE = 0.35

# Email identifiers: the same address written differently in different records.
VARIANT_EMAIL_IN_ACCOUNT = 0.12
VARIANT_EMAIL_IN_PROFILE = 0.25
VARIANT_EMAIL_TYPED_AT_CHECKOUT = 0.2

# Checkout funnel. The shipping-cost shock: a cart below FREE_SHIPPING_FROM rarely gets past the
# shipping step, which makes add_shipping_info → add_payment_info the one big drop.
P_VIEW_ITEM_IN_BROWSE = 0.6
P_QUICK_ADD_WITHOUT_VIEW = 0.06
P_CART_AFTER_VIEW = 0.62
P_VIEW_BEFORE_BUYING = 0.9
CASUAL_STEPS = {"begin": 0.55, "ship": 0.85, "buy": 0.9}
INTENT_STEPS = {"begin": 0.97, "ship": 0.95, "buy": 0.93}
TEST_STEPS = {"begin": 1.0, "ship": 1.0, "buy": 1.0}  # staff testing the checkout always finish
P_PAY_FREE_SHIPPING = 0.75
P_PAY_PAID_SHIPPING = 0.35
P_EXPRESS_SHIPPING = 0.08

# Orders after the fact.
CANCEL_SHARE = 0.03
REFUND_SHARE = 0.07
PARTIAL_REFUND_SHARE = 0.6
FAILED_REFUND_ATTEMPT_SHARE = 0.12
GOODWILL_REFUND_SHARE = (0.2, 0.5)  # of the total, when a partial refund has no item to take back
# Every PLANTED_FATE_EVERY-th person's first eligible order meets this fate, so small worlds have them.
PLANTED_FATE_EVERY = 40
PLANTED_ORDER_FATES = {9: "cancel", 19: "partial_refund", 29: "full_refund"}
REPLENISH_LOYALTY = 0.75
REPLENISH_NOISE = 0.12  # sigma of the lognormal factor on a product's cycle
COMPLEMENT_SHARE = 0.4

# Discount codes.
WELCOME_CODE = ("WELCOME10", "percentage", 10)
COMEBACK_CODE = ("COMEBACK5", "fixed_amount", 500)
XMAS_CODE = ("XMAS15", "percentage", 15)
BLACK_FRIDAY_CODE = ("BLACKFRIDAY25", "percentage", 25)
P_WELCOME_CODE = 0.5
P_XMAS_CODE = 0.2
P_BLACK_FRIDAY_CODE = 0.6
P_CAMPAIGN_CODE = 0.7
CAMPAIGN_CODE_VALID_DAYS = 5

# Email.
CAMPAIGN_SECOND_PER_WEEK = 0.45
OPEN_RATE_BETA = (1.4, 2.6)  # mean 0.35, ≈ 0.30 of received once churners stop opening
CLICK_GIVEN_OPEN = 0.1  # ≈ 3 % of received
UNSUBSCRIBE_GIVEN_OPEN = 0.012
SPAM_SHARE = 0.0006
BOUNCE_SHARE = 0.004
CLICK_ATTEMPTS_NOW = 0.08
CLICK_ATTEMPTS_WITHIN_5_DAYS = 0.2
PREFERENCE_PAGE_WITHDRAWAL = 0.05
INTERESTS_ANSWER_SHARE = 0.5
PREFERRED_CHANNEL_ANSWER_SHARE = 0.35
ABANDON_REASON_ANSWER_SHARE = 0.3
PREFERRED_CHANNELS = Weighted(
    (("email", 0.45), ("instagram", 0.2), ("sms", 0.15), ("in_store", 0.12), ("none", 0.08))
)
ABANDON_REASONS_AT_SHIPPING = Weighted(
    (("shipping_cost", 0.7), ("delivery_time", 0.15), ("just_browsing", 0.15))
)
ABANDON_REASONS_ELSEWHERE = Weighted(
    (("price", 0.3), ("payment_options", 0.3), ("just_browsing", 0.3), ("other", 0.1))
)

# GA4.
DEVICE_COUNT_WEIGHTS = Weighted(((1, 0.5), (2, 0.35), (3, 0.15)))
DEVICE_KINDS = {
    "mobile": (("iOS", "Safari", 0.55), ("Android", "Chrome", 0.45)),
    "desktop": (
        ("Windows", "Chrome", 0.5),
        ("Macintosh", "Safari", 0.25),
        ("Windows", "Edge", 0.15),
        ("Macintosh", "Chrome", 0.1),
    ),
    "tablet": (("iOS", "Safari", 0.7), ("Android", "Chrome", 0.3)),
}
DEVICE_CATEGORY_WEIGHTS = Weighted((("mobile", 0.6), ("desktop", 0.3), ("tablet", 0.1)))
ADBLOCK_SHARE = {"mobile": 0.06, "desktop": 0.2, "tablet": 0.06}
COOKIE_RESET = {"Safari": 0.05, "Chrome": 0.015, "Edge": 0.015}
DUPLICATE_EVENT_SHARE = 0.01
TRAFFIC_SOURCES = {
    "organic_search": ("google", "organic", "(organic)"),
    "paid_search": ("google", "cpc", "brand_search"),
    "social": ("facebook", "social", "(not set)"),
    "direct": ("(direct)", "(none)", "(direct)"),
}
FIRST_VISIT_CHANNELS = Weighted(
    (("organic_search", 0.4), ("paid_search", 0.25), ("social", 0.2), ("direct", 0.15))
)
RETURN_VISIT_CHANNELS = Weighted(
    (("direct", 0.35), ("organic_search", 0.3), ("paid_search", 0.2), ("social", 0.15))
)
REFERRERS = {
    "organic_search": "https://www.google.com/",
    "paid_search": "https://www.google.com/",
    "social": "https://www.facebook.com/",
    "email": None,
    "direct": None,
}
FUNNEL_STEPS = (
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
)

# Klaviyo.
METRIC_NAMES = (
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Bounced Email",
    "Unsubscribed",
    "Marked Email as Spam",
    "Placed Order",
)
LIST_NAMES = ("Newsletter", "Customers")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CROCKFORD_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)  # 10 bits → 2 characters
SHORT_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"

# Spools keep sorted output in memory up to this many bytes each, then spill to disk.
SPOOL_MEMORY_BYTES = 384 * 1024 * 1024
# Big worlds are drawn by several processes (same files either way).
PARALLEL_FROM_PERSON_DAYS = 2_000_000
PARALLEL_MAX_WORKERS = 4
GA4_GZIP_LEVEL = 4

# ------------------------------------------------------------------------------------------------
# People's attributes
# ------------------------------------------------------------------------------------------------

COUNTRIES = {
    "NO": {
        "name": "Norway",
        "weight": 0.55,
        "locale": "nb-NO",
        "tz": "Europe/Oslo",
        "phone": ("+47", "9", 7),
        "cities": (
            ("Oslo", "0150", 0.38),
            ("Bergen", "5003", 0.15),
            ("Trondheim", "7010", 0.12),
            ("Stavanger", "4006", 0.1),
            ("Kristiansand", "4608", 0.07),
            ("Tromsø", "9008", 0.06),
            ("Drammen", "3015", 0.06),
            ("Fredrikstad", "1606", 0.06),
        ),
        "first": (
            "Anna",
            "Ingrid",
            "Kari",
            "Nora",
            "Emma",
            "Sofie",
            "Maja",
            "Ida",
            "Thea",
            "Silje",
            "Marte",
            "Hanne",
            "Åse",
            "Lars",
            "Ole",
            "Jonas",
            "Erik",
            "Magnus",
            "Henrik",
            "Sindre",
        ),
        "last": (
            "Berg",
            "Hansen",
            "Johansen",
            "Olsen",
            "Larsen",
            "Andersen",
            "Pedersen",
            "Nilsen",
            "Haugen",
            "Bakken",
            "Solberg",
            "Dahl",
            "Lie",
            "Strand",
            "Moen",
            "Eriksen",
            "Sæther",
            "Løken",
        ),
    },
    "SE": {
        "name": "Sweden",
        "weight": 0.2,
        "locale": "sv-SE",
        "tz": "Europe/Stockholm",
        "phone": ("+46", "7", 8),
        "cities": (
            ("Stockholm", "11120", 0.45),
            ("Göteborg", "41101", 0.25),
            ("Malmö", "21120", 0.18),
            ("Uppsala", "75320", 0.12),
        ),
        "first": (
            "Elsa",
            "Alice",
            "Maja",
            "Wilma",
            "Ebba",
            "Klara",
            "Linnea",
            "Saga",
            "Astrid",
            "Freja",
            "Oscar",
            "Lucas",
            "William",
            "Hugo",
            "Axel",
        ),
        "last": (
            "Andersson",
            "Johansson",
            "Karlsson",
            "Nilsson",
            "Eriksson",
            "Larsson",
            "Olsson",
            "Persson",
            "Svensson",
            "Gustafsson",
            "Lindqvist",
            "Bergström",
            "Sjöberg",
        ),
    },
    "DK": {
        "name": "Denmark",
        "weight": 0.12,
        "locale": "da-DK",
        "tz": "Europe/Copenhagen",
        "phone": ("+45", "2", 7),
        "cities": (
            ("København", "1050", 0.5),
            ("Aarhus", "8000", 0.25),
            ("Odense", "5000", 0.15),
            ("Aalborg", "9000", 0.1),
        ),
        "first": (
            "Ida",
            "Emma",
            "Freja",
            "Clara",
            "Laura",
            "Mathilde",
            "Sofie",
            "Karla",
            "Oliver",
            "Noah",
            "Victor",
            "Frederik",
        ),
        "last": (
            "Nielsen",
            "Jensen",
            "Hansen",
            "Pedersen",
            "Christensen",
            "Larsen",
            "Sørensen",
            "Rasmussen",
            "Jørgensen",
            "Madsen",
            "Kristensen",
        ),
    },
    "DE": {
        "name": "Germany",
        "weight": 0.13,
        "locale": "de-DE",
        "tz": "Europe/Berlin",
        "phone": ("+49", "15", 9),
        "cities": (
            ("Berlin", "10115", 0.35),
            ("Hamburg", "20095", 0.25),
            ("München", "80331", 0.2),
            ("Köln", "50667", 0.1),
            ("Frankfurt am Main", "60311", 0.1),
        ),
        "first": (
            "Mia",
            "Emilia",
            "Hannah",
            "Lea",
            "Lena",
            "Marie",
            "Lina",
            "Paul",
            "Leon",
            "Felix",
            "Jonas",
            "Lukas",
        ),
        "last": (
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "Koch",
            "Richter",
        ),
    },
}
COUNTRY_CHOICE = Weighted(tuple((code, country["weight"]) for code, country in COUNTRIES.items()))
CITY_CHOICE = {
    code: Weighted(tuple((city, city[2]) for city in c["cities"])) for code, c in COUNTRIES.items()
}
DEVICE_CHOICE = {
    category: Weighted(tuple(((o, b), w) for o, b, w in kinds)) for category, kinds in DEVICE_KINDS.items()
}
# Reserved domains (RFC 2606 / 6761): the sandbox never holds anybody's real address.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example", "post.example")
ASCII_FOLD = str.maketrans({"ø": "o", "å": "a", "æ": "ae", "ä": "a", "ö": "o", "ü": "u", "ß": "ss", "é": "e"})
DOCUMENTATION_NETS = ("192.0.2", "198.51.100", "203.0.113")

# ------------------------------------------------------------------------------------------------
# The catalogue: (title, price in EUR, replenish cycle in days or None, variant kind, complement)
# ------------------------------------------------------------------------------------------------

CATALOG = {
    "skincare": (
        ("Hydra Face Cream", 34.9, 42, "size", "Gentle Cleansing Gel"),
        ("Gentle Cleansing Gel", 19.9, 35, "size", "Hydra Face Cream"),
        ("Vitamin C Serum", 44.9, None, "single", None),
        ("Night Repair Cream", 39.9, None, "single", None),
        ("Eye Contour Cream", 29.9, None, "single", None),
        ("Clay Face Mask", 24.9, None, "single", None),
        ("Balancing Toner", 21.9, None, "size", None),
        ("Daily Sun Cream SPF 50", 26.9, None, "size", None),
        ("Lip Balm", 7.9, None, "single", None),
    ),
    "haircare": (
        ("Daily Shampoo", 17.9, 49, "size", "Daily Conditioner"),
        ("Daily Conditioner", 18.9, 49, "size", "Daily Shampoo"),
        ("Argan Hair Oil", 29.9, None, "single", None),
        ("Repair Hair Mask", 24.9, None, "single", None),
        ("Dry Shampoo", 14.9, None, "single", None),
        ("Styling Cream", 19.9, None, "single", None),
        ("Heat Protect Spray", 21.9, None, "single", None),
        ("Scalp Scrub", 23.9, None, "single", None),
    ),
    "makeup": (
        ("Volume Mascara", 22.9, 70, "single", "Precision Eyeliner"),
        ("Precision Eyeliner", 16.9, None, "single", "Volume Mascara"),
        ("Silk Foundation", 36.9, None, "shade", None),
        ("Cover Concealer", 24.9, None, "shade", None),
        ("Velvet Lipstick", 21.9, None, "shade", None),
        ("Lip Gloss", 15.9, None, "shade", None),
        ("Cream Blush", 19.9, None, "shade", None),
        ("Eyeshadow Palette", 39.9, None, "single", None),
        ("Brow Gel", 17.9, None, "single", None),
        ("Setting Powder", 27.9, None, "shade", None),
    ),
    "fragrance": (
        ("Nordic Bloom Eau de Parfum", 69.9, None, "size", "Nordic Bloom Body Mist"),
        ("Nordic Bloom Body Mist", 24.9, None, "single", "Nordic Bloom Eau de Parfum"),
        ("Sea Salt Eau de Toilette", 54.9, None, "size", None),
        ("Cedar Eau de Parfum", 74.9, None, "size", None),
        ("Solid Perfume", 19.9, None, "single", None),
        ("Discovery Set", 29.9, None, "single", None),
    ),
    "body": (
        ("Body Lotion", 19.9, 56, "size", "Shower Gel"),
        ("Shower Gel", 12.9, 28, "size", "Body Lotion"),
        ("Hand Cream", 11.9, None, "single", None),
        ("Body Scrub", 22.9, None, "single", None),
        ("Natural Deodorant", 13.9, 35, "single", None),
        ("Foot Cream", 14.9, None, "single", None),
        ("Bath Salts", 17.9, None, "single", None),
        ("Body Oil", 27.9, None, "single", None),
    ),
    "accessories": (
        ("Makeup Brush Set", 39.9, None, "single", None),
        ("Cotton Pads", 4.9, 30, "single", None),
        ("Jade Roller", 24.9, None, "single", None),
        ("Toiletry Bag", 29.9, None, "single", None),
        ("Hair Clips", 9.9, None, "single", None),
        ("Nail File Set", 8.9, None, "single", None),
        ("Silk Scrunchies", 14.9, None, "single", None),
    ),
}
VARIANT_OPTIONS = {
    "single": ("Title", (("Default Title", 1.0),)),
    "size": ("Size", (("50 ml", 1.0), ("100 ml", 1.7))),
    "shade": ("Shade", (("Light", 1.0), ("Medium", 1.0), ("Dark", 1.0))),
}
VENDORS = ("Nordlys Skin", "Fjell & Fjord", "Havbris", "Lumi Beauty", "Skog Botanics", "Polar Glow")
CAMPAIGN_THEMES = (
    ("New arrivals", "Fresh in: new favourites for your routine", "NEW"),
    ("Skincare edit", "Your skin will thank you", "GLOW"),
    ("Hair care week", "Good hair days ahead", "HAIR"),
    ("Bestsellers", "What everyone is buying right now", "BEST"),
    ("Fragrance notes", "Find your signature scent", "SCENT"),
    ("Body care ritual", "Slow down with a body care ritual", "BODY"),
    ("Makeup must-haves", "Five makeup must-haves", "MAKEUP"),
    ("Members offer", "A little something for you", "MEMBER"),
)

# ------------------------------------------------------------------------------------------------
# Time: Europe/Oslo without a tz database (EU rule: summer time between 01:00 UTC on the last
# Sundays of March and October), fast enough for millions of events.
# ------------------------------------------------------------------------------------------------


def _last_sunday(year: int, month: int) -> dt.date:
    last_day = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last_day - dt.timedelta(days=(last_day.weekday() + 1) % 7)


def _utc_midnight(day: dt.date) -> int:
    return (day - UNIX_EPOCH).days * DAY


SUMMER_TIME_SWITCHES = tuple(
    _utc_midnight(_last_sunday(year, month)) + HOUR for year in range(1990, 2100) for month in (3, 10)
)


def oslo_offset(ts: float) -> int:
    """Seconds Europe/Oslo is ahead of UTC at `ts`."""
    return 2 * HOUR if bisect.bisect_right(SUMMER_TIME_SWITCHES, ts) % 2 else HOUR


def local_day_number(ts: float) -> int:
    """Days since 1970-01-01 of the Europe/Oslo calendar date at `ts`."""
    return int(ts + oslo_offset(ts)) // DAY


def local_midnight(day: dt.date) -> int:
    """Epoch seconds of 00:00 Europe/Oslo on `day` (switches happen at 01:00 UTC, never then)."""
    utc = _utc_midnight(day)
    return utc - oslo_offset(utc - HOUR)


def iso_local(ts: int) -> str:
    """Shopify style: `2026-03-01T14:05:09+01:00`."""
    offset = oslo_offset(ts)
    t = time.gmtime(ts + offset)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f"+0{offset // HOUR}:00"
    )


def iso_utc(ts: int) -> str:
    """Klaviyo style: `2026-03-01T13:05:09+00:00`."""
    t = time.gmtime(ts)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}+00:00"
    )


def date_of_day_number(number: int) -> dt.date:
    return UNIX_EPOCH + dt.timedelta(days=number)


def _black_friday(year: int) -> dt.date:
    first = dt.date(year, 11, 1)
    fourth_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7 + 21)
    return fourth_thursday + dt.timedelta(days=1)


# Seasonality: November/December peak, Black Friday weekend through Cyber Monday on top.
MONTH_FACTOR = (0.8, 0.8, 0.9, 0.95, 1.0, 0.95, 0.8, 0.85, 0.95, 1.0, 1.45, 1.6)
BLACK_FRIDAY_FACTOR = 3.0
CHRISTMAS_RUSH = (10, 20, 1.3)  # December days with extra demand
CHRISTMAS_CALM = (24, 26, 0.4)


def season_factor(day: dt.date) -> float:
    factor = MONTH_FACTOR[day.month - 1]
    friday = _black_friday(day.year)
    if friday <= day <= friday + dt.timedelta(days=3):
        factor *= BLACK_FRIDAY_FACTOR
    if day.month == 12:
        for first, last, extra in (CHRISTMAS_RUSH, CHRISTMAS_CALM):
            if first <= day.day <= last:
                factor *= extra
    return factor


def _normalised(values: tuple[float, ...]) -> tuple[float, ...]:
    mean = sum(values) / len(values)
    return tuple(v / mean if mean else 0.0 for v in values)


# Online: lunch bump, evening peak 19-22, Sunday the busiest day.
ONLINE_WORKDAY_HOURS = _normalised(
    (
        0.15,
        0.08,
        0.04,
        0.03,
        0.03,
        0.06,
        0.2,
        0.45,
        0.6,
        0.65,
        0.75,
        0.85,
        1.05,
        0.95,
        0.8,
        0.8,
        0.85,
        1.0,
        1.3,
        1.7,
        1.9,
        1.8,
        1.3,
        0.6,
    )
)
ONLINE_WEEKEND_HOURS = _normalised(
    (
        0.2,
        0.1,
        0.05,
        0.03,
        0.03,
        0.04,
        0.08,
        0.2,
        0.45,
        0.7,
        0.95,
        1.1,
        1.15,
        1.1,
        1.05,
        1.05,
        1.1,
        1.2,
        1.4,
        1.75,
        1.95,
        1.85,
        1.3,
        0.6,
    )
)
ONLINE_WEEKDAY_FACTOR = _normalised((0.95, 0.9, 0.9, 0.95, 0.8, 0.85, 1.65))
# In store: opening hours only, Saturday the busiest, closed on Sunday.
_STORE_DAY = (0,) * 10 + (0.6, 0.9, 1.2, 1.3, 1.2, 1.0, 1.0, 0.8) + (0,) * 6
_STORE_LATE = (0,) * 10 + (0.6, 0.9, 1.2, 1.3, 1.2, 1.0, 1.0, 1.0, 0.9, 0.6) + (0,) * 4
_STORE_SATURDAY = (0,) * 10 + (0.9, 1.2, 1.4, 1.4, 1.2, 1.0) + (0,) * 8
POS_HOURS = tuple(
    _normalised(h)
    for h in (_STORE_DAY, _STORE_DAY, _STORE_DAY, _STORE_LATE, _STORE_DAY, _STORE_SATURDAY, (0.0,) * 24)
)
POS_WEEKDAY_FACTOR = _normalised((0.8, 0.85, 0.9, 1.1, 1.15, 1.6, 0.0))


class Rhythm:
    """When people do something: season × weekday × hour-of-day intensity, about 1 per day on average."""

    def __init__(self, hours_by_weekday: tuple[tuple[float, ...], ...], weekday_factor: tuple[float, ...]):
        self.hours_by_weekday = hours_by_weekday
        self.weekday_factor = weekday_factor
        self._by_hour: dict[int, float] = {}
        self._by_day: dict[int, tuple[float, ...]] = {}
        self._hour_choice: dict[int, Weighted] = {}
        self._month_bound: dict[tuple[int, int], tuple[int, float]] = {}
        self._month_by_hour: dict[int, tuple[int, float]] = {}

    def at(self, ts: float) -> float:
        hour_index = int(ts) // HOUR
        value = self._by_hour.get(hour_index)
        if value is None:
            start = hour_index * HOUR
            local = start + oslo_offset(start)
            value = self.day_weights(local // DAY)[(local % DAY) // HOUR]
            self._by_hour[hour_index] = value
        return value

    def hour_choice(self, day_number: int) -> Weighted:
        choice = self._hour_choice.get(day_number)
        if choice is None:
            choice = self._hour_choice[day_number] = Weighted(tuple(enumerate(self.day_weights(day_number))))
        return choice

    def month_bound(self, ts: float) -> tuple[int, float]:
        """End of the local month holding `ts` and the highest intensity within it."""
        hour_index = int(ts) // HOUR  # local months start on whole UTC hours
        bound = self._month_by_hour.get(hour_index)
        if bound is None:
            bound = self._month_by_hour[hour_index] = self._month_bound_of(ts)
        return bound

    def _month_bound_of(self, ts: float) -> tuple[int, float]:
        day = date_of_day_number(local_day_number(ts))
        key = (day.year, day.month)
        bound = self._month_bound.get(key)
        if bound is None:
            first = dt.date(day.year, day.month, 1)
            following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
            first_number = (first - UNIX_EPOCH).days
            peak = max(max(self.day_weights(first_number + n)) for n in range((following - first).days))
            bound = self._month_bound[key] = (local_midnight(following), peak)
        return bound

    def day_weights(self, day_number: int) -> tuple[float, ...]:
        """Intensity of each local hour of one local day."""
        weights = self._by_day.get(day_number)
        if weights is None:
            day = date_of_day_number(day_number)
            scale = season_factor(day) * self.weekday_factor[day.weekday()]
            weights = tuple(h * scale for h in self.hours_by_weekday[day.weekday()])
            self._by_day[day_number] = weights
        return weights


def online_rhythm() -> Rhythm:
    return Rhythm(
        tuple(ONLINE_WORKDAY_HOURS if d < 5 else ONLINE_WEEKEND_HOURS for d in range(7)),
        ONLINE_WEEKDAY_FACTOR,
    )


def store_rhythm() -> Rhythm:
    return Rhythm(POS_HOURS, POS_WEEKDAY_FACTOR)


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def vat_of(gross_cents: int) -> int:
    return gross_cents // VAT_DIVISOR


def money_number(cents: int) -> float:
    return round(cents / 100, 2)


def ulid(ms: int, rng: random.Random) -> str:
    """26-character ULID-like id: creation millisecond, then 80 random bits (sorts by time)."""
    n = (ms << 80) | rng.getrandbits(80)
    return "".join(CROCKFORD_PAIRS[(n >> shift) & 1023] for shift in range(120, -1, -10))


def uuid4(rng: random.Random) -> str:
    """A random (version 4) UUID from `rng`."""
    n = (rng.getrandbits(128) & ~(0xF << 76) | (4 << 76)) & ~(0x3 << 62) | (0x2 << 62)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def short_id(rng: random.Random, length: int = 6) -> str:
    return "".join(rng.choice(SHORT_ID_ALPHABET) for _ in range(length))


def shopify_id(ts: int, lane: int, person: int) -> int:
    return (((ts - ID_EPOCH) * 4 + lane) << PERSON_BITS) | person


def json_line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def email_variant(email: str, rng: random.Random) -> str:
    """The same address written differently: other case and/or surrounding whitespace."""
    local, domain = email.split("@")
    titled = ".".join(part.capitalize() for part in local.split("."))
    written = (
        f"{titled}@{domain.capitalize()}",
        email.upper(),
        f"{titled}@{domain}",
        email,
    )[rng.randrange(4)]
    pad = rng.random()
    if pad < 0.35 or written == email:
        written = " " + written
    elif pad < 0.55:
        written = written + " "
    return written


def spaced_phone(phone: str) -> str:
    """`+4791234567` written as `+47 912 34 567`."""
    prefix, rest = phone[:3], phone[3:]
    return f"{prefix} {rest[:3]} {rest[3:5]} {rest[5:]}".strip()


# ------------------------------------------------------------------------------------------------
# The catalogue
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    id: int
    product: Product
    title: str
    sku: str
    price: int  # cents
    grams: int
    position: int


@dataclass(eq=False)
class Product:
    id: int
    title: str
    handle: str
    category: str
    vendor: str
    created: int
    replenish_days: int | None
    popularity: float
    complement_title: str | None
    option_name: str
    variants: list[Variant] = field(default_factory=list)


class Catalog:
    """The shop's products, with the weights people pick them by."""

    def __init__(self, seed: int, start: int):
        rng = random.Random(f"{seed}:catalog")
        self.products: list[Product] = []
        for category, templates in CATALOG.items():
            for title, euros, replenish_days, variant_kind, complement in templates:
                index = len(self.products)
                product = Product(
                    id=PRODUCT_ID_BASE + 1_000 * (index + 1),
                    title=title,
                    handle=title.lower().replace(" ", "-"),
                    category=category,
                    vendor=rng.choice(VENDORS),
                    created=start - (400 - 6 * index) * DAY + rng.randrange(8 * HOUR, 16 * HOUR),
                    replenish_days=replenish_days,
                    popularity=rng.lognormvariate(0, 0.8) * (1.5 if replenish_days else 1.0),
                    complement_title=complement,
                    option_name=VARIANT_OPTIONS[variant_kind][0],
                )
                base = euros * rng.uniform(0.92, 1.08)
                for position, (option, factor) in enumerate(VARIANT_OPTIONS[variant_kind][1], start=1):
                    product.variants.append(
                        Variant(
                            id=VARIANT_ID_BASE + 1_000 * (index + 1) + position,
                            product=product,
                            title=option,
                            sku=f"{category[:3].upper()}-{index + 1:03d}-{position}",
                            price=max(190, round(base * factor) * 100 - 10),
                            grams=rng.randrange(40, 400),
                            position=position,
                        )
                    )
                self.products.append(product)
        self.by_title = {p.title: p for p in self.products}
        self.by_id = {p.id: p for p in self.products}
        self.by_category = {c: [p for p in self.products if p.category == c] for c in CATALOG}
        self.category_choice = Weighted(
            [(c, sum(p.popularity for p in self.by_category[c])) for c in CATALOG]
        )
        self._product_choice = {
            c: Weighted([(p, p.popularity) for p in self.by_category[c]]) for c in CATALOG
        }
        self._any_product = Weighted([(p, p.popularity) for p in self.products])
        self._ga4_items: dict[tuple[int, int], str] = {}

    def pick_product(self, rng: random.Random, interests: tuple[str, ...]) -> Product:
        if interests and rng.random() < 0.7:
            return self._product_choice[interests[int(rng.random() * len(interests))]].draw(rng)
        return self._any_product.draw(rng)

    def complement(self, product: Product) -> Product | None:
        return self.by_title.get(product.complement_title) if product.complement_title else None

    def ga4_item(self, variant: Variant, quantity: int) -> str:
        key = (variant.id, quantity)
        item = self._ga4_items.get(key)
        if item is None:
            item = json_line(
                {
                    "item_id": str(variant.product.id),
                    "item_name": variant.product.title,
                    "item_variant": variant.title,
                    "item_category": variant.product.category,
                    "price": money_number(variant.price),
                    "quantity": quantity,
                }
            )
            self._ga4_items[key] = item
        return item

    def records(self) -> list[dict]:
        return [self._product_record(p) for p in self.products]

    @staticmethod
    def _product_record(product: Product) -> dict:
        created = iso_local(product.created)
        return {
            "id": product.id,
            "title": product.title,
            "body_html": f"<p>{product.title} by {product.vendor}.</p>",
            "vendor": product.vendor,
            "product_type": product.category,
            "created_at": created,
            "handle": product.handle,
            "updated_at": created,
            "published_at": created,
            "template_suffix": None,
            "published_scope": "web",
            "tags": ", ".join([product.category] + (["replenishable"] if product.replenish_days else [])),
            "status": "active",
            "admin_graphql_api_id": f"gid://shopify/Product/{product.id}",
            "variants": [
                {
                    "id": v.id,
                    "product_id": product.id,
                    "title": v.title,
                    "price": money(v.price),
                    "sku": v.sku,
                    "position": v.position,
                    "inventory_policy": "deny",
                    "compare_at_price": None,
                    "fulfillment_service": "manual",
                    "inventory_management": "shopify",
                    "option1": v.title,
                    "option2": None,
                    "option3": None,
                    "created_at": created,
                    "updated_at": created,
                    "taxable": True,
                    "barcode": f"70{v.id % 10**11:011d}",
                    "grams": v.grams,
                    "weight": v.grams,
                    "weight_unit": "g",
                    "inventory_item_id": INVENTORY_ITEM_ID_BASE + (v.id - VARIANT_ID_BASE),
                    "requires_shipping": True,
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{v.id}",
                }
                for v in product.variants
            ],
            "options": [
                {
                    "id": product.id + 1,
                    "product_id": product.id,
                    "name": product.option_name,
                    "position": 1,
                    "values": [v.title for v in product.variants],
                }
            ],
            "images": [],
            "image": None,
        }


# ------------------------------------------------------------------------------------------------
# The shop's campaign calendar
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    subject: str
    send_time: int
    code: tuple[str, str, int] | None  # (code, type, percent) valid CAMPAIGN_CODE_VALID_DAYS days
    created: int

    @property
    def utm_name(self) -> str:
        return self.name.lower().replace(" ", "_")


def build_campaigns(seed: int, start_date: dt.date, end: int) -> list[Campaign]:
    """1-2 campaigns a week (Tuesday morning, sometimes Thursday evening), from the shop's stream.

    Every week draws the same numbers whatever `end` is, so a later `end` only adds campaigns.
    """
    rng = random.Random(f"{seed}:campaigns")
    ids = random.Random(f"{seed}:campaign-ids")
    week = start_date - dt.timedelta(days=start_date.weekday())
    start = local_midnight(start_date)
    campaigns: list[Campaign] = []
    while local_midnight(week) < end:
        slots = [(1, 10)]
        if rng.random() < CAMPAIGN_SECOND_PER_WEEK:
            slots.append((3, 18))
        for weekday, hour in slots:
            day = week + dt.timedelta(days=weekday)
            send = local_midnight(day) + hour * HOUR + rng.randrange(0, 30) * 60
            theme, subject, code_word = CAMPAIGN_THEMES[rng.randrange(len(CAMPAIGN_THEMES))]
            percent = rng.choice((10, 15, 20))
            with_code = rng.random() < 0.4
            campaign_id = ulid((send - 2 * DAY) * 1000 + rng.randrange(1000), ids)
            friday = _black_friday(day.year)
            if friday - dt.timedelta(days=4) <= day <= friday + dt.timedelta(days=3):
                theme, subject, code = "Black Friday", "Black Friday: 25 % off everything", BLACK_FRIDAY_CODE
            elif day.month == 12 and day.day <= 20:
                theme, subject, code = "Christmas gift guide", "Gifts they will love", XMAS_CODE
            else:
                code = (f"{code_word}{percent}", "percentage", percent) if with_code else None
            if start <= send < end:
                campaigns.append(
                    Campaign(
                        id=campaign_id,
                        name=f"{theme} {day.isoformat()}",
                        subject=subject,
                        send_time=send,
                        code=code,
                        created=send - 2 * DAY,
                    )
                )
        week += dt.timedelta(days=7)
    return campaigns


def campaign_record(campaign: Campaign, list_id: str) -> dict:
    send = iso_utc(campaign.send_time)
    return {
        "type": "campaign",
        "id": campaign.id,
        "attributes": {
            "name": campaign.name,
            "status": "Sent",
            "archived": False,
            "audiences": {"included": [list_id], "excluded": []},
            "send_options": {"use_smart_sending": True},
            "tracking_options": {"is_tracking_opens": True, "is_tracking_clicks": True},
            "send_strategy": {"method": "static", "datetime": send},
            "created_at": iso_utc(campaign.created),
            "scheduled_at": iso_utc(campaign.send_time - DAY),
            "updated_at": send,
            "send_time": send,
            "subject": campaign.subject,
        },
    }


# ------------------------------------------------------------------------------------------------
# A person's records (facts with times; rendered "as of" the world's end)
# ------------------------------------------------------------------------------------------------


@dataclass
class Line:
    id: int
    variant: Variant
    quantity: int
    discount: int = 0  # cents allocated from the order's discount codes


@dataclass
class Refund:
    id: int
    created: int
    lines: list[tuple[Line, int, int]]  # (line, quantity, subtotal cents)
    amount: int
    failed_attempt_first: bool


@dataclass(eq=False)
class CustomerRec:
    id: int
    created: int
    email: str | None
    phone: str | None
    address_phone: str | None
    state: str
    tags: str
    malformed: str | None = None
    mirrors_consent: bool = False
    orders: list[Order] = field(default_factory=list)


@dataclass(eq=False)
class Order:
    id: int
    created: int
    source: str
    customer: CustomerRec | None
    email: str | None
    phone: str | None
    lines: list[Line]
    discount_code: tuple[str, str, int] | None
    shipping: tuple[str, int] | None
    gateway: str
    location_id: int | None
    test: bool
    malformed: str | None
    cancelled: tuple[int, str] | None
    fulfilled: int | None
    refunds: list[Refund]
    landing_site: str | None
    referring_site: str | None
    browser_ip: str | None
    token: str
    in_ga4: bool = False

    @property
    def line_items_total(self) -> int:
        return sum(line.variant.price * line.quantity for line in self.lines)

    @property
    def discounts_total(self) -> int:
        return sum(line.discount for line in self.lines)

    @property
    def total(self) -> int:
        return self.line_items_total - self.discounts_total + (self.shipping[1] if self.shipping else 0)

    def cancelled_by(self, end: int) -> bool:
        return self.cancelled is not None and self.cancelled[0] < end

    def refunded_by(self, end: int) -> int:
        return sum(r.amount for r in self.refunds if r.created < end)

    def counted_by(self, end: int) -> bool:
        return not self.test and not self.malformed and not self.cancelled_by(end)

    def net_revenue_by(self, end: int) -> int:
        return self.total - self.refunded_by(end) if self.counted_by(end) else 0

    def updated_by(self, end: int) -> int:
        changes = [self.created]
        if self.fulfilled is not None and self.fulfilled < end:
            changes.append(self.fulfilled)
        if self.cancelled_by(end):
            changes.append(self.cancelled[0])
        changes.extend(r.created for r in self.refunds if r.created < end)
        return max(changes)


@dataclass
class Checkout:
    id: int
    created: int
    updated: int
    email: str
    customer: CustomerRec | None
    lines: list[tuple[Variant, int]]
    shipping: tuple[str, int]
    token: str
    landing_site: str | None
    referring_site: str | None


@dataclass
class Profile:
    id: str
    created: int
    email: str
    phone: str | None
    consent: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)  # t, state, how
    suppressions: list[tuple[int, str]] = field(default_factory=list)
    answers: list[tuple[int, str, object]] = field(default_factory=list)
    events: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # (timestamp, metric, id, json line)

    def consent_at(self, ts: int) -> tuple[int, str, str | None, str | None] | None:
        """The latest consent change at or before `ts` (of two at the same second, the later one)."""
        latest = None
        for change in self.consent:
            if change[0] <= ts and (latest is None or change[0] >= latest[0]):
                latest = change
        return latest

    def can_receive_at(self, ts: int) -> bool:
        if self.created > ts or any(t <= ts for t, _ in self.suppressions):
            return False
        state = self.consent_at(ts)
        return state is not None and state[1] == "SUBSCRIBED"


@dataclass
class Device:
    category: str
    operating_system: str
    browser: str
    adblock: bool
    ip: str
    device_json: str
    cookie: str | None = None
    session_number: int = 0
    last_session_id: int = 0
    logged_in: CustomerRec | None = None


@dataclass
class Visit:
    """What one web session led to."""

    order: Order | None = None
    failed_step: str | None = None


# ------------------------------------------------------------------------------------------------
# The world's shared context and output
# ------------------------------------------------------------------------------------------------


@dataclass
class WorldSpec:
    """What every life shares: the world's size and span, the catalogue, the campaigns, the ids."""

    seed: int
    customers: int
    days: int
    start_date: dt.date
    as_of: dt.date
    start: int  # epoch seconds of start_date 00:00 Europe/Oslo
    end: int  # epoch seconds of as_of 00:00 Europe/Oslo: nothing at or after it has happened yet
    base: int  # people who already know the shop on start_date
    arrivals_per_day: float
    catalog: Catalog
    campaigns: list[Campaign]
    metric_ids: dict[str, str]
    list_ids: dict[str, str]
    online: Rhythm = field(default_factory=online_rhythm)
    store: Rhythm = field(default_factory=store_rhythm)

    _event_dates: dict[int, str] = field(default_factory=dict)
    _traffic: dict[tuple[str, str], str] = field(default_factory=dict)
    _campaign_json: dict[str, str] = field(default_factory=dict)

    @property
    def span_days(self) -> int:
        return (self.as_of - self.start_date).days

    @property
    def start_day_number(self) -> int:
        return (self.start_date - UNIX_EPOCH).days

    def day_index(self, ts: float) -> int:
        return local_day_number(ts) - self.start_day_number

    def campaign_properties(self, campaign: Campaign) -> str:
        """The campaign's part of an email event's properties: JSON without the closing brace."""
        text = self._campaign_json.get(campaign.id)
        if text is None:
            text = json_line(
                {"$message": campaign.id, "Campaign Name": campaign.name, "Subject": campaign.subject}
            )
            text = self._campaign_json[campaign.id] = text[:-1]
        return text

    def event_date(self, day_number: int) -> str:
        """GA4's `event_date` (YYYYMMDD) of a local day."""
        text = self._event_dates.get(day_number)
        if text is None:
            text = self._event_dates[day_number] = date_of_day_number(day_number).strftime("%Y%m%d")
        return text

    def traffic_json(self, channel: str, campaign: Campaign | None) -> str:
        """GA4 `traffic_source` of a session from this channel (email sessions name their campaign)."""
        key = (channel, campaign.name if campaign and channel == "email" else "")
        text = self._traffic.get(key)
        if text is None:
            source, medium, name = ("klaviyo", "email", key[1]) if key[1] else TRAFFIC_SOURCES[channel]
            text = self._traffic[key] = json_line({"source": source, "medium": medium, "name": name})
        return text


class Spool:
    """Output lines bucketed by day, read back sorted by a text key; spills to disk when told to."""

    def __init__(self, folder: Path, owner: Output | None = None):
        self.folder = folder
        self.owner = owner
        self.buckets: dict[int, list[tuple[str, str]]] = {}
        self.spilled: set[int] = set()

    @classmethod
    def reopen(cls, folder: Path) -> Spool:
        """A spool another process spilled into `folder`."""
        spool = cls(folder)
        if folder.exists():
            spool.spilled = {int(p.stem) for p in folder.glob("*.tsv")}
        return spool

    def add(self, day: int, key: str, line: str) -> None:
        self.buckets.setdefault(day, []).append((key, line))
        if self.owner is not None:
            self.owner.grow(len(line) + 120)

    def add_many(self, day: int, rows: list[tuple[str, str]]) -> None:
        self.buckets.setdefault(day, []).extend(rows)
        if self.owner is not None:
            self.owner.grow(sum(len(line) for _, line in rows) + 120 * len(rows))

    def spill(self) -> None:
        if not self.buckets:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for day, rows in self.buckets.items():
            with open(self.folder / f"{day}.tsv", "a", encoding="utf-8") as f:
                f.writelines(f"{key}\t{line}\n" for key, line in rows)
            self.spilled.add(day)
        self.buckets = {}

    def days(self) -> set[int]:
        return set(self.buckets) | self.spilled

    def rows(self, day: int) -> list[tuple[str, str]]:
        """The (key, line) rows of one day, unsorted; in-memory rows are handed over, not copied."""
        rows = self.buckets.pop(day, [])
        if day in self.spilled:
            with open(self.folder / f"{day}.tsv", encoding="utf-8") as f:
                for row in f:
                    key, _, line = row.rstrip("\n").partition("\t")
                    rows.append((key, line))
        return rows


def sorted_lines(spools: list[Spool], day: int) -> list[str]:
    """One day's lines from several spools, sorted by key (then by line, so ties are stable too)."""
    rows = [row for spool in spools for row in spool.rows(day)]
    rows.sort()
    return [line for _, line in rows]


@dataclass
class Tally:
    """Counts and totals for truth/summary.json, gathered while records are written."""

    customers: Counter = field(default_factory=Counter)
    orders: Counter = field(default_factory=Counter)
    money: Counter = field(default_factory=Counter)
    checkouts: int = 0
    profiles: int = 0
    events_by_metric: Counter = field(default_factory=Counter)
    ga4_events: int = 0
    ga4_duplicates: int = 0
    sessions: int = 0
    funnel: Counter = field(default_factory=Counter)  # (day, device, channel, step index) → sessions
    planted: Counter = field(default_factory=Counter)
    malformed: list[dict] = field(default_factory=list)
    people: list[tuple] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)
    memberships: list[tuple[str, str, int]] = field(default_factory=list)  # (list name, profile id, joined)

    def merge(self, other: Tally) -> None:
        """Add another share of the people's tally to this one."""
        for name in ("customers", "orders", "money", "events_by_metric", "funnel", "planted"):
            getattr(self, name).update(getattr(other, name))
        for name in ("checkouts", "profiles", "ga4_events", "ga4_duplicates", "sessions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.malformed.extend(other.malformed)
        self.people.extend(other.people)
        self.identities.extend(other.identities)
        self.memberships.extend(other.memberships)


SPOOL_KINDS = ("customers", "orders", "checkouts", "profiles", "events", "ga4")


class Output:
    """Where people's records go while the world is drawn: spools within one memory budget, and a tally."""

    def __init__(self, folder: Path, budget: int = SPOOL_MEMORY_BYTES):
        self.budget = budget
        self.held = 0
        self.spools = {kind: Spool(folder / kind, self) for kind in SPOOL_KINDS}
        self.customers, self.orders, self.checkouts, self.profiles, self.events, self.ga4 = (
            self.spools.values()
        )
        self.tally = Tally()

    def grow(self, size: int) -> None:
        self.held += size
        if self.held > self.budget:
            self.spill()

    def spill(self) -> None:
        for spool in self.spools.values():
            spool.spill()
        self.held = 0


# ------------------------------------------------------------------------------------------------
# One person's life
# ------------------------------------------------------------------------------------------------

(
    ARRIVE,
    BROWSE,
    NEED,
    ATTEMPT,
    POS_VISIT,
    CAMPAIGN,
    CLICK,
    SIGNUP,
    SUBSCRIBE,
    DUPLICATE,
    REPLENISH,
    TEST_ORDER,
) = range(12)


def arrival_of(world: WorldSpec, index: int, rng: random.Random) -> float:
    """When person `index` first shows up, before moving it to a plausible hour of that day."""
    if index < world.base:
        return world.start + rng.random() * EXISTING_BASE_ARRIVAL_DAYS * DAY
    return world.start + (index - world.base + rng.random()) / world.arrivals_per_day * DAY


class Life:
    """Simulates one person from their arrival until the world's end, then renders their records."""

    def __init__(self, world: WorldSpec, index: int, output: Output):
        self.world = world
        self.catalog = world.catalog
        self.index = index
        self.out = output
        self.rng = random.Random(f"{world.seed}:life:{index}")
        self.ids = random.Random(f"{world.seed}:ids:{index}")
        self.raw_arrival = arrival_of(world, index, self.rng)
        self.person_id = f"P{index:07d}"
        self.heap: list[tuple[int, int, int, object]] = []
        self.pushed = 0
        self.now = 0
        self.used_seconds: set[tuple[int, int]] = set()
        self.accounts: list[CustomerRec] = []
        self.guest: CustomerRec | None = None
        self.pos_customer: CustomerRec | None = None
        self.records: list[CustomerRec] = []
        self.orders: list[Order] = []
        self.checkouts: list[Checkout] = []
        self.profile: Profile | None = None
        self.replenish_due: dict[int, int] = {}
        self.cookies: list[str] = []
        self.ga4_user_ids: set[str] = set()
        self.ga4_cookies: set[str] = set()  # the cookies GA4 saw (not those behind an ad blocker)
        self.visits_left = 0
        self._draw_person()

    # -- who they are --------------------------------------------------------------------------

    def _draw_person(self) -> None:
        rng, index = self.rng, self.index
        self.role = PLANTED_ROLES.get(index % PLANTED_ROLES_EVERY)
        self.planted_fate = PLANTED_ORDER_FATES.get(index % PLANTED_FATE_EVERY)
        if index % TEST_PERSON_EVERY == TEST_PERSON_OFFSET and index < TEST_PERSON_BELOW:
            kind = "test"
        elif index % MALFORMED_SIGNUP_EVERY == MALFORMED_SIGNUP_OFFSET:
            kind = "malformed"
        elif index % MALFORMED_FIRST_ORDER_EVERY == MALFORMED_FIRST_ORDER_OFFSET:
            kind = "shopper"
        elif self.role is not None:
            kind = "shopper" if self.role == "duplicate_signup" else "subscriber"
        else:
            kind = KIND_WEIGHTS.draw(rng)
        self.kind = kind
        self.is_test = kind == "test"
        self.plant_malformed_order = index % MALFORMED_FIRST_ORDER_EVERY == MALFORMED_FIRST_ORDER_OFFSET
        code = "NO" if kind in ("store", "test") else COUNTRY_CHOICE.draw(rng)
        country = COUNTRIES[code]
        self.country_code, self.country = code, country
        city, zip_code, _ = CITY_CHOICE[code].draw(rng)
        if kind == "store" and city not in ("Oslo", "Bergen"):
            city, zip_code = ("Bergen", "5003") if city in WEST_NORWAY else ("Oslo", "0150")
        self.city, self.zip = city, f"{zip_code[:-2]}{rng.randrange(100):02d}"
        self.first_name = rng.choice(country["first"])
        self.last_name = rng.choice(country["last"])
        local = f"{self.first_name}.{self.last_name}".lower().translate(ASCII_FOLD)
        if kind == "test":
            self.email: str | None = f"test+{index // TEST_PERSON_EVERY + 1}@{SHOP_DOMAIN}"
        else:
            separator = rng.choice((".", "_", ""))
            self.email = f"{local.replace('.', separator)}{index}@{rng.choice(EMAIL_DOMAINS)}"
        prefix, lead, digits = country["phone"]
        modulus = 10**digits
        number = (index * 7_919 + 1_234_567 + (rng.randrange(3) * modulus // 3)) % modulus
        has_phone = kind == "store" or rng.random() < PHONE_SHARE
        self.phone = f"{prefix}{lead}{number:0{digits}d}" if has_phone else None
        self.interests = self._draw_interests()
        self.open_rate = rng.betavariate(*OPEN_RATE_BETA)
        self.stop_at = math.inf
        if kind in ("shopper", "store", "subscriber"):
            self.stop_at = self.raw_arrival + rng.expovariate(1 / MEAN_DAYS_UNTIL_STOP) * DAY
        self.one_time = kind in ("shopper", "store") and rng.random() < ONE_TIME_BUYER_SHARE
        duplicate_signup = self.role == "duplicate_signup"
        self.guest_only = not duplicate_signup and rng.random() < GUEST_ONLY_SHARE
        self.signs_up_early = duplicate_signup or (
            kind == "shopper" and not self.guest_only and rng.random() < EARLY_SIGNUP_SHARE
        )
        self.signs_up_twice = rng.random() < DUPLICATE_SIGNUP_SHARE or duplicate_signup
        self.popup = rng.random() < POPUP_SUBSCRIBE_SHARE.get(kind, 0.0)
        self.accepts_marketing = rng.random() < ACCEPTS_MARKETING_AT_CHECKOUT
        self.omnichannel = kind == "shopper" and code == "NO" and rng.random() < OMNICHANNEL_SHARE
        self.pos_detail = POS_DETAIL_WEIGHTS.draw(rng) if kind == "store" else None
        if kind == "visitor" or (kind == "store" and self.pos_detail != "email"):
            self.email = None  # never tells the shop who they are
        # Staff type their test addresses exactly; customers sometimes don't.
        self.account_email = self.email if self.is_test else self._written(VARIANT_EMAIL_IN_ACCOUNT)
        self.store_id = next(
            i for i, name in STORES.items() if name.startswith("Bergen" if city == "Bergen" else "Oslo")
        )
        self.devices = self._draw_devices()
        self.geo_json = json_line({"country": country["name"], "city": city})
        self.shade = rng.randrange(3)

    def _written(self, variant_share: float) -> str | None:
        """The person's email as written in one record: usually as canonical, sometimes a variant."""
        if self.email is None:
            return None
        return email_variant(self.email, self.rng) if self.rng.random() < variant_share else self.email

    def _draw_interests(self) -> tuple[str, ...]:
        rng = self.rng
        chosen: list[str] = []
        for _ in range(1 + (rng.random() < 0.5) + (rng.random() < 0.2)):
            category = self.catalog.category_choice.draw(rng)
            if category not in chosen:
                chosen.append(category)
        return tuple(chosen)

    def _draw_devices(self) -> list[Device]:
        rng = self.rng
        if self.kind == "test":
            categories = ["desktop"]
        elif self.kind == "store" and rng.random() > 0.3:
            categories = []  # never shops online
        else:
            categories = [DEVICE_CATEGORY_WEIGHTS.draw(rng) for _ in range(DEVICE_COUNT_WEIGHTS.draw(rng))]
            categories.sort(key=("mobile", "desktop", "tablet").index)
        devices = []
        for category in categories:
            operating_system, browser = DEVICE_CHOICE[category].draw(rng)
            devices.append(
                Device(
                    category=category,
                    operating_system=operating_system,
                    browser=browser,
                    adblock=rng.random() < ADBLOCK_SHARE[category],
                    ip=f"{rng.choice(DOCUMENTATION_NETS)}.{rng.randrange(1, 255)}",
                    device_json=json_line(
                        {
                            "category": category,
                            "operating_system": operating_system,
                            "browser": browser,
                            "language": self.country["locale"].lower(),
                        }
                    ),
                )
            )
        return devices

    # -- the timeline --------------------------------------------------------------------------

    def at(self, ts: float, happening: int, payload: object = None) -> None:
        """Schedule a happening; never before the one being handled, so the past stays fixed."""
        ts = int(ts)
        assert ts >= self.now, "a happening may not be scheduled in the past"
        self.pushed += 1
        heapq.heappush(self.heap, (ts, self.pushed, happening, payload))

    def next_time(self, after: float, per_day: float, rhythm: Rhythm, damp_after: float = math.inf) -> float:
        """Next moment of a Poisson process with this rate, shaped by the rhythm.

        Thinning under each month's peak intensity: exact, and it draws the same numbers
        whatever the world's end is.
        """
        rng = self.rng
        ts = after
        while True:
            month_end, bound = rhythm.month_bound(ts)
            ts += rng.expovariate(per_day * bound / DAY)
            if ts >= month_end:
                ts = month_end  # memoryless: start afresh under the next month's bound
                continue
            weight = rhythm.at(ts) * (BROWSE_AFTER_STOP_FACTOR if ts >= damp_after else 1.0)
            if rng.random() * bound < weight:
                return ts

    def preferred_time(self, rhythm: Rhythm, not_before: int, day_offset: int) -> int:
        """A likely hour on the day `day_offset` days after `not_before` (the next open day in store)."""
        rng = self.rng
        day_number = local_day_number(not_before) + day_offset
        while not any(rhythm.day_weights(day_number)):
            day_number += 1
        hour = rhythm.hour_choice(day_number).draw(rng)
        ts = local_midnight(date_of_day_number(day_number)) + hour * HOUR + rng.randrange(HOUR)
        return ts if ts >= not_before else not_before + rng.randrange(60, HOUR)

    def run(self) -> None:
        world = self.world
        arrival_rhythm = world.store if self.kind == "store" else world.online
        arrival_day = date_of_day_number(local_day_number(self.raw_arrival))
        self.arrival = self.preferred_time(arrival_rhythm, local_midnight(arrival_day), 0)
        self.now = self.arrival
        self.at(self.arrival, ARRIVE)
        if self.kind not in ("visitor", "test", "malformed"):
            for campaign in world.campaigns:
                if campaign.send_time >= self.arrival:
                    self.at(campaign.send_time, CAMPAIGN, campaign)
        handlers = {
            ARRIVE: self.on_arrive,
            BROWSE: self.on_browse,
            NEED: self.on_need,
            ATTEMPT: self.on_attempt,
            POS_VISIT: self.on_pos_visit,
            CAMPAIGN: self.on_campaign,
            CLICK: self.on_click,
            SIGNUP: self.on_signup,
            SUBSCRIBE: self.on_subscribe,
            DUPLICATE: self.on_duplicate,
            REPLENISH: self.on_replenish,
            TEST_ORDER: self.on_test_order,
        }
        end = world.end
        heap = self.heap
        while heap and heap[0][0] < end:
            ts, _, happening, payload = heapq.heappop(heap)
            self.now = ts
            handlers[happening](ts, payload)

    def exists(self) -> bool:
        return self.arrival < self.world.end

    def stopped(self, ts: float) -> bool:
        return ts >= self.stop_at

    # -- happenings ----------------------------------------------------------------------------

    def on_arrive(self, ts: int, _: object) -> None:
        world, rng, kind = self.world, self.rng, self.kind
        if kind == "store":
            self.on_pos_visit(ts, None)
            if self.devices:
                self.at(self.next_time(ts, BROWSE_PER_DAY["store"], world.online, self.stop_at), BROWSE)
            return
        if kind == "visitor":
            self.visits_left = 1 + int(rng.expovariate(0.7))
        if kind == "test":
            self.on_signup(ts, None)  # staff log in to their test account straight away
        else:
            self.browse(ts, self.first_channel())
        if kind == "visitor":
            self.visits_left -= 1
            if self.visits_left:
                self.at(self.next_time(ts, VISITOR_PER_DAY, world.online), BROWSE)
            return
        self.at(self.next_time(ts, BROWSE_PER_DAY[kind], world.online, self.stop_at), BROWSE)
        if kind in NEED_PER_DAY:
            self.at(self.next_time(ts, NEED_PER_DAY[kind] * 1.5, world.online), NEED)
        if self.popup:
            self.at(
                ts + (40 if kind == "subscriber" or rng.random() < 0.5 else rng.expovariate(1 / 10) * DAY),
                SUBSCRIBE,
            )
        if self.signs_up_early or kind == "malformed":
            self.at(ts + rng.expovariate(1 / 7) * DAY, SIGNUP)
        if kind == "test":
            self.at(self.next_time(ts, TEST_ORDER_PER_DAY, world.online), TEST_ORDER)
        if self.omnichannel:
            self.at(self.next_time(ts, POS_PER_DAY["shopper"], world.store), POS_VISIT)

    def on_browse(self, ts: int, _: object) -> None:
        world = self.world
        self.browse(ts, self.return_channel())
        if self.kind == "visitor":
            self.visits_left -= 1
            if self.visits_left:
                self.at(self.next_time(ts, VISITOR_PER_DAY, world.online), BROWSE)
            return
        self.at(self.next_time(ts, BROWSE_PER_DAY[self.kind], world.online, self.stop_at), BROWSE)

    def on_need(self, ts: int, _: object) -> None:
        if self.stopped(ts):
            return
        self.at(self.next_time(ts, NEED_PER_DAY[self.kind], self.world.online), NEED)
        self.shop_for(ts, self.draw_basket(), code=None)

    def on_replenish(self, ts: int, payload: object) -> None:
        product_id, due = payload
        if self.stopped(ts) or self.replenish_due.get(product_id) != due:
            return
        variant = self.variant_of(self.catalog.by_id[product_id])
        basket = [(variant, 1)]
        if self.rng.random() < 0.3:
            basket = self.add_items(basket, 1)
        if self.kind == "store" or (self.omnichannel and self.rng.random() < 0.3):
            self.pos_order(ts, basket)
        else:
            self.shop_for(ts, basket, code=None)

    def shop_for(self, ts: int, basket: list[tuple[Variant, int]], code: tuple | None) -> None:
        """A need: buy right away, or look around now and come back within a few days."""
        rng = self.rng
        if rng.random() < ATTEMPT_RIGHT_AWAY:
            self.attempt(ts, basket, retry=0, code=code, channel=self.return_channel())
        else:
            self.browse(ts, self.return_channel(), interest_in=basket[0][0].product)
            later = self.preferred_time(self.world.online, ts, 1 + rng.randrange(3))
            self.at(later, ATTEMPT, (basket, 0, code))

    def on_attempt(self, ts: int, payload: object) -> None:
        basket, retry, code = payload
        if self.stopped(ts):
            return
        self.attempt(ts, basket, retry, code, self.return_channel())

    def attempt(
        self,
        ts: int,
        basket: list,
        retry: int,
        code: tuple | None,
        channel: str,
        campaign: Campaign | None = None,
    ) -> None:
        visit = self.web_session(ts, channel, campaign=campaign, basket=basket, code=code)
        gives_up = visit.order is not None or not visit.failed_step or retry >= MAX_RETRIES
        if not gives_up and self.rng.random() < RETRY_AFTER_ABANDON:
            code = COMEBACK_CODE if self.rng.random() < COMEBACK_CODE_ON_RETRY else code
            later = self.preferred_time(self.world.online, ts, 1 + self.rng.randrange(3))
            self.at(later, ATTEMPT, (basket, retry + 1, code))

    def on_pos_visit(self, ts: int, _: object) -> None:
        if self.stopped(ts):
            return
        rate = POS_PER_DAY["store" if self.kind == "store" else "shopper"]
        self.at(self.next_time(ts, rate, self.world.store), POS_VISIT)
        self.pos_order(ts, self.draw_basket())

    def on_test_order(self, ts: int, _: object) -> None:
        self.at(self.next_time(ts, TEST_ORDER_PER_DAY, self.world.online), TEST_ORDER)
        self.web_session(ts, "direct", basket=self.draw_basket())

    def on_signup(self, ts: int, _: object) -> None:
        if self.accounts or not self.devices:
            return
        account = self.new_customer(ts, self.account_email, "enabled")
        self.browse(ts, self.return_channel(), login=account)

    def on_duplicate(self, ts: int, _: object) -> None:
        taken = {r.email for r in self.records}
        email = self.account_email
        while email in taken:
            email = email_variant(self.email, self.rng)
        account = self.new_customer(ts, email, "enabled")
        self.browse(ts, self.return_channel(), login=account)

    def on_subscribe(self, ts: int, _: object) -> None:
        profile = self.profile or self.new_profile(ts, self._written(VARIANT_EMAIL_IN_PROFILE))
        state = profile.consent_at(ts)
        if state is None or state[1] == "NEVER_SUBSCRIBED":
            profile.consent.append((ts, "SUBSCRIBED", "FORM", "popup"))
            if self.rng.random() < INTERESTS_ANSWER_SHARE:
                profile.answers.append((ts, "interests", list(self.interests)))

    def on_campaign(self, ts: int, campaign: Campaign) -> None:
        profile = self.profile
        if profile is None or not profile.can_receive_at(ts):
            return
        rng = self.rng
        if rng.random() < BOUNCE_SHARE or self.role == "dead_mailbox":
            self.klaviyo_event(
                ts + rng.randrange(600),
                "Bounced Email",
                self.email_properties(campaign, {"Bounce Type": "hard"}),
            )
            profile.suppressions.append((ts + 600, "HARD_BOUNCE"))
            return
        received = ts + rng.randrange(600)
        self.klaviyo_event(received, "Received Email", self.email_properties(campaign))
        if rng.random() < SPAM_SHARE or self.role == "spam_complainer":
            marked = received + rng.randrange(60, 2 * DAY)
            self.klaviyo_event(marked, "Marked Email as Spam", self.email_properties(campaign))
            profile.consent.append((marked, "UNSUBSCRIBED", "SPAM_COMPLAINT", None))
            profile.suppressions.append((marked, "SPAM_COMPLAINT"))
            return
        open_rate = self.open_rate * (OPEN_AFTER_STOP_FACTOR if self.stopped(ts) else 1.0)
        opens = rng.random() < open_rate
        unsubscribes = self.role == "unsubscriber" or (opens and rng.random() < UNSUBSCRIBE_GIVEN_OPEN)
        if not opens and not unsubscribes:
            return
        opened = received + 30 + int(min(rng.expovariate(1 / (5 * HOUR)), 3 * DAY))
        self.klaviyo_event(opened, "Opened Email", self.email_properties(campaign))
        if rng.random() < CLICK_GIVEN_OPEN:
            self.at(opened + rng.randrange(10, 300), CLICK, campaign)
        if unsubscribes:
            left = opened + rng.randrange(20, 400)
            self.klaviyo_event(left, "Unsubscribed", self.email_properties(campaign))
            profile.consent.append((left, "UNSUBSCRIBED", "UNSUBSCRIBE", "campaign_footer_link"))

    def on_click(self, ts: int, campaign: Campaign) -> None:
        rng = self.rng
        url = f"{SHOP_URL}/collections/all?utm_campaign={campaign.utm_name}"
        self.klaviyo_event(ts, "Clicked Email", self.email_properties(campaign, {"URL": url}))
        can_buy = self.kind in ("shopper", "subscriber") and not self.stopped(ts)
        code = campaign.code if campaign.code and rng.random() < P_CAMPAIGN_CODE else None
        r = rng.random()
        if can_buy and r < CLICK_ATTEMPTS_NOW:
            self.attempt(ts, self.draw_basket(), 0, code, "email", campaign=campaign)
            return
        self.browse(ts, "email", campaign=campaign)
        if can_buy and r < CLICK_ATTEMPTS_NOW + CLICK_ATTEMPTS_WITHIN_5_DAYS:
            later = ts + rng.randrange(HOUR, CAMPAIGN_CODE_VALID_DAYS * DAY)
            self.at(later, ATTEMPT, (self.draw_basket(), 0, code))

    # -- baskets -------------------------------------------------------------------------------

    def variant_of(self, product: Product) -> Variant:
        if product.option_name == "Shade":
            return product.variants[self.shade]
        return product.variants[0 if len(product.variants) == 1 or self.rng.random() < 0.7 else 1]

    def draw_basket(self) -> list[tuple[Variant, int]]:
        items = 1 + (self.rng.random() < 0.45) + (self.rng.random() < 0.2) + (self.rng.random() < 0.05)
        return self.add_items([], items)

    def add_items(self, basket: list[tuple[Variant, int]], count: int) -> list[tuple[Variant, int]]:
        rng, catalog = self.rng, self.catalog
        basket = list(basket)
        chosen = {v.product.id for v, _ in basket}
        for _ in range(count):
            product = catalog.pick_product(rng, self.interests)
            if product.id in chosen:
                continue
            chosen.add(product.id)
            basket.append((self.variant_of(product), 2 if rng.random() < 0.1 else 1))
            complement = catalog.complement(product)
            if complement and complement.id not in chosen and rng.random() < COMPLEMENT_SHARE:
                chosen.add(complement.id)
                basket.append((self.variant_of(complement), 1))
        return basket[:6] if basket else [(self.variant_of(catalog.pick_product(rng, ())), 1)]

    # -- channels ------------------------------------------------------------------------------

    def first_channel(self) -> str:
        return FIRST_VISIT_CHANNELS.draw(self.rng)

    def return_channel(self) -> str:
        return RETURN_VISIT_CHANNELS.draw(self.rng)

    # -- a web session -------------------------------------------------------------------------

    def browse(
        self,
        ts: int,
        channel: str,
        *,
        campaign: Campaign | None = None,
        login: CustomerRec | None = None,
        interest_in: Product | None = None,
    ) -> Visit:
        return self.web_session(ts, channel, campaign=campaign, login=login, interest_in=interest_in)

    def web_session(
        self,
        ts: int,
        channel: str,
        *,
        campaign: Campaign | None = None,
        basket: list[tuple[Variant, int]] | None = None,
        code: tuple | None = None,
        login: CustomerRec | None = None,
        interest_in: Product | None = None,
    ) -> Visit:
        """One visit to the online shop; a `basket` means the person came to buy it."""
        if not self.devices:
            return Visit()
        rng, catalog = self.rng, self.catalog
        device = self.devices[0] if len(self.devices) == 1 or rng.random() < 0.6 else rng.choice(self.devices)
        new_cookie = device.cookie is None or rng.random() < COOKIE_RESET[device.browser]
        if new_cookie:
            device.cookie = f"{rng.randrange(10**9, 10**10)}.{ts}"
            device.session_number = 0
            device.logged_in = None
            self.cookies.append(device.cookie)
        device.session_number += 1
        session_id = max(ts, device.last_session_id + 1)
        device.last_session_id = session_id
        if login is not None:
            device.logged_in = login
        events = SessionEvents(self, device, channel, campaign, ts, session_id)
        landing = self.landing_page(channel, campaign, basket, interest_in)
        if new_cookie:
            events.add("first_visit", landing, gap=0)
        events.add("session_start", landing, gap=0)
        events.add("page_view", landing, gap=0)
        visit = Visit()
        cart: list[tuple[Variant, int]] = []
        if basket is not None:
            if rng.random() < P_VIEW_BEFORE_BUYING:
                for variant, _ in basket[: 1 + (rng.random() < 0.5)]:
                    events.view(variant)
            for variant, quantity in basket:
                events.add(
                    "add_to_cart",
                    f"{SHOP_URL}/products/{variant.product.handle}",
                    items=catalog.ga4_item(variant, quantity),
                    value=variant.price * quantity,
                )
            cart = list(basket)
            steps = TEST_STEPS if self.is_test else INTENT_STEPS
        else:
            for _ in range(int(rng.expovariate(0.8))):
                category = rng.choice(self.interests)
                events.add("page_view", f"{SHOP_URL}/collections/{category}", gap=rng.randrange(8, 60))
            viewed: list[Variant] = []
            if rng.random() < P_VIEW_ITEM_IN_BROWSE:
                first = interest_in or catalog.pick_product(rng, self.interests)
                viewed.append(self.variant_of(first))
                for _ in range((rng.random() < 0.4) + (rng.random() < 0.15)):
                    viewed.append(self.variant_of(catalog.pick_product(rng, self.interests)))
                for variant in viewed:
                    events.view(variant)
            if viewed and rng.random() < P_CART_AFTER_VIEW:
                cart = [(viewed[-1], 1)]
            elif not viewed and rng.random() < P_QUICK_ADD_WITHOUT_VIEW:
                cart = [(self.variant_of(catalog.pick_product(rng, self.interests)), 1)]
            for variant, quantity in cart:
                events.add(
                    "add_to_cart",
                    f"{SHOP_URL}/collections/{variant.product.category}",
                    items=catalog.ga4_item(variant, quantity),
                    value=variant.price * quantity,
                )
            steps = CASUAL_STEPS
        if cart:
            self.checkout(events, visit, cart, code, steps)
        events.finish()
        return visit

    def checkout(
        self, events: SessionEvents, visit: Visit, cart: list, code: tuple | None, steps: dict
    ) -> None:
        rng = self.rng
        can_ship = self.email is not None and self.kind not in ("visitor", "store", "malformed")
        events.add("page_view", f"{SHOP_URL}/cart", gap=rng.randrange(5, 40))
        if rng.random() >= steps["begin"]:
            visit.failed_step = "add_to_cart"
            return
        account = self.choose_account()
        if account is not None and events.device.logged_in is None:
            events.device.logged_in = account
        token = f"{self.ids.getrandbits(128):032x}"
        begun = events.add(
            "begin_checkout",
            f"{SHOP_URL}/checkouts/{token}/information",
            items=self.items_json(cart),
            value=self.cart_value(cart),
        )
        if not can_ship or rng.random() >= steps["ship"]:
            visit.failed_step = "begin_checkout"
            return
        code = code or self.seasonal_code(events.start)
        lines = self.price_lines(cart, code)
        subtotal = sum(v.price * q for v, q in cart) - sum(line.discount for line in lines)
        shipping = self.shipping_for(subtotal)
        events.add(
            "add_shipping_info",
            f"{SHOP_URL}/checkouts/{token}/shipping",
            items=self.items_json(cart),
            value=subtotal,
            extra=("shipping_tier", shipping[0]),
        )
        pay = 1.0 if self.is_test else (P_PAY_FREE_SHIPPING if shipping[1] == 0 else P_PAY_PAID_SHIPPING)
        if rng.random() >= pay:
            visit.failed_step = "add_shipping_info"
            self.abandon(events, begun, cart, shipping, token, "add_shipping_info")
            return
        gateway = TEST_GATEWAY if self.is_test else WEB_GATEWAYS.draw(rng)
        events.add(
            "add_payment_info",
            f"{SHOP_URL}/checkouts/{token}/payment",
            items=self.items_json(cart),
            value=subtotal + shipping[1],
            extra=("payment_type", gateway),
        )
        if rng.random() >= steps["buy"]:
            visit.failed_step = "add_payment_info"
            self.abandon(events, begun, cart, shipping, token, "add_payment_info")
            return
        purchase_us = events.add(
            "page_view", f"{SHOP_URL}/checkouts/{token}/thank_you", gap=rng.randrange(20, 90)
        )
        record = self.buyer_record(purchase_us // 1_000_000, events.device)
        order = self.place_order(
            purchase_us // 1_000_000,
            "web",
            lines,
            code,
            shipping,
            gateway,
            record,
            email=record.email if record.state == "enabled" else self.typed_email(record),
            phone=self.phone,
            channel=events.channel,
            landing=events.landing,
            ip=events.device.ip,
        )
        order.in_ga4 = not events.device.adblock
        events.add(
            "purchase",
            f"{SHOP_URL}/checkouts/{token}/thank_you",
            items=self.items_json(cart),
            value=order.total,
            ecommerce=order,
            gap=0,
        )
        visit.order = order

    def items_json(self, cart: list) -> str:
        return ",".join(self.catalog.ga4_item(v, q) for v, q in cart)

    @staticmethod
    def cart_value(cart: list) -> int:
        return sum(v.price * q for v, q in cart)

    def shipping_for(self, subtotal: int) -> tuple[str, int]:
        if self.rng.random() < P_EXPRESS_SHIPPING:
            return SHIPPING_EXPRESS
        return SHIPPING_FREE if subtotal >= FREE_SHIPPING_FROM else SHIPPING_STANDARD

    def seasonal_code(self, ts: int) -> tuple | None:
        day = date_of_day_number(local_day_number(ts))
        friday = _black_friday(day.year)
        r = self.rng.random()
        if friday <= day <= friday + dt.timedelta(days=3) and r < P_BLACK_FRIDAY_CODE:
            return BLACK_FRIDAY_CODE
        if day.month == 12 and day.day <= 20 and r < P_XMAS_CODE:
            return XMAS_CODE
        if not self.orders and self.profile is not None and r < P_WELCOME_CODE:
            return WELCOME_CODE
        return None

    def price_lines(self, cart: list, code: tuple | None) -> list[Line]:
        """Line items with the code's discount spread over them in whole cents."""
        lines = [Line(0, variant, quantity) for variant, quantity in cart]
        gross = sum(v.price * q for v, q in cart)
        if code is None or gross == 0:
            return lines
        _, kind, amount = code
        total = gross * amount // 100 if kind == "percentage" else (amount if gross >= 4 * amount else 0)
        left = total
        for line in lines[:-1]:
            line.discount = total * line.variant.price * line.quantity // gross
            left -= line.discount
        lines[-1].discount = left
        return lines

    def choose_account(self) -> CustomerRec | None:
        if not self.accounts:
            return None
        if len(self.accounts) > 1 and self.rng.random() < DUPLICATE_ACCOUNT_PREFERENCE:
            return self.accounts[-1]
        return self.accounts[0]

    def buyer_record(self, ts: int, device: Device) -> CustomerRec:
        """The customer record a web order is attached to (an account, or the guest record)."""
        if device.logged_in is not None:
            return device.logged_in
        if self.accounts:
            device.logged_in = self.choose_account()
            return device.logged_in
        if (
            self.guest is None
            and not self.guest_only
            and not self.is_test
            and self.rng.random() < ACCOUNT_AT_FIRST_ORDER
        ):
            account = self.new_customer(ts, self.account_email, "enabled")
            device.logged_in = account
            return account
        if self.guest is None:
            self.guest = self.new_customer(ts, self.typed_email(None), "disabled")
        return self.guest

    def typed_email(self, record: CustomerRec | None) -> str | None:
        if record is not None and self.rng.random() >= VARIANT_EMAIL_TYPED_AT_CHECKOUT:
            return record.email
        return self._written(VARIANT_EMAIL_TYPED_AT_CHECKOUT)

    def landing_page(
        self, channel: str, campaign: Campaign | None, basket: list | None, interest_in: Product | None
    ) -> str:
        rng = self.rng
        if campaign is not None:
            return (
                f"{SHOP_URL}/collections/all?utm_source=klaviyo&utm_medium=email"
                f"&utm_campaign={campaign.utm_name}"
            )
        product = interest_in or (basket[0][0].product if basket else None)
        if channel in ("organic_search", "paid_search") and (product or rng.random() < 0.6):
            product = product or self.catalog.pick_product(rng, self.interests)
            suffix = "?gclid=sandbox" if channel == "paid_search" else ""
            return f"{SHOP_URL}/products/{product.handle}{suffix}"
        if channel == "social":
            return (
                f"{SHOP_URL}/collections/{rng.choice(self.interests)}?utm_source=facebook&utm_medium=social"
            )
        return f"{SHOP_URL}/"

    def abandon(
        self, events: SessionEvents, begun_us: int, cart: list, shipping: tuple, token: str, step: str
    ) -> None:
        """An abandoned checkout: the buyer gave their email at the information step, then left."""
        created = begun_us // 1_000_000
        checkout_id, created = self.new_id(created, LANE_CHECKOUT)
        record = events.device.logged_in or self.guest
        email = (
            record.email
            if record is not None and record.email
            else self._written(VARIANT_EMAIL_TYPED_AT_CHECKOUT)
        )
        self.checkouts.append(
            Checkout(
                id=checkout_id,
                created=created,
                updated=events.cursor // 1_000_000,
                email=email,
                customer=record,
                lines=list(cart),
                shipping=shipping,
                token=token,
                landing_site=events.landing.removeprefix(SHOP_URL),
                referring_site=REFERRERS[events.channel],
            )
        )
        if self.profile is not None and self.rng.random() < ABANDON_REASON_ANSWER_SHARE:
            reasons = (
                ABANDON_REASONS_AT_SHIPPING if step == "add_shipping_info" else ABANDON_REASONS_ELSEWHERE
            )
            answered = created + self.rng.randrange(DAY, 3 * DAY)
            self.profile.answers.append((answered, "cart_abandon_reason", reasons.draw(self.rng)))

    # -- records -------------------------------------------------------------------------------

    def new_id(self, ts: int, lane: int) -> tuple[int, int]:
        """A Shopify id for a record created at `ts` (moved on a second if this one is taken)."""
        while (lane, ts) in self.used_seconds:
            ts += 1
        self.used_seconds.add((lane, ts))
        return shopify_id(ts, lane, self.index), ts

    def new_customer(self, ts: int, email: str | None, state: str, tags: str = "") -> CustomerRec:
        """A Shopify customer record: an account ("enabled"), a guest or a store customer ("disabled")."""
        customer_id, ts = self.new_id(ts, LANE_CUSTOMER)
        spaced = self.phone is not None and self.rng.random() < SPACED_PHONE_SHARE
        record = CustomerRec(
            id=customer_id,
            created=ts,
            email=email,
            phone=self.phone,
            address_phone=spaced_phone(self.phone) if spaced else self.phone,
            state=state,
            tags="test" if self.is_test else tags,
            # Shopify and Klaviyo sync consent for the person's first record with an email.
            mirrors_consent=email is not None and not any(r.email for r in self.records),
        )
        if self.kind == "malformed":
            if self.index // MALFORMED_SIGNUP_EVERY % 2:
                local, domain = (email or "anna@example.com").split("@")
                record.malformed = "email is not a valid address"
                record.email = f"{local}@@{domain.split('.')[0]}"
            else:
                record.malformed = "created_at is not a date"
            record.mirrors_consent = False
        self.records.append(record)
        if email is not None and not record.malformed and not self.is_test:
            self.sync_profile(ts, email)
        if state == "enabled":
            self.accounts.append(record)
            if (
                self.signs_up_twice
                and len(self.accounts) == 1
                and not self.is_test
                and self.kind != "malformed"
            ):
                self.at(ts + self.rng.expovariate(1 / 30) * DAY, DUPLICATE)
        return record

    def new_profile(self, ts: int, email: str | None) -> Profile:
        rng = self.rng
        profile = Profile(
            id=ulid(ts * 1000 + self.ids.randrange(1000), self.ids),
            created=ts,
            email=email or "",
            phone=self.phone,
        )
        profile.consent.append((ts, "NEVER_SUBSCRIBED", None, None))
        if rng.random() < PREFERRED_CHANNEL_ANSWER_SHARE:
            profile.answers.append(
                (ts + rng.randrange(DAY, 60 * DAY), "preferred_channel", PREFERRED_CHANNELS.draw(rng))
            )
        if rng.random() < PREFERENCE_PAGE_WITHDRAWAL:
            profile.consent.append(
                (
                    ts + int(rng.expovariate(1 / 60) * DAY) + HOUR,
                    "UNSUBSCRIBED",
                    "PREFERENCE_PAGE",
                    "preference_center",
                )
            )
        self.profile = profile
        return profile

    def place_order(
        self,
        ts: int,
        source: str,
        lines: list[Line],
        code: tuple | None,
        shipping: tuple | None,
        gateway: str,
        record: CustomerRec | None,
        *,
        email: str | None,
        phone: str | None,
        channel: str | None,
        landing: str | None,
        ip: str | None,
    ) -> Order:
        rng = self.rng
        order_id, ts = self.new_id(ts, LANE_ORDER)
        for position, line in enumerate(lines):
            line.id = order_id * 16 + position
        malformed = None
        if not self.is_test and (
            (self.plant_malformed_order and not self.orders) or rng.random() < MALFORMED_ORDER_SHARE
        ):
            malformed = rng.choice(
                ("total_price is not a number", "line item quantity is negative", "line item has no price")
            )
        order = Order(
            id=order_id,
            created=ts,
            source=source,
            customer=record,
            email=email,
            phone=phone,
            lines=lines,
            discount_code=code if any(line.discount for line in lines) else None,
            shipping=shipping,
            gateway=gateway,
            location_id=self.store_id if source == "pos" else None,
            test=self.is_test,
            malformed=malformed,
            cancelled=None,
            fulfilled=None,
            refunds=[],
            landing_site=landing.removeprefix(SHOP_URL) if landing else None,
            referring_site=REFERRERS[channel] if channel else None,
            browser_ip=ip,
            token=f"{self.ids.getrandbits(128):032x}",
        )
        eligible = not self.is_test and not malformed
        fate = self.planted_fate if eligible and (source == "web" or self.planted_fate != "cancel") else None
        if fate is not None:
            self.planted_fate = None
        if source == "web" and eligible and (fate == "cancel" or rng.random() < CANCEL_SHARE):
            order.cancelled = (ts + rng.randrange(600, 36 * HOUR), CANCEL_REASONS.draw(rng))
        if order.cancelled is None:
            order.fulfilled = ts if source == "pos" else ts + rng.randrange(6 * HOUR, 72 * HOUR)
            if eligible and (fate in ("partial_refund", "full_refund") or rng.random() < REFUND_SHARE):
                order.refunds.append(self.draw_refund(order, fate))
        self.orders.append(order)
        if record is not None:
            record.orders.append(order)
        if source == "web" and not self.is_test and self.email:
            self.sync_to_klaviyo(order)
        if not self.is_test:
            self.plan_replenishment(order)
        if self.one_time and not malformed:
            self.stop_at = min(self.stop_at, ts + 1)
        return order

    def draw_refund(self, order: Order, fate: str | None) -> Refund:
        """A refund some days after fulfilment: items sent back, a goodwill amount, or everything."""
        rng = self.rng
        created = order.fulfilled + rng.randrange(2 * DAY, 30 * DAY)
        refund_id = order.id * 16 + 8
        failed_first = fate == "partial_refund" or rng.random() < FAILED_REFUND_ATTEMPT_SHARE
        partial = fate == "partial_refund" or (fate is None and rng.random() < PARTIAL_REFUND_SHARE)
        if partial and len(order.lines) == 1 and order.lines[0].quantity == 1:
            amount = round(order.total * rng.uniform(*GOODWILL_REFUND_SHARE))
            return Refund(refund_id, created, [], amount, failed_first)  # no item comes back
        if partial:
            line = rng.choice(order.lines)
            quantity = 1 if line.quantity > 1 and rng.random() < 0.5 else line.quantity
            subtotal = (line.variant.price * line.quantity - line.discount) * quantity // line.quantity
            refunded = [(line, quantity, subtotal)]
            amount = subtotal
        else:
            refunded = [
                (line, line.quantity, line.variant.price * line.quantity - line.discount)
                for line in order.lines
            ]
            amount = order.total
        return Refund(refund_id, created, refunded, amount, failed_first)

    def plan_replenishment(self, order: Order) -> None:
        rng = self.rng
        for line in order.lines:
            product = line.variant.product
            if product.replenish_days and rng.random() < REPLENISH_LOYALTY:
                cycle = product.replenish_days * rng.lognormvariate(0, REPLENISH_NOISE)
                rhythm = self.world.store if order.source == "pos" else self.world.online
                due = self.preferred_time(rhythm, order.created + DAY, int(cycle) - 1)
                self.replenish_due[product.id] = due
                self.at(due, REPLENISH, (product.id, due))

    def sync_profile(self, ts: int, email: str | None) -> Profile:
        """Klaviyo's Shopify integration: a customer with an email becomes a profile seconds later.

        The profile keeps the address as typed in Shopify, or another way of writing it.
        """
        if self.profile is None:
            typed = email if email and self.rng.random() >= VARIANT_EMAIL_IN_PROFILE else None
            self.new_profile(ts + self.rng.randrange(5, 60), typed or self._written(VARIANT_EMAIL_IN_PROFILE))
        return self.profile

    def sync_to_klaviyo(self, order: Order) -> None:
        """A web order reaches Klaviyo: consent ticked at checkout, and a Placed Order event."""
        profile = self.sync_profile(order.created, order.email)
        synced = max(order.created + self.rng.randrange(5, 60), profile.created)
        first_web_order = not any(o.source == "web" for o in self.orders[:-1])
        if self.accepts_marketing and first_web_order:
            state = profile.consent_at(synced)
            if state is not None and state[1] == "NEVER_SUBSCRIBED":
                profile.consent.append((synced, "SUBSCRIBED", "SHOPIFY_CHECKOUT", "checkout_checkbox"))
        if order.malformed:
            return
        self.klaviyo_event(
            synced,
            "Placed Order",
            json_line(
                {
                    "$event_id": str(order.id),
                    "$value": money_number(order.total),
                    "ItemNames": [line.variant.product.title for line in order.lines],
                    "Categories": sorted({line.variant.product.category for line in order.lines}),
                    "Item Count": sum(line.quantity for line in order.lines),
                    "Discount Codes": [order.discount_code[0]] if order.discount_code else [],
                    "Source Name": "web",
                }
            ),
        )

    def pos_order(self, ts: int, basket: list[tuple[Variant, int]]) -> None:
        """A purchase in a store; the cashier attaches a customer only when the buyer gives details."""
        rng = self.rng
        record = None
        if self.kind == "store" and self.pos_detail != "walk_in":
            if self.pos_customer is None:
                email = self._written(VARIANT_EMAIL_TYPED_AT_CHECKOUT) if self.pos_detail == "email" else None
                self.pos_customer = self.new_customer(ts, email, "disabled", tags="pos")
                if self.profile is not None and rng.random() < POS_SIGNUP_SHARE:
                    self.profile.consent.append(
                        (self.profile.created, "SUBSCRIBED", "POS", "in_store_signup")
                    )
            record = self.pos_customer
        elif self.accounts and rng.random() < CASHIER_LOOKS_UP_CUSTOMER:
            record = self.accounts[0]
        phone = None
        if record is not None and record.phone:
            phone = spaced_phone(record.phone) if rng.random() < SPACED_PHONE_SHARE else record.phone
        lines = self.price_lines(basket, None)
        self.place_order(
            ts,
            "pos",
            lines,
            None,
            None,
            POS_GATEWAYS.draw(rng),
            record,
            email=record.email if record else None,
            phone=phone,
            channel=None,
            landing=None,
            ip=None,
        )

    # -- Klaviyo events ------------------------------------------------------------------------

    def email_properties(self, campaign: Campaign, extra: dict | None = None) -> str:
        """`event_properties` of a campaign email event, as JSON."""
        domain = json_line(self.email.split("@")[1] if self.email else None)
        tail = "".join(f",{json_line(k)}:{json_line(v)}" for k, v in extra.items()) if extra else ""
        return f'{self.world.campaign_properties(campaign)},"Email Domain":{domain}{tail}}}'

    def klaviyo_event(self, ts: int, metric: str, properties: str) -> None:
        ids = self.ids
        event_id = ulid(ts * 1000 + int(ids.random() * 1000), ids)
        line = (
            f'{{"type":"event","id":"{event_id}","attributes":{{"timestamp":{ts},"datetime":"{iso_utc(ts)}",'
            f'"uuid":"{uuid4(ids)}","event_properties":{properties}}},"relationships":{{"profile":{{"data":'
            f'{{"type":"profile","id":"{self.profile.id}"}}}},"metric":{{"data":{{"type":"metric",'
            f'"id":"{self.world.metric_ids[metric]}"}}}}}}}}'
        )
        self.profile.events.append((ts, metric, event_id, line))

    # -- rendering as of the world's end ---------------------------------------------------------

    def render(self) -> None:
        """Write this person's records as the systems hold them at the world's end, and their truth."""
        end = self.world.end
        out, tally = self.out, self.out.tally
        identities: set[tuple[str, str, str]] = set()
        for record in self.records:
            line = json_line(self.customer_json(record, end))
            out.customers.add(self.world.day_index(record.created), f"{record.id:020d}", line)
            self.count_customer(record, tally)
            identities.add(("shopify", "customer_id", str(record.id)))
            for id_type, value in (
                ("email", record.email),
                ("phone", record.phone),
                ("phone", record.address_phone),
            ):
                if value:
                    identities.add(("shopify", id_type, value))
        for order in self.orders:
            line = json_line(self.order_json(order, end))
            out.orders.add(self.world.day_index(order.created), f"{order.id:020d}", line)
            self.count_order(order, tally)
            identities.add(("shopify", "order_id", str(order.id)))
            for id_type, value in (("email", order.email), ("phone", order.phone)):
                if value:
                    identities.add(("shopify", id_type, value))
        for checkout in self.checkouts:
            out.checkouts.add(
                self.world.day_index(checkout.created),
                f"{checkout.id:020d}",
                json_line(self.checkout_json(checkout)),
            )
            tally.checkouts += 1
            identities.add(("shopify", "checkout_id", str(checkout.id)))
            identities.add(("shopify", "email", checkout.email))
        if self.profile is not None and self.profile.created < end:
            self.render_profile(self.profile, end, identities)
            tally.memberships.extend(self.list_memberships(self.profile, end))
        for cookie in self.ga4_cookies:
            identities.add(("ga4", "user_pseudo_id", cookie))
        for user_id in self.ga4_user_ids:
            identities.add(("ga4", "user_id", user_id))
        tally.identities.extend(f"{s}\t{t}\t{v}\t{self.person_id}" for s, t, v in identities)
        tally.people.append(self.person_row(end))
        self.count_planted(end, tally)

    def render_profile(self, profile: Profile, end: int, identities: set) -> None:
        out, tally = self.out, self.out.tally
        visible_events = [e for e in profile.events if e[0] < end]
        for ts, metric, event_id, line in visible_events:
            out.events.add(self.world.day_index(ts), event_id, line)
            tally.events_by_metric[metric] += 1
        line = json_line(self.profile_json(profile, end, visible_events))
        out.profiles.add(self.world.day_index(profile.created), profile.id, line)
        tally.profiles += 1
        identities.add(("klaviyo", "profile_id", profile.id))
        identities.add(("klaviyo", "email", profile.email))
        if profile.phone:
            identities.add(("klaviyo", "phone", profile.phone))

    def list_memberships(self, profile: Profile, end: int) -> list[tuple[str, str, int]]:
        """(list name, profile id, joined) of the profile's Klaviyo lists as of `end` (see the module doc)."""
        memberships = []
        consent = profile.consent_at(end - 1)
        if consent is not None and consent[1] == "SUBSCRIBED":
            memberships.append(("Newsletter", profile.id, max(consent[0], profile.created)))
        first_order = min((o.created for o in self.orders if o.created < end and not o.test), default=None)
        if first_order is not None:
            memberships.append(("Customers", profile.id, max(first_order, profile.created)))
        return memberships

    def customer_json(self, record: CustomerRec, end: int) -> dict:
        orders = record.orders
        consent = self.profile.consent_at(end - 1) if record.mirrors_consent and self.profile else None
        changes = [record.created] + [o.updated_by(end) for o in orders]
        if record.mirrors_consent and self.profile is not None:
            changes.extend(c[0] for c in self.profile.consent if c[0] < end and c[2] is not None)
        updated = max(changes)
        if record.email is None:
            marketing = None
        elif consent is not None and consent[2] is not None:
            marketing = {
                "state": {"SUBSCRIBED": "subscribed", "UNSUBSCRIBED": "unsubscribed"}[consent[1]],
                "opt_in_level": "single_opt_in",
                "consent_updated_at": iso_local(consent[0]),
            }
        else:
            marketing = {
                "state": "not_subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": None,
            }
        address = {
            "id": record.id * 4 + 1,
            "customer_id": record.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company": None,
            "address1": None if record.tags == "pos" else f"Storgata {self.index % 97 + 1}",
            "address2": None,
            "city": self.city,
            "province": None,
            "country": self.country["name"],
            "zip": self.zip,
            "phone": record.address_phone,
            "name": f"{self.first_name} {self.last_name}",
            "province_code": None,
            "country_code": self.country_code,
            "country_name": self.country["name"],
            "default": True,
        }
        return {
            "id": record.id,
            "email": record.email,
            "created_at": "not-a-date"
            if record.malformed == "created_at is not a date"
            else iso_local(record.created),
            "updated_at": iso_local(updated),
            "first_name": self.first_name,
            "last_name": self.last_name,
            "orders_count": len(orders),
            "state": record.state,
            "total_spent": money(sum(o.net_revenue_by(end) for o in orders)),
            "last_order_id": max(o.id for o in orders) if orders else None,
            "note": None,
            "verified_email": record.state == "enabled",
            "multipass_identifier": None,
            "tax_exempt": False,
            "tags": record.tags,
            "currency": CURRENCY,
            "phone": record.phone,
            "addresses": [address],
            "tax_exemptions": [],
            "email_marketing_consent": marketing,
            "sms_marketing_consent": None,
            "admin_graphql_api_id": f"gid://shopify/Customer/{record.id}",
            "default_address": address,
        }

    def order_json(self, order: Order, end: int) -> dict:
        cancelled = order.cancelled if order.cancelled_by(end) else None
        refunds = [r for r in order.refunds if r.created < end]
        fulfilled = order.fulfilled if order.fulfilled is not None and order.fulfilled < end else None
        if cancelled:
            financial = "voided"
        elif refunds:
            financial = "refunded" if sum(r.amount for r in refunds) >= order.total else "partially_refunded"
        else:
            financial = "paid"
        total = order.total
        shipping_lines = []
        if order.shipping is not None:
            title, price = order.shipping
            shipping_lines.append(
                {
                    "id": order.id * 16 + 15,
                    "title": title,
                    "price": money(price),
                    "code": title.upper().replace(" ", "_"),
                    "source": "shopify",
                }
            )
        line_items = []
        for line in order.lines:
            product = line.variant.product
            line_items.append(
                {
                    "id": line.id,
                    "product_id": product.id,
                    "variant_id": line.variant.id,
                    "title": product.title,
                    "variant_title": line.variant.title,
                    "sku": line.variant.sku,
                    "vendor": product.vendor,
                    "quantity": line.quantity,
                    "price": money(line.variant.price),
                    "total_discount": money(line.discount),
                    "name": f"{product.title} - {line.variant.title}",
                    "requires_shipping": order.source == "web",
                    "taxable": True,
                    "gift_card": False,
                }
            )
        record = {
            "id": order.id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order.id}",
            "name": f"#{ORDER_NUMBER_PLACEHOLDER}",
            "order_number": ORDER_NUMBER_PLACEHOLDER,
            "email": order.email,
            "phone": order.phone,
            "created_at": iso_local(order.created),
            "updated_at": iso_local(order.updated_by(end)),
            "processed_at": iso_local(order.created),
            "cancelled_at": iso_local(cancelled[0]) if cancelled else None,
            "cancel_reason": cancelled[1] if cancelled else None,
            "closed_at": iso_local(cancelled[0])
            if cancelled
            else (iso_local(fulfilled) if fulfilled else None),
            "financial_status": financial,
            "fulfillment_status": "fulfilled" if fulfilled is not None else None,
            "currency": CURRENCY,
            "presentment_currency": CURRENCY,
            "total_price": money(total),
            "subtotal_price": money(order.line_items_total - order.discounts_total),
            "total_discounts": money(order.discounts_total),
            "total_tax": money(vat_of(total)),
            "total_line_items_price": money(order.line_items_total),
            "taxes_included": True,
            "shipping_lines": shipping_lines,
            "source_name": order.source,
            "test": order.test,
            "payment_gateway_names": [order.gateway],
            "customer": self.order_customer_json(order.customer),
            "location_id": order.location_id,
            "line_items": line_items,
            "refunds": [self.refund_json(order, r) for r in refunds],
            "discount_codes": [
                {
                    "code": order.discount_code[0],
                    "amount": money(order.discounts_total),
                    "type": order.discount_code[1],
                }
            ]
            if order.discount_code
            else [],
            "landing_site": order.landing_site,
            "referring_site": order.referring_site,
            "browser_ip": order.browser_ip,
            "token": order.token,
            "tags": "",
            "note": None,
            "buyer_accepts_marketing": self.accepts_marketing and order.source == "web",
        }
        if order.malformed == "total_price is not a number":
            record["total_price"] = "N/A"
        elif order.malformed == "line item quantity is negative":
            line_items[0]["quantity"] = -1
        elif order.malformed == "line item has no price":
            line_items[0]["price"] = None
        return record

    def order_customer_json(self, record: CustomerRec | None) -> dict | None:
        if record is None:
            return None
        return {
            "id": record.id,
            "email": record.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "phone": record.phone,
            "created_at": "not-a-date"
            if record.malformed == "created_at is not a date"
            else iso_local(record.created),
            "state": record.state,
            "tags": record.tags,
            "currency": CURRENCY,
            "admin_graphql_api_id": f"gid://shopify/Customer/{record.id}",
        }

    @staticmethod
    def refund_json(order: Order, refund: Refund) -> dict:
        created = iso_local(refund.created)
        gateway = order.gateway
        transactions = []
        if refund.failed_attempt_first:
            transactions.append(
                {
                    "id": refund.id * 4,
                    "order_id": order.id,
                    "kind": "refund",
                    "status": "failure",
                    "amount": money(refund.amount),
                    "gateway": gateway,
                    "currency": CURRENCY,
                    "created_at": created,
                    "processed_at": created,
                }
            )
        transactions.append(
            {
                "id": refund.id * 4 + 1,
                "order_id": order.id,
                "kind": "refund",
                "status": "success",
                "amount": money(refund.amount),
                "gateway": gateway,
                "currency": CURRENCY,
                "created_at": created,
                "processed_at": created,
            }
        )
        return {
            "id": refund.id,
            "order_id": order.id,
            "created_at": created,
            "processed_at": created,
            "note": None,
            "restock": True,
            "refund_line_items": [
                {
                    "id": refund.id * 8 + n,
                    "line_item_id": line.id,
                    "quantity": quantity,
                    "subtotal": money(subtotal),
                    "total_tax": money(vat_of(subtotal)),
                    "restock_type": "return",
                }
                for n, (line, quantity, subtotal) in enumerate(refund.lines)
            ],
            "transactions": transactions,
        }

    def checkout_json(self, checkout: Checkout) -> dict:
        gross = sum(v.price * q for v, q in checkout.lines)
        total = gross + checkout.shipping[1]
        return {
            "id": checkout.id,
            "token": checkout.token,
            "cart_token": checkout.token[:24],
            "email": checkout.email,
            "gateway": None,
            "buyer_accepts_marketing": False,
            "created_at": iso_local(checkout.created),
            "updated_at": iso_local(checkout.updated),
            "landing_site": checkout.landing_site,
            "note": None,
            "referring_site": checkout.referring_site,
            "shipping_lines": [{"title": checkout.shipping[0], "price": money(checkout.shipping[1])}],
            "taxes_included": True,
            "currency": CURRENCY,
            "presentment_currency": CURRENCY,
            "completed_at": None,
            "closed_at": None,
            "phone": self.phone,
            "customer_locale": self.country["locale"].lower(),
            "source_name": "web",
            "line_items": [
                {
                    "product_id": v.product.id,
                    "variant_id": v.id,
                    "title": v.product.title,
                    "variant_title": v.title,
                    "sku": v.sku,
                    "vendor": v.product.vendor,
                    "quantity": q,
                    "price": money(v.price),
                    "line_price": money(v.price * q),
                }
                for v, q in checkout.lines
            ],
            "discount_codes": [],
            "total_discounts": money(0),
            "total_line_items_price": money(gross),
            "subtotal_price": money(gross),
            "total_price": money(total),
            "total_tax": money(vat_of(total)),
            "abandoned_checkout_url": f"{SHOP_URL}/checkouts/{checkout.token}/recover",
            "customer": self.order_customer_json(checkout.customer),
        }

    def profile_json(self, profile: Profile, end: int, visible_events: list) -> dict:
        consent = profile.consent_at(end - 1)
        suppressions = [(t, reason) for t, reason in profile.suppressions if t < end]
        answers = {}
        for ts, key, value in sorted(profile.answers, key=lambda a: a[0]):
            if ts < end:
                answers[key] = value
        properties = {
            key: answers[key]
            for key in ("interests", "preferred_channel", "cart_abandon_reason")
            if key in answers
        }
        last_event = max((e[0] for e in visible_events), default=None)
        changes = [profile.created] + [c[0] for c in profile.consent if c[0] < end]
        changes += [t for t, _ in suppressions] + [a[0] for a in profile.answers if a[0] < end]
        if last_event is not None:
            changes.append(last_event)
        subscribed = consent[1] == "SUBSCRIBED" and not suppressions
        return {
            "type": "profile",
            "id": profile.id,
            "attributes": {
                "email": profile.email,
                "phone_number": profile.phone,
                "external_id": None,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "organization": None,
                "locale": self.country["locale"],
                "title": None,
                "image": None,
                "created": iso_utc(profile.created),
                "updated": iso_utc(max(changes)),
                "last_event_date": iso_utc(last_event) if last_event is not None else None,
                "location": {
                    "address1": None,
                    "address2": None,
                    "city": self.city,
                    "country": self.country["name"],
                    "latitude": None,
                    "longitude": None,
                    "region": None,
                    "zip": self.zip,
                    "timezone": self.country["tz"],
                    "ip": None,
                },
                "properties": properties,
                "subscriptions": {
                    "email": {
                        "marketing": {
                            "can_receive_email_marketing": subscribed,
                            "consent": consent[1],
                            "consent_timestamp": iso_utc(consent[0]) if consent[2] is not None else None,
                            "last_updated": iso_utc(consent[0]) if consent[2] is not None else None,
                            "method": consent[2],
                            "method_detail": consent[3],
                            "custom_method_detail": None,
                            "double_optin": None,
                            "suppression": [
                                {"reason": reason, "timestamp": iso_utc(t)} for t, reason in suppressions
                            ],
                            "list_suppressions": [],
                        }
                    }
                },
            },
        }

    # -- truth -----------------------------------------------------------------------------------

    def count_customer(self, record: CustomerRec, tally: Tally) -> None:
        tally.customers["records"] += 1
        if "test" in record.tags:
            tally.customers["test"] += 1
        elif record.malformed:
            tally.customers["malformed"] += 1
            tally.malformed.append(
                {"source": "shopify", "table": "customers", "id": record.id, "problem": record.malformed}
            )
        else:
            tally.customers["valid_nontest"] += 1

    def count_order(self, order: Order, tally: Tally) -> None:
        end = self.world.end
        orders, money_ = tally.orders, tally.money
        orders["records"] += 1
        orders[order.source] += 1
        if order.customer is not None:
            orders["with_customer"] += 1
        if order.source == "web" and not order.in_ga4:
            orders["web_without_ga4_purchase"] += 1
        if order.test:
            orders["test"] += 1
            return
        if order.malformed:
            orders["malformed"] += 1
            tally.malformed.append(
                {"source": "shopify", "table": "orders", "id": order.id, "problem": order.malformed}
            )
            return
        if order.cancelled_by(end):
            orders["cancelled"] += 1
            return
        orders["counted"] += 1
        refunded = order.refunded_by(end)
        money_["gross"] += order.total
        money_["refunded"] += refunded
        customer = order.customer
        if customer is not None and not customer.malformed and "test" not in customer.tags:
            orders["of_customers"] += 1
            money_["net_of_customers"] += order.total - refunded

    def person_row(self, end: int) -> tuple:
        counted = sorted((o for o in self.orders if o.counted_by(end)), key=lambda o: o.created)
        days = [local_day_number(o.created) for o in counted]
        churned = False
        mean_gap = None
        if counted:
            if len(days) > 1:
                mean_gap = (days[-1] - days[0]) / (len(days) - 1)
                threshold = min(180.0, max(30.0, 3 * mean_gap))
            else:
                threshold = 180.0
            churned = local_day_number(end) - days[-1] > threshold
        consent = self.profile.consent_at(end - 1)[1] if self.profile and self.profile.created < end else ""
        return (
            self.person_id,
            self.kind,
            int(self.is_test),
            iso_local(self.arrival),
            self.country["name"],
            self.city,
            self.email or "",
            self.phone or "",
            len(self.devices),
            len(self.cookies),
            " ".join(str(r.id) for r in self.records),
            self.profile.id if self.profile and self.profile.created < end else "",
            iso_local(counted[0].created) if counted else "",
            iso_local(counted[-1].created) if counted else "",
            len(counted),
            sum(1 for o in counted if o.source == "web"),
            sum(1 for o in counted if o.source == "pos"),
            money(sum(o.net_revenue_by(end) for o in counted)),
            f"{mean_gap:.1f}" if mean_gap is not None else "",
            int(churned),
            iso_local(int(self.stop_at)) if self.stop_at < end else "",
            consent,
        )

    def count_planted(self, end: int, tally: Tally) -> None:
        planted = tally.planted
        emails = {r.email for r in self.records if r.email} | {o.email for o in self.orders if o.email}
        if self.profile is not None and self.profile.created < end:
            emails.add(self.profile.email)
        if self.email and any(e != self.email for e in emails):
            planted["people_with_email_variants"] += 1
        if len(self.accounts) > 1:
            planted["people_with_duplicate_accounts"] += 1
        if self.guest is not None:
            planted["guest_customers"] += 1
        if self.pos_customer is not None and self.pos_customer.email is None:
            planted["phone_only_customers"] += 1
        if len(self.cookies) > len(self.devices):
            planted["people_with_reset_cookies"] += 1
        for order in self.orders:
            if order.source == "pos" and order.customer is None:
                planted["pos_orders_without_customer"] += 1
            for refund in order.refunds:
                if refund.created < end:
                    planted["full_refunds" if refund.amount >= order.total else "partial_refunds"] += 1
                    planted["failed_refund_transactions"] += refund.failed_attempt_first
        if self.profile is not None and self.profile.created < end:
            given = any(c[1] == "SUBSCRIBED" for c in self.profile.consent if c[0] < end)
            if given and self.profile.consent_at(end - 1)[1] == "UNSUBSCRIBED":
                planted["consent_withdrawn"] += 1
        if self.stop_at < end and self.orders:
            planted["people_stopped_buying"] += 1


class SessionEvents:
    """The GA4 events of one session, written straight to the day's spool when it ends."""

    NULLS = '"int_value":null,"float_value":null,"double_value":null}}'
    PARAM_INT = (
        '{"key":"%s","value":{"string_value":null,"int_value":%d,"float_value":null,"double_value":null}}'
    )
    CURRENCY_PARAM = '{"key":"currency","value":{"string_value":"EUR",' + NULLS
    VALUE_PARAM = (
        '{"key":"value","value":{"string_value":null,"int_value":null,"float_value":null,"double_value":'
    )

    def __init__(
        self, life: Life, device: Device, channel: str, campaign: Campaign | None, ts: int, session_id: int
    ):
        self.life = life
        self.device = device
        self.channel = channel
        self.campaign = campaign
        self.start = ts
        self.session_id = session_id
        self.day_number = local_day_number(ts)
        self.limit = (
            local_midnight(date_of_day_number(self.day_number + 1)) * 1_000_000 - 1
        )  # never past midnight
        room = self.limit - ts * 1_000_000
        self.cursor = ts * 1_000_000 + int(life.rng.random() * min(1_000_000, room // 2))
        self.rows: list[tuple[int, str, str, str, str, str | None]] = []
        self.landing = ""

    def add(
        self,
        name: str,
        page: str,
        *,
        items: str = "",
        value: int | None = None,
        extra: tuple | None = None,
        ecommerce: Order | None = None,
        gap: int | None = None,
    ) -> int:
        """Append an event `gap` seconds (default 8-90) after the previous one; returns its timestamp (µs)."""
        random_ = self.life.rng.random
        seconds = 8 + int(random_() * 82) if gap is None else gap
        step = seconds * 1_000_000 + 1 + int(random_() * 999)  # µs apart, so events keep their order
        room = self.limit - self.cursor
        # Late at night the session speeds up instead of running into tomorrow.
        self.cursor += step if step < room // 2 else max(1, room // 50)
        if not self.landing:
            self.landing = page
        # Pages are built from ASCII handles, so they need no JSON escaping.
        params = '{"key":"page_location","value":{"string_value":"' + page + '",' + self.NULLS
        if value is not None:
            params += "," + self.CURRENCY_PARAM + "," + self.VALUE_PARAM + money(value) + "}}"
        if extra is not None:
            params += ',{"key":"' + extra[0] + '","value":{"string_value":"' + extra[1] + '",' + self.NULLS
        ecommerce_json = "null"
        if ecommerce is not None:
            quantity = sum(line.quantity for line in ecommerce.lines)
            ecommerce_json = (
                f'{{"transaction_id":"{ecommerce.id}","purchase_revenue":{money(ecommerce.total)},'
                f'"shipping_value":{money(ecommerce.shipping[1] if ecommerce.shipping else 0)},'
                f'"tax_value":{money(vat_of(ecommerce.total))},"total_item_quantity":{quantity},'
                f'"unique_items":{len(ecommerce.lines)}}}'
            )
        user = self.device.logged_in
        self.rows.append((self.cursor, name, params, items, ecommerce_json, str(user.id) if user else None))
        return self.cursor

    def view(self, variant: Variant) -> None:
        page = f"{SHOP_URL}/products/{variant.product.handle}"
        self.add("page_view", page)
        self.add("view_item", page, items=self.life.catalog.ga4_item(variant, 1), value=variant.price, gap=0)

    def finish(self) -> None:
        """Write the session's rows to the day's spool (unless an ad blocker ate them) and count it."""
        life, device = self.life, self.device
        if device.adblock:
            return
        world, tally, rng = life.world, life.out.tally, life.rng
        day = self.day_number - world.start_day_number
        traffic = world.traffic_json(self.channel, self.campaign)
        head = f'{{"event_date":"{world.event_date(self.day_number)}","event_timestamp":'
        params_head = (
            '"event_params":['
            + self.PARAM_INT % ("ga_session_id", self.session_id)
            + ","
            + self.PARAM_INT % ("ga_session_number", device.session_number)
            + ","
        )
        who = f'"user_pseudo_id":"{device.cookie}","user_id":'
        context = (
            f',"device":{device.device_json},"geo":{life.geo_json},"traffic_source":{traffic},"ecommerce":'
        )
        life.ga4_cookies.add(device.cookie)
        rows: list[tuple[str, str]] = []
        step = 0
        for ts, name, params, items, ecommerce, user in self.rows:
            if user is not None:
                life.ga4_user_ids.add(user)
            line = (
                f'{head}{ts},"event_name":"{name}",{params_head}{params}],{who}'
                f"{'null' if user is None else chr(34) + user + chr(34)}{context}{ecommerce},"
                f'"items":[{items}],"platform":"WEB"}}'
            )
            key = f"{ts:017d}"  # equal timestamps sort by line: still one fixed order
            rows.append((key, line))
            if rng.random() < DUPLICATE_EVENT_SHARE:
                rows.append((key, line))  # the same event sent twice
                tally.ga4_duplicates += 1
            if step < len(FUNNEL_STEPS) and name == FUNNEL_STEPS[step]:
                step += 1
        life.out.ga4.add_many(day, rows)
        tally.ga4_events += len(rows)
        tally.sessions += 1
        for reached in range(step):
            tally.funnel[(day, device.category, self.channel, reached)] += 1


# ------------------------------------------------------------------------------------------------
# Writing the world
# ------------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_gzip(path: Path, data: bytes, level: int = 6) -> None:
    """Gzip with no name and mtime 0, so the same content gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level) as zipped,
    ):
        zipped.write(data)


def _write_jsonl(path: Path, lines: list[str]) -> None:
    _write_text(path, "".join(f"{line}\n" for line in lines))


def _write_spooled_jsonl(path: Path, spools: list[Spool], number_orders: bool = False) -> None:
    """One `.jsonl` file from spooled lines, in key order; orders get their `order_number` here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    number = FIRST_ORDER_NUMBER
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for day in sorted(set().union(*(spool.days() for spool in spools))):
            lines = sorted_lines(spools, day)
            if number_orders:
                numbered = []
                for line in lines:
                    numbered.append(
                        line.replace(
                            f'"order_number":"{ORDER_NUMBER_PLACEHOLDER}"', f'"order_number":{number}', 1
                        ).replace(f'"#{ORDER_NUMBER_PLACEHOLDER}"', f'"#{number}"', 1)
                    )
                    number += 1
                lines = numbered
            f.writelines(f"{line}\n" for line in lines)


def _write_ga4_days(folder: Path, spools: list[Spool], start_date: dt.date, days: list[int]) -> None:
    """GA4 export files for these day indexes (a file for every day, empty days too)."""
    folder.mkdir(parents=True, exist_ok=True)
    for day in days:
        name = (start_date + dt.timedelta(days=day)).strftime("%Y%m%d")
        text = "".join(f"{line}\n" for line in sorted_lines(spools, day))
        _write_gzip(folder / f"events_{name}.json.gz", text.encode("utf-8"), GA4_GZIP_LEVEL)


def _klaviyo_shop_records(world: WorldSpec) -> tuple[list[str], list[str], list[str]]:
    created = iso_utc(world.start - 365 * DAY)
    metrics = []
    for name in METRIC_NAMES:
        integration = (
            ("shopify", "Shopify", "ecommerce")
            if name == "Placed Order"
            else ("klaviyo", "Klaviyo", "Internal")
        )
        metrics.append(
            (
                world.metric_ids[name],
                json_line(
                    {
                        "type": "metric",
                        "id": world.metric_ids[name],
                        "attributes": {
                            "name": name,
                            "created": created,
                            "updated": created,
                            "integration": {
                                "object": "integration",
                                "id": integration[0],
                                "key": integration[0],
                                "name": integration[1],
                                "category": integration[2],
                            },
                        },
                    }
                ),
            )
        )
    lists = [
        (
            list_id,
            json_line(
                {
                    "type": "list",
                    "id": list_id,
                    "attributes": {
                        "name": name,
                        "created": created,
                        "updated": created,
                        "opt_in_process": "single_opt_in",
                    },
                }
            ),
        )
        for name, list_id in world.list_ids.items()
    ]
    newsletter = world.list_ids["Newsletter"]
    campaigns = [(c.id, json_line(campaign_record(c, newsletter))) for c in world.campaigns]
    return (
        [line for _, line in sorted(metrics)],
        [line for _, line in sorted(lists)],
        [line for _, line in sorted(campaigns)],
    )


def _membership_lines(world: WorldSpec, tally: Tally) -> list[str]:
    """`list_memberships.jsonl`: one line per (list, profile), sorted by list id, then profile id."""
    rows = sorted(
        (world.list_ids[name], profile_id, joined) for name, profile_id, joined in tally.memberships
    )
    return [
        json_line({"list_id": list_id, "profile_id": profile_id, "joined": iso_utc(joined)})
        for list_id, profile_id, joined in rows
    ]


def _csv_text(header: tuple[str, ...], rows: object) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _funnel_rows(world: WorldSpec, tally: Tally) -> list[tuple]:
    """Every step of every (day, device, channel) that had a session viewing an item."""
    rows = []
    for day, device, channel in sorted({key[:3] for key in tally.funnel if key[3] == 0}):
        date = (world.start_date + dt.timedelta(days=day)).isoformat()
        for step, name in enumerate(FUNNEL_STEPS):
            rows.append((date, device, channel, name, tally.funnel.get((day, device, channel, step), 0)))
    return rows


def _write_truth(folder: Path, world: WorldSpec, tally: Tally, summary: dict) -> None:
    _write_text(folder / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    identities = (row.split("\t") for row in sorted(tally.identities))
    identities_csv = _csv_text(("source", "id_type", "identifier", "person_id"), identities)
    _write_gzip(folder / "identities.csv.gz", identities_csv.encode("utf-8"))
    _write_gzip(folder / "people.csv.gz", _csv_text(PEOPLE_COLUMNS, tally.people).encode("utf-8"))
    funnel_csv = _csv_text(("date", "device", "channel", "step", "sessions"), _funnel_rows(world, tally))
    _write_text(folder / "funnel_daily.csv", funnel_csv)


PLANTED_COUNTS = (  # how often each hard case occurs, for tests to size their expectations
    "people_with_email_variants",
    "people_with_duplicate_accounts",
    "people_with_reset_cookies",
    "guest_customers",
    "phone_only_customers",
    "pos_orders_without_customer",
    "full_refunds",
    "partial_refunds",
    "failed_refund_transactions",
    "consent_withdrawn",
    "people_stopped_buying",
)
PEOPLE_COLUMNS = (
    "person_id",
    "kind",
    "is_test",
    "first_seen_at",
    "country",
    "city",
    "email",
    "phone",
    "devices",
    "cookies",
    "customer_ids",
    "profile_id",
    "first_order_at",
    "last_order_at",
    "orders",
    "web_orders",
    "pos_orders",
    "net_revenue",
    "mean_days_between_orders",
    "churned",
    "stopped_buying_at",
    "email_consent",
)


def _summary(world: WorldSpec, tally: Tally, ga4_files: int) -> dict:
    orders, money_ = tally.orders, tally.money
    funnel_totals = [
        sum(n for key, n in tally.funnel.items() if key[3] == step) for step in range(len(FUNNEL_STEPS))
    ]
    people = tally.people
    return {
        "world": {
            "seed": world.seed,
            "customers": world.customers,
            "days": world.days,
            "start_date": world.start_date.isoformat(),
            "as_of": world.as_of.isoformat(),
            "span_days": world.span_days,
            "timezone": TIMEZONE,
            "currency": CURRENCY,
            "generator_version": GENERATOR_VERSION,
        },
        "shopify": {
            "customers": {
                key: tally.customers[key] for key in ("records", "test", "malformed", "valid_nontest")
            },
            "orders": {
                key: orders[key]
                for key in (
                    "records",
                    "test",
                    "cancelled",
                    "malformed",
                    "counted",
                    "web",
                    "pos",
                    "with_customer",
                )
            },
            "products": {"records": len(world.catalog.products)},
            "checkouts": {"records": tally.checkouts},
            "gross_revenue": money(money_["gross"]),
            "refunded": money(money_["refunded"]),
            "net_revenue": money(money_["gross"] - money_["refunded"]),
            "net_revenue_of_customers": money(money_["net_of_customers"]),
            "orders_of_customers": orders["of_customers"],
        },
        "klaviyo": {
            "profiles": tally.profiles,
            "events": sum(tally.events_by_metric.values()),
            "events_by_metric": {name: tally.events_by_metric[name] for name in METRIC_NAMES},
            "metrics": len(METRIC_NAMES),
            "campaigns": len(world.campaigns),
            "lists": len(LIST_NAMES),
            "list_memberships": {
                name: sum(1 for m in tally.memberships if m[0] == name) for name in LIST_NAMES
            },
        },
        "ga4": {
            "files": ga4_files,
            "events": tally.ga4_events,
            "duplicate_events": tally.ga4_duplicates,
            "sessions": tally.sessions,
            "web_orders_without_ga4_purchase": orders["web_without_ga4_purchase"],
            "funnel": dict(zip(FUNNEL_STEPS, funnel_totals, strict=True)),
        },
        "people": {
            "total": len(people),
            "test": sum(row[PEOPLE_COLUMNS.index("is_test")] for row in people),
            "churned": sum(row[PEOPLE_COLUMNS.index("churned")] for row in people),
        },
        "malformed": sorted(tally.malformed, key=lambda m: (m["table"], m["id"])),
        "planted": {
            "replenish_cycles_days": {
                str(p.id): p.replenish_days for p in world.catalog.products if p.replenish_days
            },
            "bought_together": sorted(
                {
                    tuple(sorted((str(p.id), str(world.catalog.by_title[p.complement_title].id))))
                    for p in world.catalog.products
                    if p.complement_title
                }
            ),
            "free_shipping_from": money(FREE_SHIPPING_FROM),
            "largest_funnel_drop": "add_shipping_info→add_payment_info",
            **{key: tally.planted[key] for key in PLANTED_COUNTS},
        },
    }


def _world_spec(seed: int, customers: int, days: int, start_date: dt.date, as_of: dt.date) -> WorldSpec:
    start, end = local_midnight(start_date), local_midnight(as_of)
    ids = random.Random(f"{seed}:klaviyo-ids")
    metric_ids = {name: short_id(ids) for name in METRIC_NAMES}
    list_ids = {name: short_id(ids) for name in LIST_NAMES}
    base = round(customers * EXISTING_BASE_SHARE)
    return WorldSpec(
        seed=seed,
        customers=customers,
        days=days,
        start_date=start_date,
        as_of=as_of,
        start=start,
        end=end,
        base=base,
        arrivals_per_day=max(customers - base, 1) / days,
        catalog=Catalog(seed, start),
        campaigns=build_campaigns(seed, start_date, end),
        metric_ids=metric_ids,
        list_ids=list_ids,
    )


def _simulate_people(world: WorldSpec, output: Output, share: int = 0, shares: int = 1) -> None:
    """Live the lives of every `shares`-th person (from `share`) who has arrived before the world's end."""
    index = share
    while True:
        if index >= MAX_PEOPLE:
            raise ValueError(f"a world may hold at most {MAX_PEOPLE} people")
        life = Life(world, index, output)
        if life.raw_arrival >= world.end:
            if index >= world.base:
                break  # after the existing base, people arrive in index order
        else:
            life.run()
            if life.exists():
                life.render()
        index += shares


def _simulate_share(args: tuple) -> Tally:
    """Worker process: rebuild the world's context, live one share of the people, spill everything."""
    seed, customers, days, start_date, as_of, share, shares, folder = args
    output = Output(folder, SPOOL_MEMORY_BYTES // shares)
    _simulate_people(_world_spec(seed, customers, days, start_date, as_of), output, share, shares)
    output.spill()
    return output.tally


def _write_spooled(args: tuple) -> None:
    """Worker process: write one output file (or a run of GA4 days) from the shares' spill folders."""
    kind, folders, target, extra = args
    spools = [Spool.reopen(folder / kind) for folder in folders]
    if kind == "ga4":
        _write_ga4_days(target, spools, *extra)
    else:
        _write_spooled_jsonl(target, spools, number_orders=kind == "orders")


SPOOL_FILES = {  # biggest first, so parallel writers finish together
    "events": "world/klaviyo/events.jsonl",
    "orders": "world/shopify/orders.jsonl",
    "checkouts": "world/shopify/checkouts.jsonl",
    "customers": "world/shopify/customers.jsonl",
    "profiles": "world/klaviyo/profiles.jsonl",
}


def _auto_workers(customers: int, span_days: int) -> int:
    """Processes worth starting: one for small worlds, up to PARALLEL_MAX_WORKERS for big ones."""
    if customers * span_days < PARALLEL_FROM_PERSON_DAYS or __name__ == "__main__":
        return 1
    return max(1, min(os.cpu_count() or 1, PARALLEL_MAX_WORKERS))


def _run_job(job_file: str) -> None:
    """Entry point of a worker process: run the pickled (function name, args), pickle the result."""
    path = Path(job_file)
    function, args = pickle.loads(path.read_bytes())
    path.with_suffix(".result").write_bytes(pickle.dumps(globals()[function](args)))


def _run_in_processes(jobs: list[tuple[str, tuple]], folder: Path, workers: int) -> list:
    """Run module functions in fresh interpreter processes, at most `workers` at a time.

    Plain subprocesses rather than multiprocessing: nothing of the caller's `__main__` is
    re-imported and nothing is forked from a process that may run threads.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    command = f"import sys; from {__name__} import _run_job; _run_job(sys.argv[1])"
    job_files = []
    for n, job in enumerate(jobs):
        job_file = folder / f"job{n}.pickle"
        job_file.write_bytes(pickle.dumps(job))
        job_files.append(job_file)
    waiting, running = list(job_files), []
    while waiting or running:
        while waiting and len(running) < workers:
            job_file = waiting.pop(0)
            running.append(
                (job_file, subprocess.Popen([sys.executable, "-c", command, str(job_file)], env=env))
            )
        time.sleep(0.05)
        for job_file, process in [job for job in running if job[1].poll() is not None]:
            running.remove((job_file, process))
            if process.returncode != 0:
                for _, other in running:
                    other.kill()
                raise RuntimeError(
                    f"world generator worker {job_file.name} failed: exit code {process.returncode}"
                )
    return [pickle.loads(f.with_suffix(".result").read_bytes()) for f in job_files]


def _draw_and_spool(world: WorldSpec, building: Path, workers: int) -> Tally:
    """Draw every person and write the spooled output files; in worker processes when `workers` > 1."""
    days = list(range(world.span_days))
    if workers == 1:
        output = Output(building / "spool")
        _simulate_people(world, output)
        for kind, name in SPOOL_FILES.items():
            _write_spooled_jsonl(building / name, [output.spools[kind]], number_orders=kind == "orders")
        _write_ga4_days(building / "ga4", [output.ga4], world.start_date, days)
        return output.tally
    folders = [building / "spool" / f"share{share}" for share in range(workers)]
    shares = [
        (
            "_simulate_share",
            (world.seed, world.customers, world.days, world.start_date, world.as_of, n, workers, f),
        )
        for n, f in enumerate(folders)
    ]
    tally = Tally()
    for share_tally in _run_in_processes(shares, building / "jobs", workers):
        tally.merge(share_tally)
    ga4_runs = 2 * workers
    writes = [
        ("_write_spooled", ("ga4", folders, building / "ga4", (world.start_date, days[n::ga4_runs])))
        for n in range(ga4_runs)
    ]
    writes += [
        ("_write_spooled", (kind, folders, building / name, None)) for kind, name in SPOOL_FILES.items()
    ]
    _run_in_processes(writes, building / "jobs", workers)
    tally.people.sort()
    return tally


def generate_world(
    root: Path,
    *,
    seed: int = 42,
    customers: int = 1000,
    days: int = 90,
    as_of: dt.date | None = None,
    start_date: dt.date | None = None,
    workers: int | None = None,
) -> dict:
    """Draw the world and write `root/world`, `root/ga4` and `root/truth`, replacing any previous world.

    `as_of` is the world's "now" (default: today's UTC date); the world covers `start_date`
    (default `as_of - days`) up to the end of the day before `as_of`. About `customers` people
    arrive per `days` days. `workers` processes draw it (default: one for small worlds, several
    for big ones); the files are the same either way. Returns the truth summary (the content of
    `truth/summary.json`).
    """
    if customers < 1 or days < 1:
        raise ValueError(f"customers ({customers}) and days ({days}) must be at least 1")
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    start_date = start_date or as_of - dt.timedelta(days=days)
    if start_date >= as_of or start_date < EARLIEST_START:
        raise ValueError(
            f"start_date {start_date} must be before as_of {as_of} and not before {EARLIEST_START}"
        )
    root = Path(root)
    building = root / ".world-building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    world = _world_spec(seed, customers, days, start_date, as_of)
    tally = _draw_and_spool(world, building, workers or _auto_workers(customers, world.span_days))
    shutil.rmtree(building / "spool", ignore_errors=True)
    shutil.rmtree(building / "jobs", ignore_errors=True)

    shopify, klaviyo = building / "world" / "shopify", building / "world" / "klaviyo"
    _write_jsonl(shopify / "products.jsonl", [json_line(p) for p in world.catalog.records()])
    metrics, lists, campaigns = _klaviyo_shop_records(world)
    _write_jsonl(klaviyo / "metrics.jsonl", metrics)
    _write_jsonl(klaviyo / "lists.jsonl", lists)
    _write_jsonl(klaviyo / "list_memberships.jsonl", _membership_lines(world, tally))
    _write_jsonl(klaviyo / "campaigns.jsonl", campaigns)
    summary = _summary(world, tally, world.span_days)
    meta = {
        "seed": seed,
        "customers": customers,
        "days": days,
        "start_date": start_date.isoformat(),
        "as_of": as_of.isoformat(),
        "span_days": world.span_days,
        "currency": CURRENCY,
        "timezone": TIMEZONE,
        "api_tokens": API_TOKENS,
        "hash_key": HASH_KEY,
        "generator_version": GENERATOR_VERSION,
    }
    _write_text(building / "world" / "meta.json", json.dumps(meta, indent=2) + "\n")
    _write_truth(building / "truth", world, tally, summary)
    _keep_unchanged_exports(root / "ga4", building / "ga4")
    for part in ("world", "ga4", "truth"):
        shutil.rmtree(root / part, ignore_errors=True)
        (building / part).rename(root / part)
    building.rmdir()
    return summary


def _keep_unchanged_exports(old: Path, new: Path) -> None:
    """Carry over GA4 export files whose bytes did not change, with their modification time.

    Like the real export, advancing the world rewrites only the days that changed, so a
    connector that reads new and re-exported files sees only those.
    """
    if not old.is_dir():
        return
    for old_file in old.iterdir():
        new_file = new / old_file.name
        if new_file.exists() and new_file.read_bytes() == old_file.read_bytes():
            new_file.unlink()
            old_file.rename(new_file)


def advance_world(root: Path, days: int) -> dict:
    """Move an existing world `days` days forward: same seed, size and start, a later `as_of`."""
    meta = json.loads((Path(root) / "world" / "meta.json").read_text(encoding="utf-8"))
    return generate_world(
        root,
        seed=meta["seed"],
        customers=meta["customers"],
        days=meta["days"],
        as_of=dt.date.fromisoformat(meta["as_of"]) + dt.timedelta(days=days),
        start_date=dt.date.fromisoformat(meta["start_date"]),
    )
