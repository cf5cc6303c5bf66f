"""The landing-zone contract (see README "Landing contract") as data.

This module is the single place that names the sources, their columns, types and
validation rules. It imports nothing from dagster so the simulator, tests and the
ingest code can all share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")
FILE_FORMATS = ("csv", "parquet", "jsonl")

# Metadata columns added by ingest to every raw table.
META_COLUMNS = {
    "_partition_date": "DATE",
    "_source_file": "VARCHAR",
    "_row_number": "BIGINT",
    "_extra": "VARCHAR",  # JSON object of columns outside the contract (kept, ignored downstream)
    "_loaded_at": "TIMESTAMP",
}

# Columns of every raw.<source>_rejected table.
REJECTED_COLUMNS = {
    "_partition_date": "DATE",
    "_source_file": "VARCHAR",
    "_row_number": "BIGINT",  # 1-based data row in the file (header excluded); line = row + 1
    "rule": "VARCHAR",
    "reason": "VARCHAR",
    "record": "VARCHAR",  # the rejected row as landed (JSON object or raw CSV line)
    "_loaded_at": "TIMESTAMP",
}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB type of the typed raw column
    required: bool = False
    pii: bool = False


@dataclass(frozen=True)
class Rule:
    """A row rule: rows where ``violation_sql`` is true are rejected with ``name``."""

    name: str
    violation_sql: str
    reason: str


@dataclass(frozen=True)
class Source:
    name: str
    key: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    required_source: bool = False

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


TS = "TIMESTAMP"
MONEY = "DECIMAL(18,2)"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "customers",
            "customer_id",
            (
                Column("customer_id", "VARCHAR", True),
                Column("signed_up_at", TS, True),
                Column("email", "VARCHAR", pii=True),
                Column("country", "VARCHAR"),
                Column("acquisition_channel", "VARCHAR"),
            ),
            (
                Rule(
                    "country_iso2",
                    "country is not null and not regexp_full_match(country, '[A-Z]{2}')",
                    "country is not an ISO 3166 alpha-2 code",
                ),
            ),
        ),
        Source(
            "orders",
            "order_id",
            (
                Column("order_id", "VARCHAR", True),
                Column("customer_id", "VARCHAR", True),
                Column("ordered_at", TS, True),
                Column("status", "VARCHAR", True),
                Column("order_total", MONEY, True),
                Column("currency", "VARCHAR"),
                Column("discount_total", MONEY),
                Column("shipping_total", MONEY),
                Column("item_count", "INTEGER"),
                Column("channel", "VARCHAR"),
                Column("promised_delivery_date", "DATE"),
                Column("delivered_at", TS),
                Column("updated_at", TS),
            ),
            (
                Rule(
                    "status_known",
                    "status not in (" + ", ".join(f"'{s}'" for s in ORDER_STATUSES) + ")",
                    "status is not one of " + "/".join(ORDER_STATUSES),
                ),
                Rule("order_total_non_negative", "order_total < 0", "order_total is negative"),
                Rule(
                    "discount_total_non_negative",
                    "discount_total < 0",
                    "discount_total is negative",
                ),
                Rule(
                    "shipping_total_non_negative",
                    "shipping_total < 0",
                    "shipping_total is negative",
                ),
                Rule("item_count_non_negative", "item_count < 0", "item_count is negative"),
                Rule(
                    "currency_iso4217",
                    "currency is not null and not regexp_full_match(currency, '[A-Z]{3}')",
                    "currency is not an ISO 4217 code",
                ),
            ),
            required_source=True,
        ),
        Source(
            "reviews",
            "review_id",
            (
                Column("review_id", "VARCHAR", True),
                Column("customer_id", "VARCHAR", True),
                Column("order_id", "VARCHAR"),
                Column("rating", "INTEGER", True),
                Column("title", "VARCHAR", pii=True),
                Column("body", "VARCHAR", pii=True),
                Column("created_at", TS, True),
            ),
            (Rule("rating_1_to_5", "rating not between 1 and 5", "rating is outside 1-5"),),
        ),
        Source(
            "surveys",
            "response_id",
            (
                Column("response_id", "VARCHAR", True),
                Column("customer_id", "VARCHAR", True),
                Column("survey", "VARCHAR", True),
                Column("score", "INTEGER", True),
                Column("comment", "VARCHAR", pii=True),
                Column("responded_at", TS, True),
            ),
            (Rule("score_0_to_10", "score not between 0 and 10", "score is outside 0-10"),),
        ),
        Source(
            "checkouts",
            "checkout_id",
            (
                Column("checkout_id", "VARCHAR", True),
                Column("customer_id", "VARCHAR", True),
                Column("started_at", TS, True),
                Column("cart_value", MONEY, True),
                Column("completed_order_id", "VARCHAR"),
            ),
            (Rule("cart_value_non_negative", "cart_value < 0", "cart_value is negative"),),
        ),
    )
}
