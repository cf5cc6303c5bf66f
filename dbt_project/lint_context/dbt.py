"""Lint-time stand-ins for the dbt cross-database macros used by the models (DuckDB SQL)."""

from __future__ import annotations


def hash(expression: str) -> str:  # noqa: A001 - mirrors dbt.hash
    return f"md5(cast({expression} as varchar))"


def concat(fields: list[str]) -> str:
    return " || ".join(fields)


def dateadd(datepart: str, interval: object, from_date: str) -> str:
    return f"({from_date} + cast({interval} as bigint) * interval 1 {datepart})"


def datediff(first_date: str, second_date: str, datepart: str) -> str:
    return f"date_diff('{datepart}', {first_date}::timestamp, {second_date}::timestamp)"


def date_trunc(datepart: str, date: str) -> str:
    return f"date_trunc('{datepart}', {date})"


def length(expression: str) -> str:
    return f"length({expression})"


def listagg(measure: str, delimiter_text: str = "','", order_by_clause: str = "", limit_num=None):
    return f"string_agg({measure}, {delimiter_text} {order_by_clause})"


def date_spine(datepart: str, start_date: str, end_date: str) -> str:
    return (
        f"select {start_date} + cast(n as bigint) * interval 1 {datepart} as date_{datepart}"
        f" from generate_series(0, 10) as series (n) where n >= 0 and {end_date} is not null"
    )


def type_string() -> str:
    return "varchar"


def type_int() -> str:
    return "integer"


def type_bigint() -> str:
    return "bigint"


def type_timestamp() -> str:
    return "timestamp"


def type_boolean() -> str:
    return "boolean"


def type_float() -> str:
    return "float"
