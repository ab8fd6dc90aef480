"""Values: one rule set (YAML 1.2 core schema) for the command line (SPEC §7).

``--param``, ``--override`` and ``--grid`` values go through :func:`parse_value`,
which reads a value the way :mod:`molexp.core.model.yaml12` reads files; this
module also holds the grammar around values: ``KEY=VALUE`` assignments, grid lists
split on top-level commas, dotted keys and deep merges.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from molexp.core.model.yaml12 import (
    AliasBombError,
    RecursiveAliasError,
    construct_checked,
    loader_class,
)
from molexp.errors import ConfigError, UsageError

if TYPE_CHECKING:
    pass

__all__ = [
    "deep_merge",
    "parse_assignment",
    "parse_grid",
    "parse_value",
    "set_dotted",
    "split_top_level",
]

# Line breaks and tabs are text; every other control character (C0, DEL, C1) and
# lone surrogates (undecodable bytes in argv) are refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_YAML_SPACE = " \t\r\n"


def _check_text(text: str, what: str | None = None) -> None:
    """Refuse control characters and undecodable bytes in a command-line value."""
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if (category == "Cc" and char not in _ALLOWED_CONTROLS) or category == "Cs":
            problem = (
                "contains a byte that is not valid UTF-8"
                if category == "Cs"
                else f"contains control character U+{ord(char):04X} at position {index}"
            )
            shown = text.encode("unicode_escape", "backslashreplace").decode("ascii")
            prefix = f"{what} " if what else "value "
            raise UsageError(f"{prefix}'{shown}': {problem}; use printable text only")


def parse_value(text: str) -> Any:
    """A command-line value read under the YAML 1.2 core schema (SPEC §7).

    ``10`` is an int, ``1e-3`` a float, ``true``/``True``/``TRUE`` a bool,
    ``null``/``~``/empty None, ``[1, 2]``/``{a: 1}`` a list/dict (recursively under
    the same rules), quotes force a string.  ``yes``/``no``/``on``/``off``, dates
    and anything that is not exactly one YAML scalar or flow collection (a block
    mapping, several documents, a trailing ``# comment``, several lines) is the
    text itself.  Never fails, except on control characters and alias bombs
    (:class:`UsageError`).
    """
    _check_text(text)
    stripped = text.strip(_YAML_SPACE)
    if not stripped:
        return None
    if "\n" in stripped or "\r" in stripped:
        return text
    import yaml
    from yaml.nodes import CollectionNode

    try:
        loader = loader_class()(stripped)
        try:
            node = loader.get_single_node()
            if node is None:
                return text
            if isinstance(node, CollectionNode) and not node.flow_style:
                return text  # block structure
            if node.start_mark.index != 0 or node.end_mark.index != len(stripped):
                return text  # a document marker, directive, comment or other trailing text
            data = construct_checked(loader, node)
        finally:
            loader.dispose()
    except AliasBombError as exc:
        shown = stripped if len(stripped) <= 60 else stripped[:57] + "..."
        raise UsageError(f"value {shown!r}: refused: {exc}") from None
    except (yaml.YAMLError, RecursionError, RecursiveAliasError):
        return text
    return data


def _scan(text: str) -> Iterator[tuple[int, str, int]]:
    """Yield ``(index, char, depth)`` for characters outside quotes.

    A quote opens a quoted scalar only where YAML would see one: at the start of
    an item or after ``[``, ``{``, ``,`` or ``:`` (so ``it's`` stays plain).
    """
    depth = 0
    quote = ""
    previous = ""  # last non-space character outside quotes
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if (quote == '"' and char == "\\") or (
                quote == char == text[index + 1 : index + 2] == "'"
            ):
                index += 2  # an escape: \x in double quotes, '' in single quotes
                continue
            if char == quote:
                quote = ""
                previous = char
        elif char in "'\"" and previous in ("", "[", "{", ",", ":"):
            quote = char
        else:
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth = max(depth - 1, 0)
            yield index, char, depth
            if char not in " \t":
                previous = char
        index += 1


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside ``[]``, ``{}`` or quotes.

    ``split_top_level("[1,2],[3,4]") == ["[1,2]", "[3,4]"]``.  Pieces are returned
    exactly (whitespace kept), so ``sep.join(result) == text``.
    """
    if len(sep) != 1:
        raise ValueError("sep must be a single character")
    pieces: list[str] = []
    start = 0
    for index, char, depth in _scan(text):
        if char == sep and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


def _split_key(key: str, what: str, shown: str) -> list[str]:
    segments = [segment.strip() for segment in key.split(".")]
    if not key.strip():
        raise UsageError(f"{what} '{shown}': empty key; expected KEY=VALUE")
    if any(not segment for segment in segments):
        raise UsageError(
            f"{what} '{shown}': empty segment in key '{key.strip()}'; dotted keys look like a.b.c"
        )
    return segments


def parse_assignment(text: str, what: str = "--param") -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``; split on the first ``=``.

    The key's dotted segments are stripped and must be non-empty; the value goes
    through :func:`parse_value`.
    """
    _check_text(text, what)
    key, eq, value = text.partition("=")
    if not eq:
        raise UsageError(f"{what} '{text}': expected KEY=VALUE")
    segments = _split_key(key, what, text)
    return ".".join(segments), parse_value(value)


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` -> ``(key, [values])``.

    The value list is split on top-level commas only (:func:`split_top_level`), so
    ``dims=[1,2],[3,4]`` is two values, ``[1, 2]`` and ``[3, 4]``.  Each piece goes
    through :func:`parse_value`; an empty piece is an error (write ``null`` for None).

    The value list may also be one YAML flow sequence: when the whole value part is
    a single ``[...]`` (no top-level comma), its items are the values, so
    ``layers=[[64],[64,64]]`` is two values, ``[64]`` and ``[64, 64]``, and
    ``lr=[1e-3,1e-4]`` is the same as ``lr=1e-3,1e-4``.  One list-valued point is
    ``layers=[[64,64]]`` (or ``--param layers=[64,64]``); an empty ``[]`` is an error.
    """
    what = "--grid"
    _check_text(text, what)
    key, eq, rest = text.partition("=")
    if not eq:
        raise UsageError(f"{what} '{text}': expected KEY=V1,V2,...")
    segments = _split_key(key, what, text)
    if not rest.strip(_YAML_SPACE):
        raise UsageError(f"{what} '{text}': no values; expected KEY=V1,V2,...")
    pieces = split_top_level(rest)
    if len(pieces) == 1:
        whole = parse_value(pieces[0])
        if isinstance(whole, list) and pieces[0].strip(_YAML_SPACE).startswith("["):
            if not whole:
                raise UsageError(
                    f"{what} '{text}': the value list [] is empty; give at least one value"
                )
            return ".".join(segments), whole
    values: list[Any] = []
    for position, piece in enumerate(pieces, start=1):
        piece = piece.strip(_YAML_SPACE)
        if not piece:
            raise UsageError(
                f"{what} '{text}': value {position} is empty; write null for a null value"
            )
        values.append(parse_value(piece))
    return ".".join(segments), values


def type_name(value: Any) -> str:
    """How a value's type reads in a message: ``null``, ``a mapping``, ``an integer``..."""
    if value is None:
        return "null"
    for kind, label in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a mapping"),
    ):
        if isinstance(value, kind):
            return label
    return f"a {type(value).__name__}"


def set_dotted(target: dict[str, Any], key: str, value: Any, what: str = "--override") -> None:
    """Set ``a.b.c`` in ``target``, creating intermediate mappings.

    An intermediate that exists and is not a mapping is a :class:`ConfigError`.
    """
    segments = [segment.strip() for segment in key.split(".")]
    if any(not segment for segment in segments):
        raise ConfigError(f"{what} '{key}': empty segment in key; dotted keys look like a.b.c")
    node = target
    for depth, segment in enumerate(segments[:-1], start=1):
        child = node.get(segment)
        if child is None:  # missing or null: becomes a mapping
            child = node[segment] = {}
        if not isinstance(child, dict):
            path = ".".join(segments[:depth])
            raise ConfigError(
                f"{what} '{key}': '{path}' is {type_name(child)} ({child!r}), not a mapping, "
                f"so it has no key '{segments[depth]}'",
                f"Set '{path}' as a whole instead, "
                f"e.g. {what} '{path}={{{segments[depth]}: VALUE}}'.",
            )
        node = child
    node[segments[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``over`` merged onto ``base``.

    Dicts merge recursively; lists and scalars in ``over`` replace.  Neither input
    is mutated and the result shares no mutable value with them.
    """
    result: dict[str, Any] = {}
    for key, value in base.items():
        result[key] = copy.deepcopy(value)
    for key, value in over.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = deep_merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
