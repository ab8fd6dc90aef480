"""Placeholders and their quoting (molexp/core/execution/placeholders.py, SPEC §9).

Every quoting test runs the filled-in command through a real /bin/sh in an empty
directory and checks that the command received exactly the value and that
nothing the value says was executed (no file appeared).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molexp.core.execution.placeholders import build_argv, parse, render, values_for
from molexp.errors import UsageError

# A value holding each character the shell gives a meaning to, alone and as code.
DANGEROUS = [
    "$(touch pwned)", "`touch pwned`", "$(touch pwned", ")", "(", "\\", '"', "'",
    ";touch pwned", "&touch pwned", "|touch pwned", "<pwned", ">pwned", "\ntouch pwned\n",
    "a'b\"c\\d$e`f", "'; touch pwned; '", '"; touch pwned; "', "\\'", '\\"', "$HOME",
    "${HOME}", "!!", "*", "~", "#", "", " ", "--x", "$", "a\\", "'\\''", "\\\n",
]  # fmt: skip

# Templates printing {x} whole, and what the shell prints for a value v.
CONTEXTS = {
    "bare": ("printf %s {x}", "{}"),
    "single": ("printf %s '{x}'", "{}"),
    "double": ('printf %s "{x}"', "{}"),
    "word": ("printf %s pre{x}post", "pre{}post"),
    "mixed": ("printf %s 'a'{x}\"b\"", "a{}b"),
    "double after a literal backslash": ('printf %s "\\{x}"', "\\{}"),
    "inside $(...)": ('printf %s "$(printf %s {x})"', "{}"),
    "double inside $(...)": ('printf %s "$(printf %s "{x}")"', "{}"),
    "assignment": ('X={x}; printf %s "$X"', "{}"),
    "after a comment with a quote": ("# it's a comment\nprintf %s {x}", "{}"),
    "after a here-document": ("cat >/dev/null <<'EOF'\nit's \"\nEOF\nprintf %s '{x}'", "{}"),
    "after a line continuation": ('true && \\\nprintf %s "{x}"', "{}"),
    "python -c": ('python3 -c "import sys; sys.stdout.write(sys.argv[1])" "{x}"', "{}"),
}


def sh(command: str, cwd: Path) -> str:
    done = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, timeout=10)
    return done.stdout.decode("utf-8", "surrogateescape")


def expect(context: str, value: str) -> str:
    """What the shell prints (``$(...)`` drops trailing newlines, as it always does)."""
    template, shape = CONTEXTS[context]
    return shape.replace("{}", value.rstrip("\n") if "$(" in template else value)


def filled(template: str, **values: Any) -> str:
    return render(template, values, shell=True).text


@pytest.mark.parametrize("context", list(CONTEXTS))
@pytest.mark.parametrize("value", DANGEROUS)
def test_the_shell_sees_exactly_the_value(context: str, value: str, tmp_path: Path) -> None:
    command = filled(CONTEXTS[context][0], x=value)
    assert sh(command, tmp_path) == expect(context, value), command
    assert list(tmp_path.iterdir()) == [], command  # nothing the value said was run


@pytest.mark.parametrize(
    "template",
    ['echo "{msg}"', 'python3 -c "print({msg})"', "python3 -c 'print({msg})'",
     "python3 -c print({msg})", 'echo "$(echo "{msg}")"'],
)  # fmt: skip
@pytest.mark.parametrize("msg", ["$(touch pwned)", "`touch pwned`", '"$(touch pwned)"'])
def test_the_issue_s_commands_create_nothing(template: str, msg: str, tmp_path: Path) -> None:
    sh(filled(template, msg=msg), tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_python_c_receives_the_value_as_python_text(tmp_path: Path) -> None:
    assert sh(filled('python3 -c "print({msg})"', msg='"it\'s $HOME"'), tmp_path) == "it's $HOME\n"
    assert sh(filled("python3 -c 'print({msg})'", msg='"it\'s"'), tmp_path) == "it's\n"


printable = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))
shellish = st.lists(
    st.sampled_from(["$(", ")", "`", "'", '"', "\\", ";", "&", "|", "<", ">", "\n", "touch pwned",
                     "${", "}", "{x}", "{{x}}", " ", "#", "$", "!"]),
).map("".join)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(printable, shellish), context=st.sampled_from(list(CONTEXTS)[:9]))
def test_fuzzed_values_reach_the_command_whole(value: str, context: str, tmp_path: Path) -> None:
    assert sh(filled(CONTEXTS[context][0], x=value), tmp_path) == expect(context, value)
    assert list(tmp_path.iterdir()) == []


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=shellish, text=st.sampled_from(["'", '"', "`", "$(", "\\", "#", "<<E\n", "${"]))
def test_after_any_text_a_value_is_never_run(value: str, text: str, tmp_path: Path) -> None:
    """Whatever the template around it (even broken shell), no value is executed."""
    for template in (f"true {text} {{x}}", f"true {{x}} {text} {{x}}", f"{text}{{x}}"):
        try:
            command = filled(template, x=value)
        except UsageError:
            continue  # refused: nothing runs
        sh(command, tmp_path)
        assert not (tmp_path / "pwned").exists(), command


@pytest.mark.parametrize(
    ("template", "construct"),
    [("echo `echo {x}`", "a `...` substitution"),
     ('echo "`echo {x}`"', "a `...` substitution"),
     ("echo ${V:-{x}}", "a ${...} expansion"),
     ("echo $(( {x} + 1 ))", "$((...)) arithmetic"),
     ("(( n = {x} ))", "((...)) arithmetic"),
     ("cat <<EOF\n{x}\nEOF", "a here-document"),
     ("cat <<-'EOF'\n\t{x}\n\tEOF\necho", "a here-document"),
     ("echo $'{x}'", "$'...'")],
)  # fmt: skip
def test_a_value_that_cannot_be_quoted_is_refused(template: str, construct: str) -> None:
    for value in ("a b", "$(touch pwned)", "`x`", "'", "}", "\nEOF\n", "a[$(x)]", ""):
        with pytest.raises(UsageError, match=re.escape(f"stands inside {construct}")) as caught:
            filled(template, x=value)
        assert caught.value.exit_code == 2 and '"$v"' in str(caught.value.hint)
    # a number means the same everywhere; a name too, except inside arithmetic
    assert filled(template, x=12) == template.replace("{x}", "12")
    if "arithmetic" in construct:
        with pytest.raises(UsageError, match="can fill in only a number"):
            filled(template, x="HOME")
    else:
        assert filled(template, x="run_1.5-a+b") == template.replace("{x}", "run_1.5-a+b")
    # a literal, an unknown name and text after the construct are not refused
    assert filled(template.replace("{x}", "{{x}}"), x="v").count("{x}") == 1
    assert render(template.replace("{x}", "{nope}"), {}, True).unknown == ("{nope}",)


@pytest.mark.parametrize(
    ("template", "after"),
    [("echo $(case a in a) echo {x};; esac)", "a `case` inside $(...)"),
     ("echo ${V:-'}'} {x}", "quotes or a substitution inside a ${...} expansion"),
     ("echo $'a\\'b' {x}", "a backslash inside $'...'")],
)  # fmt: skip
def test_after_a_construct_the_scanner_cannot_follow_values_are_refused(
    template: str, after: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(f"follows {after}")):
        filled(template, x="a b")
    assert filled(template, x="word") == template.replace("{x}", "word")


def test_plain_words_in_arithmetic_and_backticks_run(tmp_path: Path) -> None:
    assert sh(filled("exit $(( {replica} % 2 ))", replica=3), tmp_path) == ""
    assert subprocess.run(["/bin/sh", "-c", filled("exit $(( {r} % 2 ))", r=3)]).returncode == 1
    assert sh(filled("echo `echo {x}`; echo ${NOPE:-{x}}", x="a.b"), tmp_path) == "a.b\na.b\n"


def test_here_document_bodies_end_and_the_command_goes_on(tmp_path: Path) -> None:
    command = filled("cat <<EOF\nliteral {{x}}\nEOF\nprintf %s {x}", x="$(touch pwned)")
    assert sh(command, tmp_path) == "literal {x}\n$(touch pwned)"
    assert list(tmp_path.iterdir()) == []


def test_placeholders_in_comments_are_left_as_written() -> None:
    assert filled("echo hi # {x} {nope}", x="a\nb") == "echo hi # {x} {nope}"
    assert render("echo # {nope}", {}, True).unknown == ()
    assert filled("echo a#{x}", x="v") == "echo a#v"  # not a comment: `#` inside a word


def test_other_braces_are_left_unchanged() -> None:
    for text in ["python3 -c \"print({'a': 1})\"", "echo ${HOME} ${x}", "awk '{print $1}'",
                 "echo {a,b} { echo; }", "f() { true; }"]:  # fmt: skip
        assert filled(text, x="v") == text, text
    assert filled("echo $${x}", x="v") == "echo $$v"  # `$$` is the shell's pid, then {x}


def test_literal_double_braces() -> None:
    assert filled("echo {{x}} {x}", x="v") == "echo {x} v"
    assert filled("echo {{nope}}", x="v") == "echo {{nope}}"  # only for names that exist
    assert filled('echo "{{x}}"', x="v") == 'echo "{x}"'


def test_unknown_identifiers_are_left_and_reported() -> None:
    done = render("echo {x} {tempreature} '{nope}' {nope} {params.zz}", {"x": 1}, True)
    assert done.text == "echo 1 {tempreature} '{nope}' {nope} {params.zz}"
    assert done.unknown == ("{tempreature}", "{nope}", "{params.zz}")


def run_values(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(replica=1, seed=7, run_id="abc", run_dir="/r", profile=None,
                                attempt=2)  # fmt: skip
    base.update(kw)
    params = base.pop("params", {"lr": 0.001, "opt": {"lr": 0.1, "mom": [1, 2]}, "name": "a b"})
    config = base.pop("config", {"steps": 100, "md": {"dt": 0.5, "ensemble": "nvt"}})
    return values_for(params, config, **base)


def test_names_params_config_and_builtins() -> None:
    values = run_values()
    text = render("x {lr} {name} {params.opt.lr} {config.md.dt} {config.md.ensemble} "
                  "{config.steps} {replica} {seed} {run_id} {run_dir} {profile} {attempt}",
                  values, True).text  # fmt: skip
    assert text == "x 0.001 'a b' 0.1 0.5 nvt 100 1 7 abc /r '' 2"
    assert render("{params}", values, False).text == (
        '{"lr":0.001,"name":"a b","opt":{"lr":0.1,"mom":[1,2]}}'
    )
    assert render("{params.opt.mom} {config.md}", values, False).text == (
        '[1,2] {"dt":0.5,"ensemble":"nvt"}'
    )


def test_values_other_than_strings_are_canonical_json() -> None:
    values = run_values(params={"t": True, "n": None, "lr": 0.001, "dims": [64, 64], "i": 10.0})
    assert render("{t} {n} {lr} {dims} {i}", values, False).text == "true null 0.001 [64,64] 10"
    assert filled("{dims}", dims=[64, 64]) == "'[64,64]'"


def test_builtins_win_over_params_of_an_older_experiment() -> None:
    assert render("{seed}", run_values(params={"seed": 99}), True).text == "7"


def test_a_config_key_the_config_lacks_is_an_error() -> None:
    with pytest.raises(UsageError, match="has no key 'md.temp'") as caught:
        render("lmp -var T {config.md.temp}", run_values(), True)
    assert caught.value.exit_code == 2 and "--override md.temp=VALUE" in str(caught.value.hint)
    assert render("{{config.md.temp}}", run_values(), True).text == "{{config.md.temp}}"


def test_argv_mode_fills_in_without_quoting() -> None:
    argv, unknown = build_argv(None, ["prog", "--x={x}", "{{x}}", "{nope}", "$(x)"], {"x": "a b'"})
    assert argv == ["prog", "--x=a b'", "{x}", "{nope}", "$(x)"]
    assert unknown == ("{nope}",)


def test_build_argv_runs_the_command_through_sh_and_refuses_nul() -> None:
    assert build_argv("echo {x}", None, {"x": "a b"}) == (["/bin/sh", "-c", "echo 'a b'"], ())
    with pytest.raises(UsageError, match="NUL byte"):
        build_argv("echo {x}", None, {"x": "a\0b"})


def test_templates_are_scanned_once() -> None:
    parse.cache_clear()
    for _ in range(3):
        filled("echo {x}", x="v")
    assert parse.cache_info().misses == 1


def test_scanner_corners(tmp_path: Path) -> None:
    # unterminated quotes: still no value is run
    for template in ["echo '{x}", 'echo "{x}', "echo $(echo {x}", "echo ${x", "cat <<EOF\n{y}"]:
        try:
            command = filled(template, x="$(touch pwned)", y=1)
        except UsageError:
            continue
        sh(command, tmp_path)
    assert not (tmp_path / "pwned").exists()
    # nested $( ( ... ) ) and $((...)) with parentheses inside
    assert sh(filled("printf %s $( (printf %s {x}) )", x="a;b"), tmp_path) == "a;b"
    assert sh(filled("printf %s $(( (1+2)*3 )) {x}", x="|"), tmp_path) == "9|"
    assert sh(filled('printf %s "$$" >/dev/null; printf %s {x}', x="&"), tmp_path) == "&"
    assert sh(filled("cat <<-EOF\n\tbody\n\tEOF\nprintf %s {x}", x="'"), tmp_path) == "body\n'"
