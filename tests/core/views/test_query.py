"""molexp.core.views.query: the one grammar of --where, --sort and --limit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molexp.core.records.index_entry import summarise
from molexp.core.views.query import (
    GRAMMAR,
    MISSING,
    lookup,
    matches,
    needs_record,
    order_key,
    parse_condition,
    parse_limit,
    parse_sort,
    parse_where,
    same,
    sort_records,
)
from molexp.errors import UsageError


def rec(**over: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "0123456789abcdef",
        "project": "p",
        "experiment": "e",
        "identity": "derived",
        "params": {"T": 300, "model": {"depth": 2}, "name": "lj"},
        "replica": 1,
        "seed": 1,
        "profile": "smoke",
        "config": {"optimizer": {"lr": 0.001}, "steps": 100},
        "status": "succeeded",
        "created_at": "2026-11-25T16:03:17+00:00",
        "results": {"energy": -1.316, "converged": True, "label": "ok", "nested": {"a": 1}},
        "metrics": {"loss": 0.25, "train.acc": 0.9},
        "attempts": [{"n": 1, "host": "node1"}, {"n": 2, "host": "node7"}],
    }
    record.update(over)
    return record


def holds(text: str, record: dict[str, Any] | None = None) -> bool:
    return matches(rec() if record is None else record, [parse_condition(text)])


@pytest.mark.parametrize(
    "text, expected",
    [
        # each operator on a number
        ("results.energy<-1.3", True),
        ("results.energy<=-1.316", True),
        ("results.energy>-1.3", False),
        ("results.energy>=-1.316", True),
        ("results.energy=-1.316", True),
        ("results.energy==-1.316", True),
        ("results.energy!=-1.316", False),
        ("results.energy!=-1", True),
        # sections and dotted paths
        ("params.T=300", True),
        ("params.T=300.0", True),  # 300 and 300.0 are the same value
        ("params.model.depth>1", True),
        ("config.optimizer.lr<1e-2", True),
        ("config.steps=100", True),
        ("metrics.loss<0.3", True),
        ("metrics.train.acc>=0.9", True),  # a metric name with a dot in it
        ("results.nested.a=1", True),
        ("results.nested={a: 1}", True),
        # bare keys: the param, else config, else the result, else the metric, else the record
        ("T>=300", True),
        ("depth=2", False),  # (bare keys are paths from the top of each section)
        ("model.depth=2", True),
        ("steps=100", True),
        ("energy<0", True),
        ("loss<0.5", True),
        ("identity=derived", True),
        ("created_at>=2026-11", True),  # text against text
        # record fields
        ("status=succeeded", True),
        ("status!=failed", True),
        ("status~^succ", True),
        ("profile=smoke", True),
        ("replica=1", True),
        ("replica>0", True),
        ("seed<1", False),
        ("host=node7", True),  # the latest attempt's host
        ("host=node1", False),
        ("host~^node", True),
        ("id~^0123", True),
        # regex on text only
        ("name~^l", True),
        ("name~^x", False),
        ("T~300", False),  # a number is not text
        ("results.label~o.", True),
        # type mismatches and missing keys never match, never fail
        ("results.energy<abc", False),
        ("results.label>1", False),
        ("results.label=1", False),
        ("results.converged=1", False),  # true is not 1
        ("results.converged=true", True),
        ("results.converged!=false", True),
        ("results.converged>0", False),
        ("results.nope=1", False),
        ("results.nope!=1", False),  # a run without the key matches neither
        ("nope>1", False),
        ("metrics.nope<1", False),
        ("params.T.x=1", False),  # below a number
        ("attempt_count=2", False),  # a key of summaries, not of records
        # quoting: text that looks like a number
        ("params.name='lj'", True),
        ("params.T='300'", False),
    ],
)
def test_conditions(text: str, expected: bool) -> None:
    assert holds(text) is expected
    # A summary from the index answers the same as the record.
    if not needs_record([parse_condition(text).key]):
        assert matches(summarise(rec()), [parse_condition(text)]) is expected


def test_tags_are_a_set() -> None:
    tagged = rec(tags=["good", "md-long"])
    assert holds("tags=good", tagged)
    assert not holds("tags=bad", tagged)
    assert holds("tags!=bad", tagged)
    assert not holds("tags!=good", tagged)
    assert holds("tags~^md", tagged)
    assert not holds("tags~^x", tagged)
    untagged = rec()
    assert not holds("tags=good", untagged)
    assert holds("tags!=good", untagged)  # a run without tags has none
    assert holds("params.tags=1", rec(params={"tags": 1}))  # a param of that name


def test_all_conditions_must_hold() -> None:
    where = parse_where(["T=300", "results.energy<0"])
    assert matches(rec(), where)
    assert not matches(rec(), [*where, *parse_where(["replica=0"])])
    assert matches(rec(), [])


def test_null_and_lists() -> None:
    assert holds("results.x=null", rec(results={"x": None}))
    assert holds("results.x=", rec(results={"x": None}))
    assert not holds("results.x=null", rec(results={}))
    assert holds("layers=[64,64]", rec(params={"layers": [64, 64.0]}))
    assert not holds("layers=[64]", rec(params={"layers": [64, 64]}))
    assert holds("layers~x", rec(params={"layers": ["a", "xy"]}))  # any item that is text


def test_host_of_a_summary_and_of_a_run_without_attempts() -> None:
    assert lookup({"last_attempt": {"host": "n3"}}, "host") == "n3"
    assert lookup({"attempts": []}, "host") is MISSING
    assert lookup({}, "host") is MISSING


@pytest.mark.parametrize(
    "text, problem",
    [
        ("x>>1", "unknown operator '>>'"),
        ("x=>1", "unknown operator '=>'"),
        ("x<>1", "unknown operator '<>'"),
        ("x!1", "unknown operator '!'"),
        ("x!~a", "unknown operator '!~'"),
        ("x===1", "unknown operator '==='"),
        ("lr", "no operator"),
        ("=1", "empty key"),
        (" >1", "empty key"),
        ("a..b=1", "empty segment in key 'a..b'"),
        ("x~[", "not a regular expression"),
        ("x<", "'<' needs a number or a text"),
        ("x>[1]", "'>' needs a number or a text"),
        ("x>=true", "'>=' needs a number or a text"),
    ],
)
def test_bad_conditions_name_the_grammar_on_one_line(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_condition(text)
    message = str(caught.value)
    assert message.startswith(f"--where '{text}': {problem}")
    assert GRAMMAR in message and "docs/questions.md" in message
    assert "\n" not in message
    assert "expected KEY=VALUE" in message  # (what the old, equality-only grammar said)


def test_control_characters_are_refused() -> None:
    with pytest.raises(UsageError, match="control character U\\+0007"):
        parse_condition("lr=\x07")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        parse_condition("lr=\udcff")
    with pytest.raises(UsageError, match="control character"):
        parse_sort(["\x1b"])


def test_a_regex_is_taken_as_written() -> None:
    condition = parse_condition("name~=x|^l")
    assert condition.op == "~" and condition.value == "=x|^l"
    assert holds("name~=x|^l")


def test_condition_fields() -> None:
    condition = parse_condition(" params . T >= 1e3")
    assert (condition.key, condition.op, condition.value) == ("params.T", ">=", 1000)
    assert condition.text == " params . T >= 1e3"


def runs(*losses: Any) -> list[dict[str, Any]]:
    return [
        {"id": str(i), "metrics": {} if loss is MISSING else {"loss": loss}}
        for i, loss in enumerate(losses)
    ]


def test_sort_keys() -> None:
    items = runs(0.3, MISSING, 0.1, None, 0.2, 0.1)
    up = sort_records(items, parse_sort(["metrics.loss"]))
    assert [r["id"] for r in up] == ["2", "5", "4", "0", "1", "3"]  # stable; missing last
    down = sort_records(items, parse_sort(["-loss"]))
    assert [r["id"] for r in down] == ["0", "4", "2", "5", "1", "3"]
    both = sort_records(items, parse_sort(["loss", "-id"]))
    assert [r["id"] for r in both] == ["5", "2", "4", "0", "3", "1"]
    assert sort_records(items, []) == items
    wrapped = sort_records([(r,) for r in items], parse_sort(["loss"]), lambda t: t[0])
    assert wrapped[0][0]["id"] == "2"


def test_mixed_types_sort_numbers_then_text_then_lists() -> None:
    values = ["b", 2, [1], True, {"a": 1}, 1.5, "a", [0, 5]]
    assert sorted(values, key=order_key) == [True, 1.5, 2, "a", "b", [0, 5], [1], {"a": 1}]


@pytest.mark.parametrize(
    "item, problem", [("-", "give a key"), ("", "give a key"), ("a..b", "empty segment")]
)
def test_bad_sort_keys(item: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_sort([item])


def test_limit() -> None:
    assert parse_limit(None) is None and parse_limit(0) == 0
    with pytest.raises(UsageError, match="--limit -1"):
        parse_limit(-1)


def test_needs_record() -> None:
    assert needs_record(["attempts"]) and needs_record(["inputs.name"])
    assert not needs_record(["results.x", "host", "metrics.loss", "attempt_count"])


def test_same() -> None:
    assert same(1, 1.0) and same({"a": [1]}, {"a": [1.0]})
    assert not same(True, 1) and not same([1], [1, 2]) and not same({"a": 1}, {"b": 1})
    assert not same("1", 1)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.text("ab1", max_size=3)
)


@settings(max_examples=300, deadline=None)
@given(SCALARS, st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "~"]), st.text(max_size=8))
def test_any_value_and_condition_never_fail(value: Any, op: str, written: str) -> None:
    """A condition that parses judges any value without an error; one that does not
    parse is a UsageError, never anything else."""
    try:
        condition = parse_condition(f"results.x{op}{written}")
    except UsageError:
        return
    record = rec(results={"x": value})
    result = matches(record, [condition])
    assert isinstance(result, bool)
    if op == "!=" and condition.op == "!=":
        assert result is not matches(record, [parse_condition(f"results.x={written}")])


@settings(max_examples=1500, deadline=None)
@given(st.text(st.sampled_from(list("0123456789+-.eExyzAb_/:' \t[]{},~#nulTrfsa")), max_size=10))
def test_the_fast_value_path_agrees_with_the_value_rules(text: str) -> None:
    from molexp.core.model.values import parse_value
    from molexp.core.views.query import _value

    expected = parse_value(text)
    got = _value(text)
    assert type(got) is type(expected) and (got == expected or got != got), (text, got, expected)


@pytest.mark.parametrize(
    "text", ["1", "-12", "+3", "010", "1.5", "1e-3", ".5", "1.", "-1.3E+2", "succeeded",
             "md-long", "a.b/c", "True", "null", "yes", "0x1f", ".inf", "'1'", "a b"],
)  # fmt: skip
def test_the_fast_value_path_on_examples(text: str) -> None:
    from molexp.core.model.values import parse_value
    from molexp.core.views.query import _value

    assert repr(_value(text)) == repr(parse_value(text))


def test_sorting_with_a_limit_is_sorting_then_cutting() -> None:
    items = runs(0.3, MISSING, 0.1, None, 0.2, 0.1, 0.3, "x", [1])
    for spec in (["loss"], ["-loss"], ["loss", "-id"], ["-loss", "id"]):
        full = sort_records(items, parse_sort(spec))
        for limit in range(len(items) + 2):
            assert sort_records(items, parse_sort(spec), limit=limit) == full[:limit], (spec, limit)
    assert sort_records(items, [], limit=2) == items[:2]
