"""Run identity (SPEC §5): the only place run ids and config hashes are made.

Ids are a stored, public format: every workspace on disk depends on them, and
``../shared/run-id-vectors.json`` pins them.  Do not change this file's output.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from molexp.errors import UsageError

IDENTITY_VERSION = 1
RUN_ID_LENGTH = 16
_MAX_EXACT_INT = 2**53


def normalise(value: Any, where: str = "value") -> Any:
    """Return ``value`` in canonical form; raise ``UsageError`` naming ``where``.

    Dict keys must be strings, tuples become lists, an integral float becomes an
    int (so ``10`` and ``10.0`` are the same run), non-finite floats and any type
    JSON cannot carry are refused.  ``True`` stays a bool (``true`` != ``1``).

    Plain JSON values (what records and YAML give) take a walk that names no path;
    anything else, or anything refused, takes :func:`_named`, the definition, which
    names where the problem is."""
    try:
        return _plain(value)
    except _NotPlain:
        return _named(value, where)


class _NotPlain(Exception):
    """A value :func:`_plain` leaves to :func:`_named`."""


def _plain(value: Any) -> Any:
    """:func:`_named` for exact dicts with text keys, lists, text, ints, bools, None
    and finite floats (no path is built: ~4x faster); raises :class:`_NotPlain`
    for anything else, including what :func:`_named` refuses."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            sub = type(item)
            out[key] = (
                item if sub is str or sub is int or sub is bool or item is None else _plain(item)
            )
        return out
    if kind is list:
        return [_plain(item) for item in value]
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        if value.is_integer() and abs(value) < _MAX_EXACT_INT:
            return int(value)
        return value
    raise _NotPlain


def _named(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{where}: {value!r} is not a finite number")
        if value.is_integer() and abs(value) < _MAX_EXACT_INT:
            return int(value)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{where}: key {key!r} is not a string")
            out[key] = _named(item, f"{where}.{key}" if where else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_named(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise UsageError(f"{where}: {type(value).__name__} values cannot be stored ({value!r})")


# One encoder (json.dumps with options builds a new one for every call).
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any, where: str = "value") -> bytes:
    """The canonical UTF-8 JSON encoding of ``value`` (SPEC §5)."""
    return _canonical(normalise(value, where)).encode("utf-8")


def xxh3_128_hex(data: bytes) -> str:
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(data))


def config_hash(config: Mapping[str, Any]) -> str:
    """32 hex characters identifying a merged config."""
    return xxh3_128_hex(canonical_json(config, "config"))


def run_key(
    experiment: str,
    params: Mapping[str, Any],
    replica: int,
    seed: int,
    profile: str | None,
    config_digest: str,
) -> dict[str, Any]:
    return {
        "v": IDENTITY_VERSION,
        "experiment": experiment,
        "params": normalise(params, "params"),
        "replica": replica,
        "seed": seed,
        "profile": profile,
        "config_hash": config_digest,
    }


class Derived(NamedTuple):
    """A derived run's id and the hash of the config that went into it."""

    run_id: str
    config_hash: str


def derive(
    experiment: str,
    params: Mapping[str, Any],
    replica: int,
    seed: int,
    profile: str | None,
    config: Mapping[str, Any],
) -> Derived:
    """The id formula of SPEC §5, the only one: planning and record validation call it."""
    digest = config_hash(config)
    key = run_key(experiment, params, replica, seed, profile, digest)
    return Derived(xxh3_128_hex(canonical_json(key))[:RUN_ID_LENGTH], digest)


def run_id(
    experiment: str,
    params: Mapping[str, Any],
    replica: int,
    seed: int,
    profile: str | None,
    config: Mapping[str, Any],
) -> str:
    """The deterministic id of the run ``experiment`` (``project/name``) would get."""
    return derive(experiment, params, replica, seed, profile, config).run_id


def random_run_id() -> str:
    """A fresh id for a run created directly from Python (``identity: random``)."""
    return os.urandom(RUN_ID_LENGTH // 2).hex()


def is_run_id(text: str) -> bool:
    return len(text) == RUN_ID_LENGTH and all(c in "0123456789abcdef" for c in text)
