"""Reading a web view request's query string: one value, several, a bounded
whole number, a required one; problems as one line each."""

from __future__ import annotations

from collections.abc import Iterable

from molexp.errors import UsageError

Query = dict[str, list[str]]


def one(query: Query, key: str, default: str | None = None) -> str | None:
    values = query.get(key)
    return values[-1] if values else default


def many(query: Query, key: str) -> list[str]:
    return [v for v in query.get(key, []) if v.strip()]


def integer(query: Query, key: str, default: int, low: int, high: int) -> int:
    text = one(query, key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{key}={text!r}: give a whole number") from None
    if not low <= value <= high:
        raise UsageError(f"{key}={value}: give a number from {low} to {high}")
    return value


def need(query: Query, key: str) -> str:
    value = one(query, key)
    if not value:
        raise UsageError(f"the request needs ?{key}=")
    return value


def problems(problems: Iterable[BaseException]) -> list[str]:
    return [str(p).splitlines()[0] for p in problems]
