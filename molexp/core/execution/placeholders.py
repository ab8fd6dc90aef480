"""``{placeholders}`` in a run's command, and quoting them for ``/bin/sh`` (SPEC §9).

A command template is scanned once (:func:`parse`) into the places where a value
goes (:class:`Slot`), each with the shell context it stands in:

- ``bare``: outside any quotes (also inside ``$(...)``), filled in with
  :func:`shlex.quote`;
- ``single``: inside ``'...'``, where a ``'`` of the value becomes ``'\\''``;
- ``double``: inside ``"..."``, where ``$``, a backtick, ``\\`` and ``"`` of the
  value are escaped with a backslash (``!`` is not special in ``sh -c``);
- ``argv``: a command given after ``--``, run without a shell: the value as it is.

So the shell sees exactly the value's text and never runs any of it, wherever
the placeholder stands.  Where molexp cannot quote a value — inside a backtick
substitution, a ``${...}`` expansion, ``$((...))`` or ``((...))`` arithmetic, a
here-document's body or ``$'...'`` — only a value that means the same in every
context is filled in (a plain word of letters, digits and ``_ . + -``; inside
arithmetic, a number): ``exit $(( {replica} % 2 ))`` works, and any other value is
refused (exit 2) rather than guessed at.  After a construct the scanner cannot
follow for certain (``case`` inside ``$(...)``, quotes inside ``${...}``) every
later placeholder follows that rule too.  A placeholder in a ``#`` comment is left
as it is.

The scanner follows the POSIX shell grammar for quotes, backslashes, ``$(...)``
nesting, comments and here-documents; it is the one place that knows it, and
:func:`render` is the one function every path that builds a command uses (a local
run, a SLURM submission and its task, ``--dry-run``).

Names: ``{name}`` is a built-in or a top-level param; ``{params.a.b}`` and
``{config.a.b}`` reach into the params and the merged config (``{params}`` and
``{config}`` alone give the whole mapping).  ``{{name}}`` gives a literal
``{name}``.  A ``{identifier}`` that names nothing is left as it is and reported
(:attr:`Rendered.unknown`); a ``{config.KEY}`` the config lacks is an error.
Strings are substituted as they are, other values as canonical JSON.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from molexp.core.model.identity import canonical_json
from molexp.errors import UsageError

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
_AT_BRACE = re.compile(r"\{\{(" + _NAME + r")\}\}|\{(" + _NAME + r")\}")
_HINT = 'Assign it to a shell variable first (v={name}; ...) and use "$v" there.'
# A value that is this (a plain word: a number, a name) means the same in every shell
# context, so it is filled in even where no quoting could keep other values inert;
# inside arithmetic, where bash evaluates a name's own value, only a number is.
_INERT = re.compile(r"[A-Za-z0-9_.+-]+")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class Slot(NamedTuple):
    """One ``{name}`` (or ``{{name}}``) at ``start:end`` of a template."""

    start: int
    end: int
    name: str
    literal: bool  # ``{{name}}``
    context: str  # bare | single | double | argv | comment | refused
    why: str = ""  # for ``refused``: the construct it stands in
    after_backslash: bool = False  # ``"\\{x}"``: a literal backslash just before it


class Template(NamedTuple):
    text: str
    slots: tuple[Slot, ...]
    uncertain_at: int | None  # from here on the scanner cannot be sure of the context
    uncertain_why: str


class Rendered(NamedTuple):
    text: str
    unknown: tuple[str, ...]  # ``{identifier}`` that named nothing, as written


def format_value(value: Any) -> str:
    """Strings as they are, everything else as canonical JSON."""
    return value if isinstance(value, str) else canonical_json(value).decode()


def quote_for(context: str, text: str) -> str:
    """``text`` quoted so that the shell reads exactly it in ``context``."""
    if context == "bare":
        return shlex.quote(text)
    if context == "single":
        return text.replace("'", "'\\''")
    if context == "double":
        return re.sub(r'([\\$`"])', r"\\\1", text)
    return text


# -- scanning ------------------------------------------------------------------


class _Scanner:
    """One pass over a shell command, recording each placeholder's context."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.slots: list[Slot] = []
        self.uncertain_at: int | None = None
        self.uncertain_why = ""
        self.heredocs: list[tuple[str, bool]] = []  # (delimiter, strip tabs) waiting for a newline

    def doubt(self, at: int, why: str) -> None:
        if self.uncertain_at is None:
            self.uncertain_at, self.uncertain_why = at, why

    def brace(self, i: int, context: str, why: str = "", after_backslash: bool = False) -> int:
        """A ``{`` at ``i``: record a slot if one starts there; return the next index."""
        m = _AT_BRACE.match(self.s, i)
        if m is None:
            return i + 1
        literal = m.group(1) is not None
        name = m.group(1) if literal else m.group(2)
        self.slots.append(Slot(i, m.end(), name, literal, context, why, after_backslash))
        return m.end()

    def refused_until(self, i: int, end: int, why: str) -> None:
        """Every placeholder in ``s[i:end]`` stands where no value can be quoted."""
        while i < end:
            i = self.brace(i, "refused", why) if self.s[i] == "{" else i + 1

    # Each ``scan_*`` starts just inside its construct and returns the index
    # after its end (``len(s)`` when it is not closed).

    def scan_command(self, i: int, nested: bool) -> int:
        """Command level: the top of the command, or the inside of ``$(...)``."""
        s, n = self.s, len(self.s)
        depth = 0  # open ``(`` inside this level
        word_start = True
        while i < n:
            c = s[i]
            if c == "\\":
                i += 2
                word_start = False
            elif c == "'":
                i = self.scan_single(i + 1)
                word_start = False
            elif c == '"':
                i = self.scan_double(i + 1)
                word_start = False
            elif c == "`":
                i = self.scan_backtick(i + 1)
                word_start = False
            elif c == "$":
                i = self.scan_dollar(i)
                word_start = False
            elif c == "#" and word_start:
                end = s.find("\n", i)
                end = n if end < 0 else end
                while i < end:
                    i = self.brace(i, "comment") if s[i] == "{" else i + 1
            elif c == "{":
                i = self.brace(i, "bare")
                word_start = False
            elif c == "\n":
                i = self.scan_heredoc_bodies(i + 1) if self.heredocs else i + 1
                word_start = True
            elif c == "<" and s.startswith("<<", i) and not s.startswith("<<<", i):
                i = self.read_heredoc_word(i + 2)
                word_start = False
            elif c == "(" and word_start and s.startswith("((", i):
                i = self.scan_arithmetic(i + 2, "((...)) arithmetic")
                word_start = True
            elif c == "(":
                depth += 1
                i += 1
                word_start = True
            elif c == ")":
                if nested and depth == 0:
                    return i + 1
                depth -= 1
                i += 1
                word_start = True
            else:
                if nested and word_start and re.match(r"case[ \t\n]", s[i : i + 5]):
                    self.doubt(i, "a `case` inside $(...)")
                word_start = c in " \t;&|<>"
                i += 1
        return n

    def scan_single(self, i: int) -> int:
        s, n = self.s, len(self.s)
        end = s.find("'", i)
        end = n if end < 0 else end
        while i < end:
            i = self.brace(i, "single") if s[i] == "{" else i + 1
        return end + 1

    def scan_double(self, i: int) -> int:
        s, n = self.s, len(self.s)
        literal_backslash = False
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and s[i + 1] in '$`"\\\n':
                i += 2
                literal_backslash = False
                continue
            if c == '"':
                return i + 1
            if c == "`":
                i = self.scan_backtick(i + 1)
            elif c == "$":
                i = self.scan_dollar(i)
            elif c == "{":
                i = self.brace(i, "double", after_backslash=literal_backslash)
            else:
                i += 1
            literal_backslash = c == "\\"
        return n

    def scan_backtick(self, i: int) -> int:
        s, n = self.s, len(self.s)
        while i < n:
            c = s[i]
            if c == "\\":
                i += 2
            elif c == "`":
                return i + 1
            elif c == "{":
                i = self.brace(i, "refused", "a `...` substitution (write $(...) instead)")
            else:
                i += 1
        return n

    def scan_dollar(self, i: int) -> int:
        """``$`` at ``i``: ``$(...)``, ``$((...))``, ``${...}``, ``$'...'`` or a plain ``$``."""
        s = self.s
        nxt = s[i + 1 : i + 2]
        if s.startswith("$((", i):
            return self.scan_arithmetic(i + 3, "$((...)) arithmetic")
        if nxt == "(":
            return self.scan_command(i + 2, nested=True)
        if nxt == "{":
            return self.scan_parameter(i + 2)
        if nxt == "'":
            return self.scan_ansi(i + 2)
        return i + (2 if nxt and nxt in "$#?!@*-0123456789" else 1)

    def scan_arithmetic(self, i: int, why: str) -> int:
        """After ``$((`` or ``((``: up to the matching ``))``."""
        s, n = self.s, len(self.s)
        start, depth = i, 0
        while i < n:
            c = s[i]
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    self.refused_until(start, i, why)
                    if not s.startswith("))", i):
                        self.doubt(i, f"{why} that does not end in `))`")
                        return i + 1
                    return i + 2
                depth -= 1
            elif c in "'\"`":
                self.doubt(i, f"quotes inside {why}")
            i += 1
        self.refused_until(start, n, why)
        return n

    def scan_parameter(self, i: int) -> int:
        """After ``${``: up to its ``}``."""
        s, n = self.s, len(self.s)
        start, depth = i, 0
        why = "a ${...} expansion"
        while i < n:
            c = s[i]
            if c == "\\":
                i += 2
                continue
            if c == "}":
                if depth == 0:
                    self.refused_until(start, i, why)
                    return i + 1
                depth -= 1
            elif c == "$" and s.startswith("${", i):
                depth += 1
                i += 1
            elif c in "'\"`" or s.startswith("$(", i):
                self.doubt(i, f"quotes or a substitution inside {why}")
            i += 1
        self.refused_until(start, n, why)
        return n

    def scan_ansi(self, i: int) -> int:
        """After ``$'``: shells disagree on it, so nothing is filled in inside."""
        s, n = self.s, len(self.s)
        start = i
        while i < n:
            if s[i] == "\\":
                self.doubt(i, "a backslash inside $'...'")
                i += 2
            elif s[i] == "'":
                self.refused_until(start, i, "$'...'")
                return i + 1
            else:
                i += 1
        self.refused_until(start, n, "$'...'")
        return n

    def read_heredoc_word(self, i: int) -> int:
        """After ``<<``: note the here-document's delimiter; its body starts at the next line."""
        s, n = self.s, len(self.s)
        strip = s.startswith("-", i)
        i += strip
        while i < n and s[i] in " \t":
            i += 1
        word: list[str] = []
        while i < n and s[i] not in " \t\n;&|<>()":
            c = s[i]
            if c in "'\"":
                end = s.find(c, i + 1)
                end = n if end < 0 else end
                word.append(s[i + 1 : end])
                i = end + 1
            elif c == "\\":
                word.append(s[i + 1 : i + 2])
                i += 2
            else:
                word.append(c)
                i += 1
        self.heredocs.append(("".join(word), strip))
        return i

    def scan_heredoc_bodies(self, i: int) -> int:
        """At the start of the line after ``<<WORD``: skip the bodies waiting for it."""
        s, n = self.s, len(self.s)
        pending, self.heredocs = self.heredocs, []
        for delimiter, strip in pending:
            start = i
            while i < n:
                end = s.find("\n", i)
                end = n if end < 0 else end
                line = s[i:end]
                if (line.lstrip("\t") if strip else line) == delimiter:
                    self.refused_until(start, i, "a here-document")
                    i = min(end + 1, n)
                    break
                i = end + 1
            else:
                self.refused_until(start, n, "a here-document")
                return n
        return i


@lru_cache(maxsize=64)
def parse(template: str, shell: bool) -> Template:
    """The placeholders of ``template``, each with its context (cached)."""
    if not shell:
        scanner = _Scanner(template)
        i = template.find("{")
        while i >= 0:
            i = template.find("{", scanner.brace(i, "argv"))
        return Template(template, tuple(scanner.slots), None, "")
    scanner = _Scanner(template)
    scanner.scan_command(0, nested=False)
    return Template(template, tuple(scanner.slots), scanner.uncertain_at, scanner.uncertain_why)


# -- filling in ----------------------------------------------------------------

_MISSING = object()


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """The value ``name`` (dotted) names in ``values``, or ``_MISSING``."""
    current: Any = values
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def values_for(
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    replica: int,
    seed: int,
    run_id: str,
    run_dir: str,
    profile: str | None,
    attempt: int,
) -> dict[str, Any]:
    """What the placeholders of one run's command name (built-ins win over params)."""
    values: dict[str, Any] = dict(params)
    values.update(
        replica=replica,
        seed=seed,
        run_id=run_id,
        run_dir=run_dir,
        profile=profile or "",
        attempt=attempt,
        params=dict(params),
        config=dict(config),
    )
    return values


def render(template: str, values: Mapping[str, Any], shell: bool) -> Rendered:
    """``template`` with its placeholders filled in from ``values`` and quoted.

    Raises :class:`UsageError` (exit 2) for a ``{config.KEY}`` the config lacks
    and for a value standing where it cannot be quoted (unless it is a plain word).
    """
    parsed = parse(template, shell)
    out: list[str] = []
    unknown: list[str] = []
    pos = 0
    for slot in parsed.slots:
        value = lookup(values, slot.name)
        if value is _MISSING:
            if slot.name.startswith("config.") and not slot.literal and slot.context != "comment":
                raise UsageError(
                    f"the command's {{{slot.name}}}: the merged config has no key "
                    f"{slot.name[len('config.') :]!r}",
                    "Add it to molcfg.yaml (defaults or the profile), or give --override "
                    f"{slot.name[len('config.') :]}=VALUE.",
                )
            if not slot.literal and slot.context != "comment":
                unknown.append("{" + slot.name + "}")
            continue
        out.append(template[pos : slot.start])
        pos = slot.end
        if slot.literal:
            out.append("{" + slot.name + "}")
        elif slot.context == "comment":
            out.append(template[slot.start : slot.end])
        elif slot.context == "refused" or (
            parsed.uncertain_at is not None and slot.start >= parsed.uncertain_at
        ):
            out.append(_inert(slot, format_value(value), parsed))
        else:
            text = quote_for(slot.context, format_value(value))
            out.append(("\\" if slot.after_backslash else "") + text)
    out.append(template[pos:])
    return Rendered("".join(out), tuple(dict.fromkeys(unknown)))


def _inert(slot: Slot, text: str, parsed: Template) -> str:
    """``text`` where it cannot be quoted: as it is if it is a plain word, else refused."""
    arithmetic = slot.context == "refused" and "arithmetic" in slot.why
    if (_NUMBER if arithmetic else _INERT).fullmatch(text):
        return text
    if slot.context == "refused":
        what = "a number" if arithmetic else "a plain word (letters, digits, _ . + -)"
        lead = f"stands inside {slot.why}, where molexp can fill in only {what}"
    else:
        lead = f"follows {parsed.uncertain_why}, after which molexp cannot tell how to quote it"
    raise UsageError(
        f"the command's {{{slot.name}}} ({text[:40]!r}) {lead}",
        _HINT.format(name="{" + slot.name + "}"),
    )


def build_argv(
    command: str | None, argv: Sequence[str] | None, values: Mapping[str, Any]
) -> tuple[list[str], tuple[str, ...]]:
    """The argv to execute and the placeholders that named nothing.

    ``argv`` (a command after ``--``) runs without a shell, each argument filled
    in as it is; else ``command`` runs through ``/bin/sh -c`` with every value
    quoted for its place.
    """
    unknown: list[str] = []
    if argv:
        out = []
        for arg in argv:
            done = render(arg, values, shell=False)
            out.append(done.text)
            unknown.extend(done.unknown)
    else:
        assert command is not None
        done = render(command, values, shell=True)
        out = ["/bin/sh", "-c", done.text]
        unknown.extend(done.unknown)
    if any("\0" in arg for arg in out):
        raise UsageError(
            "the command holds a NUL byte once its {placeholders} are filled in",
            "A parameter value contains a NUL byte; no program can receive one.",
        )
    return out, tuple(dict.fromkeys(unknown))


def unknown_warning(unknown: Sequence[str]) -> str:
    """The warning for placeholders that named nothing (left in the command as they are)."""
    names = ", ".join(unknown)
    return (
        f"the command's {names} name{'s' if len(unknown) == 1 else ''} no param, config key "
        "or built-in; left as written (write {{name}} for a literal {name})"
    )
