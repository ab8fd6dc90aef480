"""Values: one rule set (YAML 1.2 core schema) for the command line and for files.

SPEC §7.  ``--param``, ``--override`` and ``--grid`` values and every YAML file
molexp reads go through :func:`parse_value` or :func:`load_yaml`; every YAML file
molexp writes goes through :func:`dump_yaml`, whose output reads back identically
under YAML 1.1 (``yaml.safe_load``) and YAML 1.2 loaders.

PyYAML implements YAML 1.1 only, so the 1.2 core schema is built here from a
``SafeLoader`` subclass with its own implicit resolvers and constructors.  PyYAML is
imported lazily (CLI start-up time): the classes are built on first use.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import unicodedata
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from molexp.errors import ConfigError, UsageError

if TYPE_CHECKING:
    import yaml

__all__ = [
    "deep_merge",
    "dump_yaml",
    "load_yaml",
    "parse_assignment",
    "parse_grid",
    "parse_value",
    "set_dotted",
    "split_top_level",
]

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Returned by the dumper's resolver when YAML 1.1 and 1.2 disagree about a plain
# scalar: it matches no node's tag, so the emitter quotes (or tags) the scalar.
_AMBIGUOUS_TAG = "tag:molexp,2026:ambiguous"


class _LazyRe:
    """A regular expression compiled on first use: compiling them all at import
    costs ~2 ms of every CLI start, and most commands never parse a value."""

    __slots__ = ("_pattern", "_compiled")

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._pattern)
        return self._compiled

    def match(self, text: str) -> re.Match[str] | None:
        return self.compiled.match(text)


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1033-tag-resolution).
_NULL_RE = _LazyRe(r"(?:null|Null|NULL|~|)\Z")
_BOOL_RE = _LazyRe(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT_RE = _LazyRe(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = _LazyRe(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))\Z"
)

# Line breaks and tabs are text; every other control character (C0, DEL, C1) and
# lone surrogates (undecodable bytes in argv) are refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_YAML_SPACE = " \t\r\n"


# --- the 1.2 core schema for PyYAML -------------------------------------------


def _resolve12(value: str) -> str:
    """The tag YAML 1.2 core gives a plain scalar ``value``."""
    if _NULL_RE.match(value):
        return _NULL_TAG
    if _BOOL_RE.match(value):
        return _BOOL_TAG
    if _INT_RE.match(value):
        return _INT_TAG
    if _FLOAT_RE.match(value):
        return _FLOAT_TAG
    return _STR_TAG


def _int12(text: str) -> int:
    if not _INT_RE.match(text):
        raise ValueError(f"invalid integer {text!r} (YAML 1.2 core)")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "010" is 10


def _float12(text: str) -> float:
    if not _FLOAT_RE.match(text):
        raise ValueError(f"invalid float {text!r} (YAML 1.2 core)")
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


@functools.cache
def _loader_class() -> type[yaml.SafeLoader]:
    """Build (once) the SafeLoader subclass implementing the YAML 1.2 core schema."""
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, Node, ScalarNode

    class Yaml12Loader(yaml.SafeLoader):
        """YAML 1.2 core schema; no dates, sets, binary; duplicate keys refused."""

        # Fresh tables: none of YAML 1.1's resolvers or extra types are inherited.
        yaml_implicit_resolvers = {}
        yaml_constructors: ClassVar[dict[str | None, Any]] = {}

        def _scalar(self, node: Node) -> str:
            if not isinstance(node, ScalarNode):
                raise ConstructorError(
                    None, None, f"expected a scalar for {node.tag}", node.start_mark
                )
            return str(node.value)

        def construct_null12(self, node: Node) -> None:
            text = self._scalar(node)
            if not _NULL_RE.match(text):
                raise ConstructorError(None, None, f"invalid null {text!r}", node.start_mark)
            return None

        def construct_bool12(self, node: Node) -> bool:
            text = self._scalar(node)
            if not _BOOL_RE.match(text):
                raise ConstructorError(None, None, f"invalid boolean {text!r}", node.start_mark)
            return text.lower() == "true"

        def construct_int12(self, node: Node) -> int:
            try:
                return _int12(self._scalar(node))
            except ValueError as exc:  # also: more digits than int() accepts
                raise ConstructorError(None, None, str(exc), node.start_mark) from None

        def construct_float12(self, node: Node) -> float:
            try:
                return _float12(self._scalar(node))
            except ValueError as exc:
                raise ConstructorError(None, None, str(exc), node.start_mark) from None

        def construct_unsupported(self, node: Node) -> None:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(
                None,
                None,
                f"tag {tag} is not supported; use plain strings, numbers, booleans, "
                "null, lists and mappings",
                node.start_mark,
            )

        def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
            if isinstance(node, MappingNode):
                seen: dict[Any, Node] = {}
                for key_node, _ in node.value:
                    if key_node.tag == _MERGE_TAG:
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:
                        continue  # unhashable: SafeConstructor reports it
                    if first is not key_node:
                        raise ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"found duplicate key {key!r} "
                            f"(first at line {first.start_mark.line + 1})",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep=deep)

    for tag, constructor in (
        (_NULL_TAG, Yaml12Loader.construct_null12),
        (_BOOL_TAG, Yaml12Loader.construct_bool12),
        (_INT_TAG, Yaml12Loader.construct_int12),
        (_FLOAT_TAG, Yaml12Loader.construct_float12),
        (_STR_TAG, yaml.SafeLoader.construct_yaml_str),
        (_SEQ_TAG, yaml.SafeLoader.construct_yaml_seq),
        (_MAP_TAG, yaml.SafeLoader.construct_yaml_map),
        (None, Yaml12Loader.construct_unsupported),
    ):
        Yaml12Loader.add_constructor(tag, constructor)

    digits = list("-+0123456789")
    Yaml12Loader.add_implicit_resolver(_NULL_TAG, _NULL_RE.compiled, ["~", "n", "N", ""])
    Yaml12Loader.add_implicit_resolver(_BOOL_TAG, _BOOL_RE.compiled, list("tTfF"))
    Yaml12Loader.add_implicit_resolver(_INT_TAG, _INT_RE.compiled, digits)
    Yaml12Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE.compiled, [*digits, "."])
    # `<<: *anchor` merge keys are not part of 1.2 core, but every YAML loader in
    # practice supports them and configs use them; keep them working.
    Yaml12Loader.add_implicit_resolver(_MERGE_TAG, re.compile(r"<<\Z"), ["<"])
    return Yaml12Loader


@functools.cache
def _dumper_class() -> type[yaml.SafeDumper]:
    """Build (once) a SafeDumper whose plain scalars mean the same in YAML 1.1 and 1.2."""
    import yaml
    from yaml.nodes import Node, ScalarNode

    class CompatDumper(yaml.SafeDumper):
        """Plain style only where YAML 1.1 and 1.2 core resolve a scalar alike."""

        def resolve(self, kind: type[Node], value: Any, implicit: Any) -> Any:
            tag11 = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if kind is ScalarNode and implicit[0]:
                return tag11 if tag11 == _resolve12(value) else _AMBIGUOUS_TAG
            return tag11

        def represent_float12(self, data: float) -> Node:
            if math.isnan(data):
                text = ".nan"
            elif math.isinf(data):
                text = ".inf" if data > 0 else "-.inf"
            else:
                # YAML 1.1 needs a dot and a signed exponent: 1e-05 -> 1.0e-05.
                text = repr(data).lower()
                mantissa, e, exponent = text.partition("e")
                if "." not in mantissa:
                    mantissa += ".0"
                if e and exponent[0] not in "+-":
                    exponent = "+" + exponent
                text = f"{mantissa}{e}{exponent}"
            return self.represent_scalar(_FLOAT_TAG, text)

        def represent_str12(self, data: str) -> Node:
            # Line breaks and non-printable characters: double quotes escape them
            # exactly; PyYAML's folding of plain/single-quoted scalars is lossy there.
            style = '"' if _needs_double_quotes(data) else None
            return self.represent_scalar(_STR_TAG, data, style=style)

    CompatDumper.add_representer(float, CompatDumper.represent_float12)
    CompatDumper.add_representer(str, CompatDumper.represent_str12)
    return CompatDumper


# Characters PyYAML may write literally in plain or single-quoted style without
# changing what is read back; anything else (line breaks, tabs, controls, NEL,
# U+2028/U+2029, BOM, non-characters) is written double-quoted with escapes.
_SIMPLE_TEXT_RE = _LazyRe(
    "[\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufdcf\ufdf0-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]*\\Z"
)


def _needs_double_quotes(text: str) -> bool:
    return _SIMPLE_TEXT_RE.match(text) is None


# --- public API ----------------------------------------------------------------


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
    text itself.  Never fails, except on control characters (:class:`UsageError`).
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
        loader = _loader_class()(stripped)
        try:
            node = loader.get_single_node()
            if node is None:
                return text
            if isinstance(node, CollectionNode) and not node.flow_style:
                return text  # block structure
            if node.start_mark.index != 0 or node.end_mark.index != len(stripped):
                return text  # a document marker, directive, comment or other trailing text
            data = loader.construct_document(node)
        finally:
            loader.dispose()
        _check_acyclic(data)
    except (yaml.YAMLError, RecursionError, ValueError):
        return text
    return data


def _check_acyclic(data: Any) -> None:
    """Refuse self-referencing structures (``&a [*a]``): they cannot be stored."""
    stack: set[int] = set()

    def walk(item: Any) -> None:
        if isinstance(item, (list, dict)):
            if id(item) in stack:
                raise ValueError("recursive alias")
            stack.add(id(item))
            for child in item.values() if isinstance(item, dict) else item:
                walk(child)
            stack.discard(id(item))

    walk(data)


def load_yaml(text: str | bytes, source: str) -> Any:
    """Load one YAML document under the YAML 1.2 core schema.

    Dates stay strings, duplicate keys are an error, an empty document is None.
    Malformed YAML and non-UTF-8 bytes raise :class:`UsageError` naming ``source``
    and the line.
    """
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise UsageError(
                f"{source}: not valid UTF-8 at line {line} (byte 0x{raw[exc.start]:02x}); "
                "save the file as UTF-8"
            ) from None
    import yaml

    try:
        loader = _loader_class()(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        _check_acyclic(data)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        parts = [exc.context, exc.problem]
        if exc.context and exc.context.startswith("while "):
            parts = [exc.problem]  # "while scanning ...": the problem says enough
        problem = " ".join(", ".join(p for p in parts if p).split()) or "invalid YAML"
        raise UsageError(f"{source}: malformed YAML{where}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        problem = (
            f"character U+{exc.character:04X} is not allowed in YAML"
            if isinstance(exc.character, int)
            else str(exc.reason)
        )
        raise UsageError(f"{source}: malformed YAML at line {line}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise UsageError(f"{source}: malformed YAML: nested too deeply") from None
    except ValueError:
        raise UsageError(f"{source}: malformed YAML: an alias refers to itself") from None
    return data


def dump_yaml(data: Any) -> str:
    """Block-style YAML that reads back identically under YAML 1.1 and 1.2 loaders.

    Strings that either schema would read as something else (``on``, ``yes``,
    ``1e3``, ``010``, ``2026-01-01``, ``1:20``, ``''``...) are quoted; floats are
    written with a dot and a signed exponent (``1.0e-05``).
    """
    import yaml

    return yaml.dump(
        data,
        Dumper=_dumper_class(),
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )


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
