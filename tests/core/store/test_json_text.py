"""Records are written as indented JSON by :func:`store.indented`: the same text,
byte for byte, as ``json.dumps(indent=2, ensure_ascii=False)``, errors included."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.store import files as store

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: refused, or written as json writes them
    | st.text()  # any code point: control characters, quotes, backslashes, surrogates
)
keys = st.text() | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=40,
)


def reference(data: Any, allow_nan: bool) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan)


def outcome(call: Any) -> tuple[str, str]:
    try:
        return "ok", call()
    except (ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=600, deadline=None)
@given(values, st.booleans())
def test_the_text_is_json_dumps_indent_2_byte_for_byte(data: Any, allow_nan: bool) -> None:
    assert outcome(lambda: store.indented(data, allow_nan)) == outcome(
        lambda: reference(data, allow_nan)
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=8))
def test_a_record_is_its_dumps_json_bytes(record: dict[str, Any]) -> None:
    try:
        expected = (reference(record, False) + "\n").encode()
    except ValueError:
        with pytest.raises(ValueError):
            store.dumps_json(record)
        return
    assert store.dumps_json(record) == expected


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"a": Colour.RED, "b": [Colour.RED]},  # subclasses: left to json.dumps
        {"s": Text("x"), Text("k"): 1},
        OrderedDict([("z", 1), ("a", [])]),
        {"deep": [[[[{}]]]], "empty": {}, "list": [], "t": ()},
        {"x": 1e16, "y": -0.0, "z": 5e-324, "big": 10**40, "e": 'é\u2028\x00"\\'},
    ],
)
def test_subclasses_and_edge_values_read_as_json_dumps_writes_them(data: Any) -> None:
    assert store.indented(data) == reference(data, False)


def test_nan_is_refused_in_a_record_and_written_in_a_params_copy() -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        store.dumps_json({"loss": math.nan})
    assert (
        store.indented({"loss": [math.inf]}, allow_nan=True)
        == '{\n  "loss": [\n    Infinity\n  ]\n}'
    )


def test_a_cycle_is_refused_as_json_dumps_refuses_it() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        store.dumps_json(loop)


def test_what_json_cannot_encode_is_refused_the_same_way() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        store.dumps_json({"when": object()})
    with pytest.raises(TypeError, match="keys must be str"):
        store.dumps_json({("a",): 1})
