"""Results as the record keeps them (SPEC §8): what the command reports, made JSON.

One function, :func:`normalise_results`, used wherever results enter the
record: the lifecycle merging ``results.json`` and ``ctx.set_result``.  A
diverged run's ``NaN`` is a result too, so non-finite numbers are kept as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; numpy scalars and arrays
(anything with ``.tolist()`` or ``.item()``; numpy is never imported) become
plain numbers and lists.  Finite numbers follow the record's one rule (an
integral float is that integer, as in :func:`molexp.core.model.identity.normalise`).
A key whose value cannot be stored is left out and named in a warning; the other
keys are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_MAX_EXACT_INT = 2**53


class _Unstorable(Exception):
    pass


MAX_DEPTH = 100


def _value(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _Unstorable("it is nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return NON_FINITE[repr(float(value))]
        # as in every record (SPEC §5): an integral float is that integer, 10.0 -> 10
        return int(value) if value.is_integer() and abs(value) < _MAX_EXACT_INT else float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unstorable(f"it holds the key {key!r}, which is not a string")
            out[str(key)] = _value(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_value(item, depth + 1) for item in value]
    for method in ("tolist", "item"):  # numpy arrays and scalars, and their likes
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                plain = convert()
            except Exception as exc:  # a foreign object's method: any failure is its own
                raise _Unstorable(f"its .{method}() failed: {exc}") from None
            if plain is not value:
                return _value(plain, depth + 1)
    raise _Unstorable(f"a {type(value).__name__} is not a JSON value")


def normalise_results(results: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """``results`` as the record stores them, and a warning per key left out."""
    clean: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in results.items():
        if not isinstance(key, str):
            warnings.append(f"result key {key!r} is not a string; not stored")
            continue
        try:
            clean[str(key)] = _value(value)
        except _Unstorable as exc:
            warnings.append(f"result {key!r} not stored: {exc}")
        except RecursionError:
            warnings.append(f"result {key!r} not stored: it is nested too deeply")
    return clean, warnings
