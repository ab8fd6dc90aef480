"""molexp.core.model.values: the one rule set for values (SPEC §7)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.model.values import (
    deep_merge,
    parse_assignment,
    parse_grid,
    parse_value,
    set_dotted,
    split_top_level,
)
from molexp.errors import ConfigError, UsageError
from tests.conftest import ROOT


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


# --- parse_value ------------------------------------------------------------------

PARSE_CASES: list[tuple[str, Any]] = [
    # ints (YAML 1.2 core)
    ("10", 10),
    ("-7", -7),
    ("+1", 1),
    ("0", 0),
    ("010", 10),
    ("007", 7),
    ("0x1f", 31),
    ("0x1F", 31),
    ("0o17", 15),
    ("123456789012345678901234567890", 123456789012345678901234567890),
    # floats
    ("1e-3", 0.001),
    ("1E3", 1000.0),
    ("1.0e+20", 1e20),
    ("1.5", 1.5),
    ("1.", 1.0),
    (".5", 0.5),
    ("-2.5e-2", -0.025),
    (".inf", math.inf),
    (".Inf", math.inf),
    ("+.INF", math.inf),
    ("-.inf", -math.inf),
    # booleans
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    # null
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("~", None),
    ("", None),
    ("   ", None),
    # YAML 1.1 words that stay strings in 1.2
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("Yes", "Yes"),
    ("OFF", "OFF"),
    ("tRUE", "tRUE"),
    ("nULL", "nULL"),
    # 1.1-only numbers and dates stay strings
    ("1_000", "1_000"),
    ("0b101", "0b101"),
    ("-0x1f", "-0x1f"),
    ("1:20", "1:20"),
    ("190:20:30", "190:20:30"),
    ("2026-01-01", "2026-01-01"),
    ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
    ("2026-01-01 10:00:00", "2026-01-01 10:00:00"),
    (".NaN.", ".NaN."),
    ("1e", "1e"),
    ("e3", "e3"),
    ("infinity", "infinity"),
    ("nan", "nan"),
    # plain strings
    ("qm9", "qm9"),
    ("hello world", "hello world"),
    ("it's", "it's"),
    ("a,b", "a,b"),
    ("path/to/file.xyz", "path/to/file.xyz"),
    ("http://example.com/a?b=c", "http://example.com/a?b=c"),
    ("=", "="),
    ("a=b", "a=b"),
    ("<<", "<<"),
    ("naïve ∂", "naïve ∂"),
    # quotes force a string
    ('"10"', "10"),
    ("'10'", "10"),
    ("'true'", "true"),
    ('"null"', "null"),
    ("''", ""),
    ('"a\\tb"', "a\tb"),
    ("'it''s'", "it's"),
    # surrounding whitespace is not part of the value
    ("  10  ", 10),
    (" qm9 ", "qm9"),
    # flow collections, recursively with the same rules
    ("[1, 2]", [1, 2]),
    ("[]", []),
    ("{}", {}),
    ("{a: 1}", {"a": 1}),
    ("[yes, 010, 1e-3, ~, '3', 2026-01-01]", ["yes", 10, 0.001, None, "3", "2026-01-01"]),
    (
        "{lr: 1e-3, layers: [64, 64], opt: {name: adam}}",
        {
            "lr": 0.001,
            "layers": [64, 64],
            "opt": {"name": "adam"},
        },
    ),
    ('{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
    ("[[64], [64, 64]]", [[64], [64, 64]]),
    ("[&x 1, *x]", [1, 1]),
    # explicit core tags are honoured
    ("!!str 10", "10"),
    ("!!int 10", 10),
    ("!!float 1", 1.0),
    # not exactly one scalar or flow collection: the text itself
    ("run #3", "run #3"),
    ("1 # comment", "1 # comment"),
    ("a: 1", "a: 1"),
    ("- 1", "- 1"),
    ("---", "---"),
    ("--- 1", "--- 1"),
    ("...", "..."),
    ("1\n---\n2", "1\n---\n2"),
    ("a: 1\nb: 2", "a: 1\nb: 2"),
    ("first\nsecond", "first\nsecond"),
    ("%YAML 1.2", "%YAML 1.2"),
    ("[1, 2", "[1, 2"),
    ("{a: 1", "{a: 1"),
    ("[1, 2]]", "[1, 2]]"),
    ("'unterminated", "'unterminated"),
    ("@handle", "@handle"),
    ("`cmd`", "`cmd`"),
    ("*undefined", "*undefined"),
    ("{a: 1, a: 2}", "{a: 1, a: 2}"),
    ("&a [*a]", "&a [*a]"),
    ("{[1]: 2}", "{[1]: 2}"),
    # no constructors beyond JSON-like types
    ("!!binary aGk=", "!!binary aGk="),
    ("!!timestamp 2026-01-01", "!!timestamp 2026-01-01"),
    ("!!set {a}", "!!set {a}"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!!int abc", "!!int abc"),
    ("!custom 1", "!custom 1"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_value(text: str, expected: Any) -> None:
    assert same(parse_value(text), expected)


def test_an_alias_bomb_on_the_command_line_is_refused() -> None:
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)
    ]
    with pytest.raises(UsageError, match=r"refused: its aliases expand .* alias bomb"):
        parse_value("[" + ", ".join(levels) + "]")


def _docs_value_table() -> list[tuple[str, str]]:
    """The rows of the value table in docs/profiles.md: (given, repr of the value)."""
    doc = ROOT / "docs" / "profiles.md"
    text = doc.read_text(encoding="utf-8")
    table = text.split("test_values.py reads this table", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in table.splitlines()[2:]:
        given, value = (cell.strip() for cell in line.strip("|").split("|")[:2])
        given = "" if given == "*(empty)*" else re.fullmatch(r"`(.*)`", given)[1]  # type: ignore[index]
        rows.append((given, re.fullmatch(r"`(.*)`", value)[1]))  # type: ignore[index]
    return rows


DOCS_VALUE_TABLE = _docs_value_table()


def test_docs_value_table_is_not_empty() -> None:
    assert len(DOCS_VALUE_TABLE) > 20


@pytest.mark.parametrize(("text", "expected_repr"), DOCS_VALUE_TABLE)
def test_docs_value_table_matches_parse_value(text: str, expected_repr: str) -> None:
    assert repr(parse_value(text)) == expected_repr


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_parse_value_nan(text: str) -> None:
    value = parse_value(text)
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize(
    "text", ["a\x00b", "\x00", "x\x07", "\x1b[31mred", "del\x7f", "c1\x85", "bad\udcff"]
)
def test_parse_value_refuses_control_characters(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_value(text)
    message = str(info.value)
    assert "\n" not in message
    assert "control character" in message or "UTF-8" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\tb", "a\tb"), ("tab\t", "tab"), ("two\nlines", "two\nlines"), ("crlf\r\n", "crlf")],
)
def test_parse_value_allows_tabs_and_line_breaks(text: str, expected: str) -> None:
    assert parse_value(text) == expected


_printable = st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n\r")
_yamlish = st.text(
    alphabet=st.sampled_from(list("[]{},:'\"#&*!|>-?%@`~ \t\n.0123456789eExoabnutrlyN=<\\")),
    max_size=30,
)


@settings(max_examples=500)
@given(st.text(alphabet=_printable) | _yamlish)
def test_parse_value_never_fails_on_printable_text(text: str) -> None:
    value = parse_value(text)
    json.dumps(value)  # always plain data: no dates, bytes, sets, cycles


_no_controls = st.characters(exclude_categories=("Cc", "Cs"))
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=_no_controls)
)
_json_data = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=_no_controls, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_json_data)
def test_json_text_parses_to_itself(data: Any) -> None:
    """JSON is a subset of YAML 1.2: a JSON value given on the command line is itself."""
    assert same(parse_value(json.dumps(data, ensure_ascii=False)), data)


# --- split_top_level ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,3", ["1", "2", "3"]),
        ("[1,2],[3,4]", ["[1,2]", "[3,4]"]),
        ("{a: 1, b: 2},{c: [3, 4]}", ["{a: 1, b: 2}", "{c: [3, 4]}"]),
        ("'a,b',c", ["'a,b'", "c"]),
        ('"a,b",c', ['"a,b"', "c"]),
        ('"say \\"hi, there\\"",x', ['"say \\"hi, there\\""', "x"]),
        ("'it''s, ok',x", ["'it''s, ok'", "x"]),
        ("it's,a,b", ["it's", "a", "b"]),
        ("[a, 'b]', c],d", ["[a, 'b]', c]", "d"]),
        ("1, 2", ["1", " 2"]),
        ("", [""]),
        ("a,", ["a", ""]),
        ("[1,2", ["[1,2"]),
        ("]],a", ["]]", "a"]),
    ],
)
def test_split_top_level(text: str, expected: list[str]) -> None:
    assert split_top_level(text) == expected


def test_split_top_level_other_separator() -> None:
    assert split_top_level("a;[b;c];d", ";") == ["a", "[b;c]", "d"]


@given(st.text())
def test_split_top_level_is_lossless(text: str) -> None:
    assert ",".join(split_top_level(text)) == text


# --- parse_assignment / parse_grid ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", 3)),
        ("lr=1e-3", ("lr", 0.001)),
        ("name=qm9", ("name", "qm9")),
        ("flag=yes", ("flag", "yes")),
        ("x=", ("x", None)),
        ("expr=a=b", ("expr", "a=b")),
        ("optimizer.lr=0.01", ("optimizer.lr", 0.01)),
        (" a . b =[1, 2]", ("a.b", [1, 2])),
        ("dims=[1,2]", ("dims", [1, 2])),
        ("k='010'", ("k", "010")),
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, Any]) -> None:
    assert same(parse_assignment(text), expected)


@pytest.mark.parametrize(
    ("text", "what", "message"),
    [
        ("epochs", "--override", "--override 'epochs': expected KEY=VALUE"),
        ("=3", "--param", "--param '=3': empty key; expected KEY=VALUE"),
        ("  =3", "--param", "--param '  =3': empty key"),
        ("a..b=1", "--param", "--param 'a..b=1': empty segment in key 'a..b'"),
        (".a=1", "--override", "--override '.a=1': empty segment"),
        ("a.=1", "--param", "--param 'a.=1': empty segment in key 'a.'"),
        ("a=\x00", "--param", "--param 'a=\\x00': contains control character U+0000"),
    ],
)
def test_parse_assignment_errors(text: str, what: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_assignment(text, what)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=1e-3,1e-4", ("lr", [0.001, 0.0001])),
        ("lr=1e-3, 1e-4", ("lr", [0.001, 0.0001])),
        ("seed=1", ("seed", [1])),
        ("dims=[1,2],[3,4]", ("dims", [[1, 2], [3, 4]])),
        ("layers=[64],[64,64]", ("layers", [[64], [64, 64]])),
        ("layers=[[64],[64,64]]", ("layers", [[64], [64, 64]])),
        ("layers=[[64,64]]", ("layers", [[64, 64]])),
        ("lr=[1e-3, 1e-4]", ("lr", [0.001, 0.0001])),
        ("lr= [1e-3] ", ("lr", [0.001])),
        ("dims=[1,2],[3,4],[]", ("dims", [[1, 2], [3, 4], []])),
        ("s='[1,2]'", ("s", ["[1,2]"])),
        ("s=[1,2", ("s", ["[1,2"])),
        ("opt={name: adam, lr: 1},{name: sgd}", ("opt", [{"name": "adam", "lr": 1}, {"name": "sgd"}])),
        ("mode=on,off,'yes'", ("mode", ["on", "off", "yes"])),
        ("x=null,~,1", ("x", [None, None, 1])),
        ("name='a,b',c", ("name", ["a,b", "c"])),
        ("model.depth=2,4", ("model.depth", [2, 4])),
    ],
)  # fmt: skip
def test_parse_grid(text: str, expected: tuple[str, list[Any]]) -> None:
    assert same(parse_grid(text), expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr", "--grid 'lr': expected KEY=V1,V2,..."),
        ("lr=", "--grid 'lr=': no values"),
        ("lr=  ", "--grid 'lr=  ': no values"),
        ("lr=1,,2", "--grid 'lr=1,,2': value 2 is empty; write null"),
        ("lr=1,", "--grid 'lr=1,': value 2 is empty"),
        ("=1,2", "--grid '=1,2': empty key"),
        ("a..b=1", "--grid 'a..b=1': empty segment"),
        ("x=[]", "--grid 'x=[]': the value list [] is empty"),
    ],
)
def test_parse_grid_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_grid(text)
    assert str(info.value).startswith(message)


# --- set_dotted / deep_merge ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "key", "value", "expected"),
    [
        ({}, "a", 1, {"a": 1}),
        ({}, "a.b.c", 1, {"a": {"b": {"c": 1}}}),
        ({"a": {"x": 1}}, "a.b", 2, {"a": {"x": 1, "b": 2}}),
        ({"a": {"b": {"c": 1}}}, "a.b", 5, {"a": {"b": 5}}),
        ({"a": 1}, "a", {"n": 1}, {"a": {"n": 1}}),
        ({"a": None}, "a.b", 1, {"a": {"b": 1}}),  # null counts as an empty mapping
        ({"a": {"b": 1}}, " a . c ", 2, {"a": {"b": 1, "c": 2}}),
    ],
)
def test_set_dotted(start: dict[str, Any], key: str, value: Any, expected: dict[str, Any]) -> None:
    set_dotted(start, key, value)
    assert start == expected


@pytest.mark.parametrize(
    ("start", "key", "fragment"),
    [
        ({"optimizer": {"lr": 0.001}}, "optimizer.lr.x", "'optimizer.lr' is a float (0.001)"),
        ({"epochs": 3}, "epochs.max", "'epochs' is an integer (3), not a mapping"),
        ({"a": [1]}, "a.b.c", "'a' is a list"),
        ({"a": {"b": "s"}}, "a.b.c", "'a.b' is a string ('s')"),
        ({}, "a..b", "empty segment"),
    ],
)
def test_set_dotted_below_a_non_mapping_is_an_error(
    start: dict[str, Any], key: str, fragment: str
) -> None:
    before = json.dumps(start)
    with pytest.raises(ConfigError) as info:
        set_dotted(start, key, 1)
    assert str(info.value).startswith(f"--override '{key}': ")
    assert fragment in str(info.value)
    assert json.dumps(start) == before


@pytest.mark.parametrize(
    ("base", "over", "expected"),
    [
        ({}, {}, {}),
        ({"a": 1}, {}, {"a": 1}),
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1, "b": 2}, {"b": 3}, {"a": 1, "b": 3}),
        ({"o": {"lr": 1, "m": 2}}, {"o": {"lr": 3}}, {"o": {"lr": 3, "m": 2}}),
        ({"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),
        ({"o": {"x": 1}}, {"o": 5}, {"o": 5}),
        ({"o": 5}, {"o": {"x": 1}}, {"o": {"x": 1}}),
        ({"o": {"x": 1}}, {"o": None}, {"o": None}),
        (
            {"a": {"b": {"c": 1, "d": 2}}},
            {"a": {"b": {"d": 3, "e": 4}}},
            {"a": {"b": {"c": 1, "d": 3, "e": 4}}},
        ),
    ],
)
def test_deep_merge(base: dict[str, Any], over: dict[str, Any], expected: dict[str, Any]) -> None:
    before = (json.dumps(base), json.dumps(over))
    result = deep_merge(base, over)
    assert result == expected
    assert (json.dumps(base), json.dumps(over)) == before


def test_deep_merge_result_shares_nothing_mutable() -> None:
    base = {"a": {"l": [1]}, "b": [1]}
    over = {"c": {"d": [2]}}
    result = deep_merge(base, over)
    result["a"]["l"].append(9)
    result["b"].append(9)
    result["c"]["d"].append(9)
    assert base == {"a": {"l": [1]}, "b": [1]}
    assert over == {"c": {"d": [2]}}


# --- import cost and layering ------------------------------------------------------------


def test_importing_values_and_profiles_is_cheap() -> None:
    code = (
        "import sys, molexp.core.model.values, molexp.core.records.profiles\n"
        "heavy = {'yaml', 'typer', 'rich', 'click'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
