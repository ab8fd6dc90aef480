"""Run identity (SPEC §5): the shared vectors, and properties of canonical JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from molexp.core.model import identity
from molexp.errors import UsageError
from tests.conftest import ROOT, SHARED

VECTORS = json.loads((ROOT / "tests" / "data" / "run-id-vectors.json").read_text())["cases"]


def test_vectors_are_the_shared_ones() -> None:
    shared = SHARED / "run-id-vectors.json"
    if shared.exists():
        assert json.loads(shared.read_text())["cases"] == VECTORS


@pytest.mark.parametrize("case", VECTORS, ids=[c["run_id"] for c in VECTORS])
def test_vector(case: dict[str, Any]) -> None:
    assert identity.config_hash(case["config"]) == case["config_hash"]
    got = identity.run_id(
        case["experiment"],
        case["params"],
        case["replica"],
        case["seed"],
        case["profile"],
        case["config"],
    )
    assert got == case["run_id"]


def test_canonical_json_form() -> None:
    assert identity.canonical_json({"b": 1, "a": [1.0, (2, 3)], "é": "ü"}) == (
        '{"a":[1,[2,3]],"b":1,"é":"ü"}'.encode()
    )


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, -math.inf, {1: "x"}, {"a": object()}, {"s": {1, 2}}, b"bytes"]
)
def test_refuses_what_json_cannot_carry(bad: Any) -> None:
    with pytest.raises(UsageError):
        identity.canonical_json(bad, "params")


def test_error_names_the_parameter() -> None:
    with pytest.raises(UsageError, match=r"params\.lr"):
        identity.canonical_json({"lr": math.nan}, "params")


def test_large_integral_float_stays_float() -> None:
    assert identity.normalise(2.0**60) == 2.0**60
    assert isinstance(identity.normalise(2.0**60), float)
    assert identity.normalise(10.0) == 10 and isinstance(identity.normalise(10.0), int)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
param_dicts = st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=5)


def rid(params: dict[str, Any], replica: int = 0) -> str:
    return identity.run_id("p/e", params, replica, replica, None, {})


@given(param_dicts)
def test_key_order_does_not_matter(params: dict[str, Any]) -> None:
    assert rid(params) == rid(dict(reversed(list(params.items()))))


@given(st.integers(min_value=-(2**52), max_value=2**52))
def test_int_and_integral_float_are_the_same_run(n: int) -> None:
    assert rid({"x": n}) == rid({"x": float(n)})


def test_true_and_one_are_different_runs() -> None:
    assert rid({"x": True}) != rid({"x": 1})
    assert rid({"x": False}) != rid({"x": 0})
    assert rid({"x": None}) != rid({"x": "null"})


@given(param_dicts)
def test_ids_survive_a_json_round_trip(params: dict[str, Any]) -> None:
    assert rid(json.loads(json.dumps(params))) == rid(params)


@given(param_dicts)
def test_ids_survive_a_yaml_round_trip(params: dict[str, Any]) -> None:
    from molexp.core.model.yaml12 import dump_yaml, load_yaml

    text = dump_yaml({"params": params})
    assert rid(load_yaml(text, "t")["params"]) == rid(params)
    assert rid(yaml.safe_load(text)["params"]) == rid(params)


def test_random_ids_are_fresh_and_well_formed() -> None:
    ids = {identity.random_run_id() for _ in range(100)}
    assert len(ids) == 100 and all(identity.is_run_id(i) for i in ids)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.lists(inner, max_size=2).map(tuple)
            | st.dictionaries(st.text(max_size=2) | st.integers(0, 2), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_the_quick_walk_gives_what_the_definition_gives(value: Any) -> None:
    """``normalise`` walks plain values without naming paths; the result, or the
    refusal and its message, is the one the definition (``_named``) gives."""
    try:
        expected: Any = ("ok", identity._named(value, "params"))
    except UsageError as exc:
        expected = ("refused", str(exc))
    try:
        got: Any = ("ok", identity.normalise(value, "params"))
    except UsageError as exc:
        got = ("refused", str(exc))
    assert repr(got) == repr(expected)  # (repr: 1 and 1.0, nan, lists and tuples differ)
