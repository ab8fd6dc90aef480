"""molexp.core.model.values: the one rule set for values (SPEC §7)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.model.yaml12 import ALIAS_BUDGET, ALIAS_RATIO, dump_yaml, load_yaml
from molexp.errors import UsageError


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


# --- load_yaml ----------------------------------------------------------------


def test_load_yaml_uses_the_same_rules_as_parse_value() -> None:
    text = """\
int: 010
hex: 0x10
octal: 0o10
float: 1e-3
big: 1.0e+20
inf: -.inf
word: yes
switch: on
flag: True
none: ~
empty:
date: 2026-01-01
time: 1:20
under: 1_000
quoted: '010'
list: [1, yes, null]
nested:
  a: {b: [1, 2]}
"""
    assert same(
        load_yaml(text, "t.yaml"),
        {
            "int": 10,
            "hex": 16,
            "octal": 8,
            "float": 0.001,
            "big": 1e20,
            "inf": -math.inf,
            "word": "yes",
            "switch": "on",
            "flag": True,
            "none": None,
            "empty": None,
            "date": "2026-01-01",
            "time": "1:20",
            "under": "1_000",
            "quoted": "010",
            "list": [1, "yes", None],
            "nested": {"a": {"b": [1, 2]}},
        },
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("# only a comment\n", None),
        ("--- 3\n", 3),
        ("\ufeffa: 1\n", {"a": 1}),
        (
            "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
            {
                "base": {"x": 1, "y": 2},
                "derived": {"x": 1, "y": 3},
            },
        ),
    ],
)
def test_load_yaml_documents(text: str, expected: Any) -> None:
    assert same(load_yaml(text, "t.yaml"), expected)


def test_load_yaml_accepts_utf8_bytes() -> None:
    assert load_yaml("name: naïve\n".encode(), "t.yaml") == {"name": "naïve"}


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a: 1\nb: 2\nc: d: e\n", ["molcfg.yaml: malformed YAML at line 3", "mapping values"]),
        ("a: [1, 2\nb: 3\n", ["molcfg.yaml: malformed YAML at line"]),
        ("a: 1\na: 2\n", ["line 2", "duplicate key 'a'", "first at line 1"]),
        ("x:\n  k: 1\n  k: 2\n", ["line 3", "duplicate key 'k'"]),
        ("a: 1\n---\nb: 2\n", ["line 2", "single document"]),
        ("a: !!binary aGk=\n", ["line 1", "binary"]),
        ("a: !!timestamp 2026-01-01\n", ["line 1"]),
        ("a: !!python/object:os.system {}\n", ["line 1"]),
        ("a: *nowhere\n", ["line 1", "nowhere"]),
        ("a: 1\nb: \x00\n", ["line 2", "U+0000"]),
        ("a: &x [*x]\n", ["refers to itself"]),
        ("\tkey: 1\n", ["line 1"]),
    ],
)
def test_load_yaml_errors_name_source_and_line(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        load_yaml(text, "molcfg.yaml")
    message = str(info.value)
    assert message.startswith("molcfg.yaml: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_load_yaml_refuses_non_utf8_bytes() -> None:
    with pytest.raises(UsageError, match=r"^x\.yaml: not valid UTF-8 at line 2 \(byte 0xff\)"):
        load_yaml(b"a: 1\nb: \xff\n", "x.yaml")


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` levels of ``width`` aliases each: ``width ** levels`` leaves."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 7, 9])
def test_an_alias_bomb_is_refused_at_once(levels: int) -> None:
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        load_yaml(alias_bomb(levels), "molcfg.yaml")
    assert time.monotonic() - started < 1.0
    message = str(info.value)
    assert (
        message.startswith("molcfg.yaml: refused: its aliases expand") and "alias bomb" in message
    )
    assert "\n" not in message


def test_aliases_and_merge_keys_within_the_budget_are_fine() -> None:
    assert load_yaml(alias_bomb(4), "t.yaml")["a3"][0][0][0] == ["x"] * 9  # 9**4 leaves
    text = "base: &b {lr: 1, opt: adam}\n" + "".join(
        f"p{i}: {{<<: *b, seed: {i}}}\n" for i in range(2000)
    )
    data = load_yaml(text, "t.yaml")
    assert data["p1999"] == {"lr": 1, "opt": "adam", "seed": 1999}


def test_a_large_document_without_aliases_is_never_counted_as_a_bomb() -> None:
    text = "".join(f"k{i}: [{i}, {i}, {i}]\n" for i in range(60_000))  # 300k nodes
    assert len(load_yaml(text, "t.yaml")) == 60_000


def test_the_budget_grows_with_the_document() -> None:
    # 20,000 aliases of a 9-element list add 200,000 nodes to a ~20,000-node file:
    # over the absolute budget, within ten times the document.
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [" + ", ".join(["*a"] * 20_000) + "]\n"
    assert len(load_yaml(text, "t.yaml")["b"]) == 20_000
    assert ALIAS_RATIO * 20_000 > ALIAS_BUDGET


# --- dump_yaml --------------------------------------------------------------------

MUST_STAY_STRINGS = [
    "on", "off", "On", "OFF", "yes", "no", "Yes", "NO", "y", "n", "Y", "N",
    "true", "True", "false", "FALSE", "null", "Null", "NULL", "~", "",
    "1e3", "1E3", "1.0e3", "1e-3", "-1e+3", "0x10", "0o17", "010", "0b101", "1_000",
    "+1", "-1", "1.", ".5", ".inf", "-.Inf", ".nan", ".NaN",
    "2026-01-01", "2026-01-01T10:00:00Z", "2026-01-01 10:00:00.5 +01:00",
    "1:20", "190:20:30", "-1:20", "1:20.5", "<<", "=",
    " leading", "trailing ", "a: b", "- a", "#hash", "a #b", "[1]", "{a: 1}",
    "'quoted'", '"dq"', "two\nlines", "trailing\n", "\ttab", "nul\x00", "bell\x07",
    "nel\x85", "ls\u2028", "bom\ufeff", "é", "😀", "a" * 300, "x " * 100,
]  # fmt: skip


@pytest.mark.parametrize("text", MUST_STAY_STRINGS)
def test_dump_yaml_strings_read_back_as_strings(text: str) -> None:
    data = {"v": text, text: [text]}
    out = dump_yaml(data)
    assert same(yaml.safe_load(out), data)
    assert same(load_yaml(out, "t"), data)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, 1.5, 1e-3, 1e-5, 1.5e-7, 1e16, 1e20, 1.0e300, 5e-324, -2.5e-12,
     math.inf, -math.inf, 0.1 + 0.2],
)  # fmt: skip
def test_dump_yaml_floats_read_back_as_floats(value: float) -> None:
    out = dump_yaml({"x": value})
    assert same(yaml.safe_load(out), {"x": value})
    assert same(load_yaml(out, "t"), {"x": value})


def test_dump_yaml_nan() -> None:
    out = dump_yaml([math.nan])
    assert out == "- .nan\n"
    assert math.isnan(yaml.safe_load(out)[0]) and math.isnan(load_yaml(out, "t")[0])


def test_dump_yaml_is_block_style_in_insertion_order() -> None:
    data = {"z": 1, "a": {"y": [1, 2], "b": None}, "flag": True, "s": "on", "f": 1e-5}
    assert dump_yaml(data) == (
        "z: 1\na:\n  y:\n  - 1\n  - 2\n  b: null\nflag: true\ns: 'on'\nf: 1.0e-05\n"
    )


def test_dump_yaml_writes_unicode_as_is() -> None:
    assert dump_yaml({"name": "naïve ∂"}) == "name: naïve ∂\n"


_tricky_strings = st.sampled_from(MUST_STAY_STRINGS) | st.from_regex(
    r"[-+]?[0-9_.:eExXoO]{1,8}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", fullmatch=True
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | _tricky_strings
)
_keys = st.text(max_size=10) | _tricky_strings
_data = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400)
@given(_data)
def test_dump_yaml_round_trips_under_yaml_11_and_12(data: Any) -> None:
    out = dump_yaml(data)
    assert same(yaml.safe_load(out), data)
    assert same(load_yaml(out, "t"), data)


@given(_data.filter(lambda d: isinstance(d, (list, dict))))
def test_dump_yaml_output_is_block_style(data: Any) -> None:
    out = dump_yaml(data)
    if data:  # an empty collection can only be written as [] or {}
        assert not out.startswith(("[", "{"))
