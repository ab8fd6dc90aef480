"""Profiles: ``molcfg.yaml`` + ``--profile`` + ``--override`` -> one config dict.

SPEC §6.  The file is found once (:func:`find_config_file`), read and checked once
(:func:`load_config_file`), and a profile is resolved over ``defaults`` along its
``extends`` chain (:func:`resolve_profile`).  :func:`resolve_config` is the one call
the rest of molexp makes.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from molexp.core.model.values import deep_merge, set_dotted, type_name
from molexp.core.store.files import load_yaml_cached
from molexp.errors import ConfigError, SchemaVersionError, UsageError

__all__ = [
    "CONFIG_FILENAMES",
    "CONFIG_VERSION",
    "ConfigFile",
    "ResolvedConfig",
    "find_config_file",
    "load_config_file",
    "normalise_profile_name",
    "resolve_config",
    "resolve_profile",
]

CONFIG_FILENAMES = ("molcfg.yaml", "molcfg.yml", "molcfg.json")
CONFIG_VERSION = 1
"""The newest ``version`` of ``molcfg.yaml`` this molexp reads."""

_SUFFIXES = (".yaml", ".yml", ".json")
_TOP_LEVEL_KEYS = ("version", "defaults", "profiles")
_EXTENDS = "extends"
_DEFAULTS = "defaults"


def normalise_profile_name(name: str) -> str:
    """Strip and turn ``-`` into ``_`` (case is kept): ``' dry-run '`` -> ``'dry_run'``."""
    normalised = name.strip().replace("-", "_")
    if not normalised:
        raise ConfigError("empty profile name", "Give a profile name such as 'smoke'.")
    return normalised


def find_config_file(explicit: Path | None, cwd: Path) -> Path | None:
    """The config file to use: ``explicit`` (relative to ``cwd``), else the first of
    :data:`CONFIG_FILENAMES` in ``cwd`` (parents are not searched), else None."""
    if explicit is not None:
        path = cwd / explicit
        if not path.is_file():
            reason = " (it is a directory)" if path.is_dir() else ""
            raise ConfigError(f"config file not found: {path}{reason}")
        if path.suffix.lower() not in _SUFFIXES:
            raise ConfigError(
                f"config file {path}: unsupported suffix {path.suffix or '(none)'!r}; "
                "use .yaml, .yml or .json"
            )
        return path
    for name in CONFIG_FILENAMES:
        candidate = cwd / name
        if candidate.is_file():
            return candidate
    return None


class ConfigFile(NamedTuple):
    """A checked ``molcfg.yaml``: profiles keyed by normalised name, bodies raw
    (``extends`` included), in file order."""

    path: Path
    version: int
    defaults: dict[str, Any]
    profiles: dict[str, dict[str, Any]]

    def names(self) -> list[str]:
        """The normalised profile names, in file order."""
        return list(self.profiles)


class ResolvedConfig(NamedTuple):
    """The outcome of profile resolution: what a run records."""

    profile: str | None
    config: dict[str, Any]
    source: Path | None


def _read(path: Path, cache_dir: Path | None = None) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        return _load_json(raw, path)
    try:
        return load_yaml_cached(raw, str(path), cache_dir)
    except ConfigError:
        raise
    except UsageError as exc:
        raise ConfigError(exc.message, exc.hint) from None


def _load_json(raw: bytes, path: Path) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not valid UTF-8 at line {line}; save the file as UTF-8"
        ) from None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: malformed JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed JSON: nested too deeply") from None


def _mapping(value: Any, path: Path, what: str) -> dict[str, Any]:
    """``value`` as a mapping with string keys; null is ``{}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {what} must be a mapping, found {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(
                f"{path}: {what} has key {key!r} ({type_name(key)}); keys must be strings",
                "Quote the key in the file.",
            )
    return value


def _check_version(value: Any, path: Path) -> int:
    if value is None:
        return CONFIG_VERSION
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: version must be a positive integer, found {value!r}")
    if value > CONFIG_VERSION:
        raise SchemaVersionError(
            path,
            f"version {value} was written by a newer molexp "
            f"(this molexp reads version {CONFIG_VERSION})",
            "Upgrade molexp to use this file.",
        )
    return value


def load_config_file(path: Path, cache_dir: Path | None = None) -> ConfigFile:
    """Read and check a ``molcfg.yaml`` / ``.yml`` / ``.json``.

    An empty file is an empty config.  Refuses a non-mapping top level, unknown
    top-level keys, a newer ``version`` (:class:`SchemaVersionError`), non-mapping
    ``defaults`` or profile bodies, a profile called ``defaults``, two profile names
    that normalise alike and a non-string ``extends``.
    """
    data = _read(path, cache_dir)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping (version, defaults, profiles), "
            f"found {type_name(data)}"
        )
    top = _mapping(data, path, "the top level")
    version = _check_version(top.get("version"), path)
    unknown = [key for key in top if key not in _TOP_LEVEL_KEYS]
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        raise ConfigError(
            f"{path}: unknown top-level key{'s' if len(unknown) > 1 else ''} {listed}; "
            f"allowed: {', '.join(_TOP_LEVEL_KEYS)}",
            "Put shared values under `defaults:` and named variants under `profiles:`.",
        )
    defaults = _mapping(top.get("defaults"), path, "`defaults`")
    if _EXTENDS in defaults:
        raise ConfigError(
            f"{path}: `defaults` cannot use `extends`; every profile already starts from `defaults`"
        )
    profiles: dict[str, dict[str, Any]] = {}
    spelled: dict[str, str] = {}
    for raw_name, body in _mapping(top.get("profiles"), path, "`profiles`").items():
        try:
            name = normalise_profile_name(raw_name)
        except ConfigError:
            raise ConfigError(f"{path}: empty profile name {raw_name!r}") from None
        if name == _DEFAULTS:
            raise ConfigError(
                f"{path}: {raw_name!r} cannot be a profile name",
                "Put shared values under the top-level `defaults:` instead.",
            )
        if name in spelled:
            raise ConfigError(
                f"{path}: profiles {spelled[name]!r} and {raw_name!r} both normalise "
                f"to {name!r}; rename or merge one"
            )
        spelled[name] = raw_name
        profile = _mapping(body, path, f"profile {raw_name!r}")
        if _EXTENDS in profile:
            base = profile[_EXTENDS]
            if not isinstance(base, str) or not base.strip():
                raise ConfigError(
                    f"{path}: profile {raw_name!r}: `extends` must be a profile name, "
                    f"found {base!r}"
                )
        profiles[name] = profile
    return ConfigFile(path=path, version=version, defaults=defaults, profiles=profiles)


def _unknown(name: str, cfg: ConfigFile, lead: str) -> ConfigError:
    names = cfg.names()
    available = f"available: {', '.join(names)}" if names else "it defines no profiles"
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else None
    return ConfigError(f"{lead} in {cfg.path}; {available}", hint)


def _chain(cfg: ConfigFile, name: str) -> list[str]:
    """``name`` and its bases, most derived first: ``[large_batch, smoke]``."""
    chain = [name]
    while True:
        base_raw = cfg.profiles[chain[-1]].get(_EXTENDS)
        if base_raw is None:
            return chain
        base = normalise_profile_name(base_raw)
        if base == _DEFAULTS:
            return chain
        if base in chain:
            cycle = " -> ".join([*chain, base])
            raise ConfigError(
                f"profile cycle in {cfg.path}: {cycle}",
                "Remove one `extends` from the cycle.",
            )
        if base not in cfg.profiles:
            raise _unknown(
                base,
                cfg,
                f"profile {chain[-1]!r} extends unknown profile {base_raw!r}",
            )
        chain.append(base)


def resolve_profile(cfg: ConfigFile, name: str | None) -> dict[str, Any]:
    """The config of profile ``name``: ``defaults``, then its bases root-most first,
    then the profile itself (dicts merge, lists and scalars replace).  ``None`` is
    ``defaults`` alone.  The result is a new dict without ``extends``."""
    if name is None:
        return copy.deepcopy(cfg.defaults)
    normalised = normalise_profile_name(name)
    if normalised == _DEFAULTS:
        raise ConfigError(
            "'defaults' is not a profile name",
            "Leave out --profile to use the defaults alone.",
        )
    if normalised not in cfg.profiles:
        raise _unknown(normalised, cfg, f"unknown profile {name.strip()!r}")
    config = copy.deepcopy(cfg.defaults)
    for profile in reversed(_chain(cfg, normalised)):
        body = {k: v for k, v in cfg.profiles[profile].items() if k != _EXTENDS}
        config = deep_merge(config, body)
    return config


def resolve_config(
    config_path: Path | None,
    cwd: Path,
    profile: str | None,
    overrides: Sequence[tuple[str, Any]] = (),
    cache_dir: Path | None = None,
) -> ResolvedConfig:
    """Find the config file, resolve ``profile`` and apply ``overrides`` in order.

    No file and no profile is ``{}``; a profile without a file is an error.
    ``cache_dir`` (the workspace's YAML cache) makes re-reading a file cheap.
    """
    path = find_config_file(config_path, cwd)
    if path is None:
        if profile is not None:
            raise ConfigError(
                f"--profile {profile} given but no {'/'.join(CONFIG_FILENAMES)} in {cwd}; "
                "pass --config FILE",
            )
        config: dict[str, Any] = {}
        name = None
    else:
        cfg = load_config_file(path, cache_dir)
        config = resolve_profile(cfg, profile)
        name = None if profile is None else normalise_profile_name(profile)
    for key, value in overrides:
        set_dotted(config, key, copy.deepcopy(value), "--override")
    return ResolvedConfig(profile=name, config=config, source=path)
