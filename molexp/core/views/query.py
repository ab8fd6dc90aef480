"""The query grammar of SPEC §15, the one place it is defined: ``--where``
conditions, ``--sort`` keys and ``--limit``.  `ls`, `compare`, `rm`, the web view
and the Python API (``exp.runs(where=[...])``) all parse and judge through here;
docs/questions.md documents it for people.

A condition is ``KEY OP VALUE`` with OP one of ``=``, ``!=``, ``<``, ``<=``, ``>``,
``>=``, ``~`` (a regular expression, searched in text).  ``==`` is read as ``=``.

KEY is a dotted path into a run's record:

- ``params.K``, ``config.K``, ``results.K``, ``metrics.K`` (the last value of a metric,
  SPEC §14): that section of the record;
- ``status``, ``profile``, ``replica``, ``seed``, ``id``: those fields; ``host``: the host
  of the latest attempt; ``tags``: ``tags=T`` holds when T is among the run's tags,
  ``tags!=T`` when it is not (a run without tags has none), ``tags~RE`` when one
  matches;
- any other (bare) key: the param, else the config key, else the result, else the
  last metric, else a field of the record (``identity``, ``created_at``...).

VALUE is read by the value rules of SPEC §7 (:func:`molexp.core.model.values.parse_value`:
``1e-3`` a number, ``true`` a boolean, quotes force text); the regex of ``~`` is taken
as written.  A run without the key never matches (neither ``=`` nor ``!=``), and
neither does a comparison of a number with text (or of anything but two numbers
or two texts with ``<``...): never an error.  ``=`` compares the way run ids do
(``10`` equals ``10.0``; ``true`` is not ``1``).  ``!=`` holds for a run that has the
key with any other value.

The same lookup works on a full record and on an index summary
(:func:`molexp.core.records.index_entry.summarise`): :func:`needs_record` says when only
the full record will do (keys the summary leaves out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from molexp.core.records.index_entry import DROPPED, SUMMARY_ONLY, Entry
from molexp.errors import UsageError

__all__ = [
    "GRAMMAR",
    "MISSING",
    "Condition",
    "SortKey",
    "lookup",
    "matches",
    "needs_record",
    "order_key",
    "parse_condition",
    "parse_limit",
    "parse_sort",
    "parse_where",
    "same",
    "sort_records",
]

GRAMMAR = "KEY=VALUE, KEY!=VALUE, KEY<VALUE, KEY<=VALUE, KEY>VALUE, KEY>=VALUE or KEY~REGEX"
DOCS = "docs/questions.md"
OPERATORS = ("!=", "<=", ">=", "==", "=", "<", ">", "~")
_OP_CHARS = frozenset("=!<>~")
SECTIONS = ("params", "config", "results", "metrics")
# Keys that always name the record's own field (a param of that name: params.KEY).
RECORD_FIELDS = frozenset({"status", "profile", "replica", "seed", "id", "host", "tags"})
_BARE_ORDER = ("params", "config", "results", "metrics")
_NOT_RECORD_KEYS = frozenset(SUMMARY_ONLY)  # what summaries add: no key of a record
_FULL_ONLY = frozenset(DROPPED)  # what summaries leave out
_COLUMNS = ("results", "metrics")  # sections an index entry reads key by key


class Readable(Protocol):
    """A run as the grammar reads it: a record, a summary, or an index
    :class:`~molexp.core.records.index_entry.Entry` (only ``get`` is used; an entry's
    ``leaf`` reads one result or metric cheaply)."""

    def get(self, key: str, default: Any = None, /) -> Any: ...


class _Missing:
    """A key the run does not have (unlike ``None``, a value it has)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def _refuse(option: str, text: str, problem: str) -> UsageError:
    return UsageError(f"{option} '{text}': {problem}; expected {GRAMMAR} (see {DOCS})")


def _split_key(key: str, option: str, text: str) -> tuple[str, ...]:
    segments = tuple(part.strip() for part in key.split("."))
    if not key.strip():
        raise _refuse(option, text, "empty key")
    if any(not part for part in segments):
        raise _refuse(option, text, f"empty segment in key '{key.strip()}'")
    return segments


def _check_text(text: str, option: str) -> None:
    """Refuse control characters and undecodable bytes (as the value rules do)."""
    import unicodedata

    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if (category == "Cc" and char not in "\t\n\r") or category == "Cs":
            shown = text.encode("unicode_escape", "backslashreplace").decode("ascii")
            problem = (
                "contains a byte that is not valid UTF-8"
                if category == "Cs"
                else f"contains control character U+{ord(char):04X} at position {index}"
            )
            raise UsageError(f"{option} '{shown}': {problem}; use printable text only")


_PLAIN: dict[str, Any] = {}  # compiled on first use (start-up time)


def _value(raw: str) -> Any:
    """``parse_value(raw)`` (SPEC §7), without loading the YAML parser for the
    values conditions mostly hold: decimal numbers and plain words (``1e-3``,
    ``-1.3``, ``succeeded``).  ``tests/core/views/test_query.py`` checks that both
    agree."""
    if not _PLAIN:
        _PLAIN["int"] = re.compile(r"[-+]?[0-9]+\Z")
        _PLAIN["float"] = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
        _PLAIN["word"] = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-./][A-Za-z0-9_]+)*\Z")
    if _PLAIN["int"].match(raw):
        return int(raw, 10)
    if _PLAIN["float"].match(raw):
        return float(raw)
    if _PLAIN["word"].match(raw) and raw not in _WORDS:
        return raw
    from molexp.core.model.values import parse_value

    return parse_value(raw)


# Plain words that YAML 1.2 core reads as something else than text.
_WORDS = frozenset({"null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"})


# --- looking values up ---------------------------------------------------------


def _path(node: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if type(node) is dict:
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        else:
            return MISSING
    return node


def _host(record: Readable) -> Any:
    attempts = record.get("attempts")
    last = attempts[-1] if attempts else record.get("last_attempt")
    if type(last) is not dict:
        return MISSING
    return last.get("host", MISSING)


def getter(key: str) -> Callable[[Readable], Any]:
    """A function giving ``key``'s value in a record or summary (:data:`MISSING` if none)."""
    parts = _split_key(key, "key", key)
    return _getter(parts)


def _getter(parts: tuple[str, ...]) -> Callable[[Readable], Any]:
    head, rest = parts[0], parts[1:]
    if head in SECTIONS and rest:
        if len(rest) == 1:
            (leaf,) = rest

            def one(record: Readable) -> Any:
                if type(record) is Entry and head in _COLUMNS:
                    return record.leaf(head, leaf, MISSING)  # (no need to decode it all)
                node = record.get(head)
                return node.get(leaf, MISSING) if type(node) is dict else MISSING

            return one
        joined = ".".join(rest)

        def nested(record: Readable) -> Any:
            node = record.get(head)
            found = _path(node, rest)
            if found is MISSING and type(node) is dict:  # a name with dots in it
                return node.get(joined, MISSING)
            return found

        return nested
    if head in RECORD_FIELDS:
        if head == "host":
            return lambda record: _path(_host(record), rest) if rest else _host(record)
        if head == "tags" and not rest:
            return lambda record: record.get("tags") or []
        return lambda record: _path(record.get(head, MISSING), rest)

    def bare(record: Readable) -> Any:
        for section in _BARE_ORDER:
            found = _path(record.get(section), parts)
            if found is not MISSING:
                return found
        if head in _NOT_RECORD_KEYS:
            return MISSING
        return _path(record.get(head, MISSING), rest) if rest else record.get(head, MISSING)

    return bare


def lookup(record: Readable, key: str) -> Any:
    """The value ``key`` names in ``record`` (see the module docstring), or :data:`MISSING`."""
    return getter(key)(record)


# --- comparing -----------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def same(a: Any, b: Any) -> bool:
    """Equal as run ids see it: numbers by value (``10`` and ``10.0``), booleans apart
    from numbers, lists and mappings item by item."""
    ta, tb = type(a), type(b)
    if ta in (int, float) and tb in (int, float):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if ta is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _ordered(op: str, bound: Any) -> Callable[[Any], bool]:
    import operator

    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
    if _is_number(bound):

        def numeric(value: Any) -> bool:
            return type(value) in (int, float) and compare(value, bound)

        return numeric

    def textual(value: Any) -> bool:
        return type(value) is str and compare(value, bound)

    return textual


class Condition(NamedTuple):
    """One parsed ``--where`` condition; ``test(record)`` judges a record or summary."""

    text: str  # as given
    key: str  # dotted, segments stripped
    op: str  # one of = != < <= > >= ~
    value: Any  # the parsed value (the pattern text for ~)
    test: Callable[[Readable], bool]

    def __call__(self, record: Readable) -> bool:
        return self.test(record)


def _predicate(parts: tuple[str, ...], op: str, value: Any) -> Callable[[Readable], bool]:
    get = _getter(parts)
    tags = parts == ("tags",)
    if op == "~":
        pattern = value

        def search(found: Any) -> bool:
            if type(found) is str:
                return pattern.search(found) is not None
            if type(found) is list:
                return any(type(i) is str and pattern.search(i) is not None for i in found)
            return False

        return lambda record: search(get(record))
    if tags and op in ("=", "!="):
        want = op == "="

        def member(record: Readable) -> bool:
            found = get(record)
            if type(found) is not list:
                return not want if found is MISSING else False
            return any(same(i, value) for i in found) is want

        return member
    if op == "=":
        if type(value) in (int, float, str) or value is None:
            plain = value
            numeric = _is_number(value)

            def equal(record: Readable) -> bool:
                found = get(record)
                if numeric:
                    return type(found) in (int, float) and found == plain
                return type(found) is type(plain) and found == plain

            return equal
        return lambda record: (found := get(record)) is not MISSING and same(found, value)
    if op == "!=":
        return lambda record: (found := get(record)) is not MISSING and not same(found, value)
    if len(parts) == 2 and parts[0] in _COLUMNS and _is_number(value):
        return _numeric_leaf(parts[0], parts[1], op, value)
    check = _ordered(op, value)
    return lambda record: check(get(record))


def _numeric_leaf(section: str, name: str, op: str, bound: float) -> Callable[[Readable], bool]:
    """``results.X < number`` and the like in one function: the common condition,
    judged over 100,000 index entries (:meth:`Entry.leaf` reads just that value)."""
    import operator

    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def test(record: Readable) -> bool:
        if type(record) is Entry:
            found = record.leaf(section, name, MISSING)
        else:
            node = record.get(section)
            found = node.get(name, MISSING) if type(node) is dict else MISSING
        return type(found) in (int, float) and compare(found, bound)

    return test


def parse_condition(text: str, option: str = "--where") -> Condition:
    """``KEY OP VALUE`` -> a :class:`Condition`; a :class:`UsageError` (exit 2, one
    line naming the grammar) when it is not one."""
    _check_text(text, option)
    start = next((i for i, char in enumerate(text) if char in _OP_CHARS), -1)
    if start < 0:
        raise _refuse(option, text, "no operator")
    end = start
    while end < len(text) and text[end] in _OP_CHARS and text[start:end] != "~":
        end += 1
    given = text[start:end]  # every operator character in a row (a regex may start with one)
    if given not in OPERATORS:
        raise _refuse(option, text, f"unknown operator '{given}'")
    op = "=" if given == "==" else given
    parts = _split_key(text[:start], option, text)
    raw = text[end:]
    if op == "~":
        try:
            value: Any = re.compile(raw)
        except re.error as exc:
            raise _refuse(option, text, f"not a regular expression ({exc})") from None
        shown = raw
    else:
        value = _value(raw)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if op not in ("=", "!=") and not (_is_number(value) or isinstance(value, str)):
            raise _refuse(option, text, f"'{op}' needs a number or a text to compare with")
        shown = value
    return Condition(text, ".".join(parts), op, shown, _predicate(parts, op, value))


def parse_where(items: Iterable[str], option: str = "--where") -> list[Condition]:
    """Every condition of a repeated ``--where`` (all must hold)."""
    return [parse_condition(item, option) for item in items]


def matches(record: Readable, conditions: Sequence[Condition]) -> bool:
    """Whether ``record`` (or its summary) meets every condition."""
    for condition in conditions:
        if not condition.test(record):
            return False
    return True


def needs_record(keys: Iterable[str]) -> bool:
    """Whether judging ``keys`` needs the full record (a summary leaves them out)."""
    return any(key.split(".")[0].strip() in _FULL_ONLY for key in keys)


# --- sorting and limiting ------------------------------------------------------


class SortKey(NamedTuple):
    """One ``--sort`` key: ``KEY`` ascending, ``-KEY`` descending."""

    key: str
    descending: bool
    get: Callable[[Readable], Any]


def parse_sort(items: Iterable[str], option: str = "--sort") -> list[SortKey]:
    out = []
    for item in items:
        _check_text(item, option)
        descending = item.startswith("-")
        key = item[1:] if descending else item
        if not key.strip():
            raise UsageError(
                f"{option} '{item}': give a key (KEY ascending, -KEY descending; see {DOCS})"
            )
        parts = _split_key(key, option, item)
        out.append(SortKey(".".join(parts), descending, _getter(parts)))
    return out


def parse_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 0:
        raise UsageError(f"--limit {limit}: give a number of runs, 0 or more")
    return limit


def order_key(value: Any) -> tuple[int, Any]:
    """Numbers by value (booleans as 0/1), then texts, then lists item by item, then
    the rest by their JSON text."""
    kind = type(value)
    if kind is int or kind is float:
        return (0, value)
    if kind is bool:
        return (0, int(value))
    if kind is str:
        return (1, value)
    if kind is list:
        return (2, tuple(order_key(item) for item in value))
    import json

    return (3, json.dumps(value, sort_keys=True, default=repr))


def sort_records(
    items: Sequence[Any],
    keys: Sequence[SortKey],
    record: Callable[[Any], Readable] | None = None,
    limit: int | None = None,
) -> list[Any]:
    """``items`` sorted by ``keys`` (the first is the primary key), each judged on
    ``record(item)`` (default: the item itself); runs without a key (or with null)
    come last either way.  The sort is stable: ties keep their order.  With
    ``limit``, only the first ``limit`` are returned (and, for one key, only they
    are put in order)."""
    out = list(items)
    if not keys:
        return out[:limit] if limit is not None else out
    records = out if record is None else [record(item) for item in out]
    order = list(range(len(out)))
    for depth, spec in enumerate(reversed(keys)):
        values = [spec.get(r) for r in records]
        present = [i for i in order if values[i] is not MISSING and values[i] is not None]
        absent = [i for i in order if values[i] is MISSING or values[i] is None]
        if all(type(values[i]) in (int, float) for i in present):
            key: Callable[[int], Any] = values.__getitem__  # numbers: no order_key needed
        else:
            key = [order_key(v) for v in values].__getitem__
        last = depth == len(keys) - 1
        if last and limit is not None and limit < len(present):
            import heapq  # (nsmallest/nlargest are stable, like sorted(...)[:limit])

            pick = heapq.nlargest if spec.descending else heapq.nsmallest
            order = pick(limit, present, key=key)
        else:
            present.sort(key=key, reverse=spec.descending)
            order = present + absent
    chosen = order if limit is None else order[:limit]
    return [out[i] for i in chosen]
