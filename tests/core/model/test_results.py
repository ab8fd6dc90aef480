"""Results as the record keeps them (molexp/core/model/results.py, SPEC §8)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molexp.core.model.results import normalise_results


class Scalar:
    """Quacks like a numpy scalar: only ``.item()``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> Any:
        return self.value


class Array:
    """Quacks like a numpy array: ``.tolist()`` (and an ``.item()`` that fails)."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def tolist(self) -> list[Any]:
        return self.rows

    def item(self) -> Any:
        raise ValueError("can only convert an array of size 1")


class Broken:
    def item(self) -> Any:
        raise RuntimeError("no")


def test_non_finite_numbers_are_kept_as_strings() -> None:
    clean, warnings = normalise_results(
        {"loss": math.nan, "up": math.inf, "down": -math.inf, "acc": 0.9, "n": [math.nan, 1]}
    )
    assert clean == {"loss": "NaN", "up": "Infinity", "down": "-Infinity", "acc": 0.9,
                     "n": ["NaN", 1]}  # fmt: skip
    assert warnings == []
    json.dumps(clean, allow_nan=False)  # storable as strict JSON


def test_objects_with_item_or_tolist_become_plain_values() -> None:
    clean, warnings = normalise_results(
        {
            "n": Scalar(3),
            "x": Scalar(math.nan),
            "m": Array([[1, 2], [3, Scalar(4.5)]]),
            "t": (1, "a"),
            "d": {"k": Scalar(True)},
        }  # fmt: skip
    )
    assert clean == {"n": 3, "x": "NaN", "m": [[1, 2], [3, 4.5]], "t": [1, "a"], "d": {"k": True}}
    assert warnings == []


def test_one_key_that_cannot_be_stored_never_loses_the_others() -> None:
    loop: list[Any] = []
    loop.append(loop)
    clean, warnings = normalise_results(
        {
            "ok": 1,
            "obj": object(),
            "bad_key": {1: 2},
            5: "x",
            "broken": Broken(),
            "loop": loop,
            "also": "kept",
        }  # fmt: skip
    )
    assert clean == {"ok": 1, "also": "kept"}
    assert warnings == [
        "result 'obj' not stored: a object is not a JSON value",
        "result 'bad_key' not stored: it holds the key 1, which is not a string",
        "result key 5 is not a string; not stored",
        "result 'broken' not stored: its .item() failed: no",
        "result 'loop' not stored: it is nested too deeply",
    ]


def test_finite_numbers_follow_the_record_s_rule() -> None:
    clean = normalise_results({"e": 1.0, "f": 0.5, "i": 1, "b": True, "big": 2.0**60})[0]
    assert clean == {"e": 1, "f": 0.5, "i": 1, "b": True, "big": 2.0**60}
    assert type(clean["e"]) is int and type(clean["big"]) is float


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_every_json_result_is_kept_and_storable(results: dict[str, Any]) -> None:
    clean, warnings = normalise_results(results)
    assert warnings == [] and list(clean) == list(results)
    text = json.dumps(clean, allow_nan=False)
    assert normalise_results(json.loads(text))[0] == clean  # a second pass changes nothing


def test_real_numpy_scalars_and_arrays() -> None:
    np = pytest.importorskip("numpy")
    clean, warnings = normalise_results(
        {
            "n": np.int64(3),
            "f": np.float32(0.5),
            "b": np.bool_(True),
            "s": np.str_("x"),
            "a": np.arange(4).reshape(2, 2),
            "nan": np.float64("nan"),
            "arr": np.array([np.inf, 1.0]),
            "zero_d": np.array(7),
        }  # fmt: skip
    )
    assert warnings == []
    assert clean == {"n": 3, "f": 0.5, "b": True, "s": "x", "a": [[0, 1], [2, 3]], "nan": "NaN",
                     "arr": ["Infinity", 1.0], "zero_d": 7}  # fmt: skip
    assert type(clean["n"]) is int and type(clean["s"]) is str
    json.dumps(clean, allow_nan=False)
