"""YAML 1.2 core schema for PyYAML: the one loader and dumper of every YAML file (SPEC §7).

Every YAML file molexp reads goes through :func:`load_yaml`; every one it writes
through :func:`dump_yaml`, whose output reads back identically under YAML 1.1
(``yaml.safe_load``) and YAML 1.2 loaders.  PyYAML implements YAML 1.1 only, so the
1.2 core schema is built here from a ``SafeLoader`` subclass with its own implicit
resolvers and constructors.  PyYAML is imported lazily (CLI start-up time): the
classes are built on first use.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar

from molexp.errors import UsageError

if TYPE_CHECKING:
    import yaml
    from yaml.nodes import Node

__all__ = ["dump_yaml", "load_yaml", "loader_class", "construct_checked", "LazyRe"]

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


class LazyRe:
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
_NULL_RE = LazyRe(r"(?:null|Null|NULL|~|)\Z")
_BOOL_RE = LazyRe(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT_RE = LazyRe(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = LazyRe(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))\Z"
)

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
def loader_class() -> type[yaml.SafeLoader]:
    """Build (once) the SafeLoader subclass implementing the YAML 1.2 core schema."""
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, ScalarNode

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
    from yaml.nodes import ScalarNode

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
_SIMPLE_TEXT_RE = LazyRe(
    "[\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufdcf\ufdf0-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]*\\Z"
)


def _needs_double_quotes(text: str) -> bool:
    return _SIMPLE_TEXT_RE.match(text) is None


# An alias (``*name``) repeats a node without repeating its text, so a few lines
# can stand for billions of nodes (an "alias bomb": 9 levels of 9 aliases is 387
# million).  Aliases may add at most this many nodes, or this many times the
# document's own node count when that is larger; anything beyond is refused
# before a single value is built, so the work a file causes stays proportional
# to its size.
ALIAS_BUDGET = 100_000
ALIAS_RATIO = 10


class AliasBombError(ValueError):
    """A YAML document whose aliases expand far beyond its own size."""


class RecursiveAliasError(ValueError):
    """A YAML document with an alias inside the node it names (``&a [*a]``)."""


def check_aliases(root: Node) -> None:
    """Refuse a composed document whose aliases expand it beyond the budget, or
    that contains itself.

    Counts, once per distinct node (linear in the document, however its
    aliases nest), the size the document would have with every alias expanded,
    and compares it with its size as written (each alias one node):
    :class:`AliasBombError` past :data:`ALIAS_BUDGET` extra nodes (or
    :data:`ALIAS_RATIO` times the written size), :class:`RecursiveAliasError`
    for a node that contains itself.
    """
    sizes: dict[int, int] = {}
    written = 1  # nodes as the text spells them: the root and every reference to a child
    busy: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            busy.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if id(node) in sizes:
            continue
        busy.add(id(node))
        stack.append((node, True))
        written += len(children)
        for child in children:
            if id(child) in busy:
                raise RecursiveAliasError("an alias refers to itself")
            if id(child) not in sizes:
                stack.append((child, False))
    expanded = sizes[id(root)]
    allowed = max(ALIAS_BUDGET, ALIAS_RATIO * written)
    if expanded - written > allowed:
        raise AliasBombError(
            f"its aliases expand {written:,} nodes to {expanded:,} (an alias bomb?); "
            f"aliases may add at most {allowed:,}"
        )


def _children(node: Node) -> list[Node]:
    value = node.value
    if not isinstance(value, list):
        return []  # a scalar
    if value and isinstance(value[0], tuple):
        return [part for pair in value for part in pair]  # a mapping's (key, value) pairs
    return list(value)


def construct_checked(loader: yaml.SafeLoader, node: Node) -> Any:
    """``loader.construct_document(node)`` once :func:`check_aliases` accepts ``node``."""
    check_aliases(node)
    return loader.construct_document(node)


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
        loader = loader_class()(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else construct_checked(loader, node)
        finally:
            loader.dispose()
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
    except (AliasBombError, RecursiveAliasError) as exc:
        raise UsageError(f"{source}: refused: {exc}") from None
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
