"""Jinja context for sqlfluff's plain jinja templater (lint without a dbt compile).

sqlfluff only lets the root .sqlfluff choose the dbt templater. When the linter runs from the
repository root (``sqlfluff lint dbt_project/models``) it falls back to the jinja templater;
``library_path = lint_context`` then exposes ``dbt`` and ``adapter`` below, which render the
dbt cross-database macros the way dbt-duckdb compiles them, so the models still parse and lint.
From ``dbt_project/`` the real dbt templater is used instead.
"""
