"""Lint-time stand-in for ``adapter.dispatch`` of the project's dispatched macros."""

from __future__ import annotations

from collections.abc import Callable


def _concat_ws(separator: str, expressions: list[str]) -> str:
    return f"nullif(concat_ws('{separator}', {', '.join(expressions)}), '')"


def _type_double() -> str:
    return "double precision"


def dispatch(macro_name: str, macro_namespace: str | None = None) -> Callable[..., str]:
    return {"concat_ws": _concat_ws, "type_double": _type_double}[macro_name]
