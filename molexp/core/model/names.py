"""Names of projects, experiments and assets (SPEC §3)."""

from __future__ import annotations

import re

from molexp.errors import InvalidNameError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_NAME = re.compile(NAME_PATTERN)


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def validate_name(name: object, kind: str) -> str:
    """Return ``name`` if it is a valid ``kind`` name, else raise (exit 2)."""
    if is_valid_name(name):
        assert isinstance(name, str)
        return name
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    raise InvalidNameError(
        f"invalid {kind} name {shown}: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


PLACEHOLDER_BUILTINS = ("replica", "seed", "run_id", "run_dir", "profile", "attempt")
RESERVED_PARAMS = (*PLACEHOLDER_BUILTINS, "params", "config")
"""Names a param may not have (SPEC §9): the command's ``{placeholders}`` give them
another meaning, so such a param would be shadowed."""
