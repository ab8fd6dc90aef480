"""molexp.core.records.profiles: molcfg.yaml, profiles, extends chains and overrides (SPEC §6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from molexp.core.records.profiles import (
    CONFIG_FILENAMES,
    ConfigFile,
    ResolvedConfig,
    find_config_file,
    load_config_file,
    normalise_profile_name,
    resolve_config,
    resolve_profile,
)
from molexp.errors import ConfigError, SchemaVersionError, UsageError

SPEC_EXAMPLE = """\
version: 1
defaults: {dataset: qm9, epochs: 100, optimizer: {lr: 0.001}}
profiles:
  smoke:       {epochs: 3, batch_size: 8}
  dry-run:     {epochs: 1, skip_heavy_compute: true}
  large-batch: {extends: smoke, batch_size: 64}
"""

SPEC_DEFAULTS = {"dataset": "qm9", "epochs": 100, "optimizer": {"lr": 0.001}}


def write(directory: Path, text: str, name: str = "molcfg.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, name: str = "molcfg.yaml") -> ConfigFile:
    return load_config_file(write(tmp_path, text, name))


def message_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


# --- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("smoke", "smoke"),
        ("dry-run", "dry_run"),
        ("dry_run", "dry_run"),
        ("  large-batch  ", "large_batch"),
        ("Large-Batch", "Large_Batch"),
        ("a--b", "a__b"),
        ("gpu.v100", "gpu.v100"),
    ],
)
def test_normalise_profile_name(raw: str, expected: str) -> None:
    assert normalise_profile_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_normalise_profile_name_refuses_empty(raw: str) -> None:
    with pytest.raises(ConfigError, match="empty profile name"):
        normalise_profile_name(raw)


# --- finding the file -------------------------------------------------------------


def test_config_filenames_order() -> None:
    assert CONFIG_FILENAMES == ("molcfg.yaml", "molcfg.yml", "molcfg.json")


def test_find_none(tmp_path: Path) -> None:
    assert find_config_file(None, tmp_path) is None


@pytest.mark.parametrize(
    ("present", "found"),
    [
        (["molcfg.yaml"], "molcfg.yaml"),
        (["molcfg.yml"], "molcfg.yml"),
        (["molcfg.json"], "molcfg.json"),
        (["molcfg.json", "molcfg.yml"], "molcfg.yml"),
        (["molcfg.json", "molcfg.yml", "molcfg.yaml"], "molcfg.yaml"),
        (["molcfg.json", "molcfg.yaml"], "molcfg.yaml"),
    ],
)
def test_find_in_cwd_in_order(tmp_path: Path, present: list[str], found: str) -> None:
    for name in present:
        write(tmp_path, "{}", name)
    assert find_config_file(None, tmp_path) == tmp_path / found


def test_find_does_not_walk_up(tmp_path: Path) -> None:
    write(tmp_path, "{}")
    child = tmp_path / "sub"
    child.mkdir()
    assert find_config_file(None, child) is None


def test_find_ignores_a_directory_named_like_the_file(tmp_path: Path) -> None:
    (tmp_path / "molcfg.yaml").mkdir()
    write(tmp_path, "{}", "molcfg.yml")
    assert find_config_file(None, tmp_path) == tmp_path / "molcfg.yml"


@pytest.mark.parametrize("name", ["other.yaml", "x.yml", "c.json", "UPPER.YAML"])
def test_find_explicit_relative_to_cwd(tmp_path: Path, name: str) -> None:
    write(tmp_path, "{}", name)
    write(tmp_path, "{}")  # the explicit file wins over the cwd one
    assert find_config_file(Path(name), tmp_path) == tmp_path / name


def test_find_explicit_absolute(tmp_path: Path) -> None:
    path = write(tmp_path, "{}", "elsewhere.yaml")
    other = tmp_path / "cwd"
    other.mkdir()
    assert find_config_file(path, other) == path


def test_find_explicit_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.yaml$"):
        find_config_file(Path("nope.yaml"), tmp_path)


def test_find_explicit_directory(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ConfigError, match="config file not found: .*is a directory"):
        find_config_file(Path("d.yaml"), tmp_path)


@pytest.mark.parametrize("name", ["molcfg.toml", "molcfg", "molcfg.yaml.bak", "cfg.txt"])
def test_find_explicit_bad_suffix(tmp_path: Path, name: str) -> None:
    write(tmp_path, "{}", name)
    with pytest.raises(ConfigError, match="unsupported suffix.*use .yaml, .yml or .json"):
        find_config_file(Path(name), tmp_path)


# --- loading the file -------------------------------------------------------------


def test_load_spec_example(tmp_path: Path) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    assert cfg.path == tmp_path / "molcfg.yaml"
    assert cfg.version == 1
    assert cfg.defaults == SPEC_DEFAULTS
    assert cfg.names() == ["smoke", "dry_run", "large_batch"]
    assert cfg.profiles["large_batch"] == {"extends": "smoke", "batch_size": 64}


@pytest.mark.parametrize(
    ("text", "version", "defaults", "profiles"),
    [
        ("", 1, {}, {}),
        ("# nothing yet\n", 1, {}, {}),
        ("{}", 1, {}, {}),
        ("version: 1\n", 1, {}, {}),
        ("defaults:\nprofiles:\n", 1, {}, {}),
        ("defaults: {a: 1}\n", 1, {"a": 1}, {}),
        ("profiles:\n  smoke:\n", 1, {}, {"smoke": {}}),
        ("profiles: {p: {when: 2026-01-01, flag: on}}\n", 1, {}, {
            "p": {"when": "2026-01-01", "flag": "on"}
        }),
    ],
)  # fmt: skip
def test_load_optional_sections(
    tmp_path: Path,
    text: str,
    version: int,
    defaults: dict[str, Any],
    profiles: dict[str, Any],
) -> None:
    cfg = load(tmp_path, text)
    assert (cfg.version, cfg.defaults, cfg.profiles) == (version, defaults, profiles)


def test_load_json(tmp_path: Path) -> None:
    data = json.loads(json.dumps(yaml_spec_example_as_data()))
    cfg = load(tmp_path, json.dumps(data), "molcfg.json")
    assert cfg.defaults == SPEC_DEFAULTS
    assert cfg.names() == ["smoke", "dry_run", "large_batch"]
    assert resolve_profile(cfg, "large-batch") == {
        "dataset": "qm9",
        "epochs": 3,
        "optimizer": {"lr": 0.001},
        "batch_size": 64,
    }


def yaml_spec_example_as_data() -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": SPEC_DEFAULTS,
        "profiles": {
            "smoke": {"epochs": 3, "batch_size": 8},
            "dry-run": {"epochs": 1, "skip_heavy_compute": True},
            "large-batch": {"extends": "smoke", "batch_size": 64},
        },
    }


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("molcfg.json", '{"a": ', ["malformed JSON at line 1"]),
        ("molcfg.json", '{\n"version": 1,\n"version": 1}', ["duplicate key 'version'"]),
        ("molcfg.json", "[1, 2]", ["top level must be a mapping", "a list"]),
        ("molcfg.yaml", "a: b: c\n", ["malformed YAML at line 1"]),
        ("molcfg.yaml", "profiles:\n  a: {}\n  a: {}\n", ["line 3", "duplicate key 'a'"]),
        ("molcfg.yaml", "- 1\n- 2\n", ["top level must be a mapping", "a list"]),
        ("molcfg.yaml", "just text\n", ["top level must be a mapping", "a string"]),
        ("molcfg.yaml", "3\n", ["top level must be a mapping", "an integer"]),
        ("molcfg.yaml", "smoke: {epochs: 3}\n", ["unknown top-level key 'smoke'"]),
        ("molcfg.yaml", "profile: {}\nextra: 1\n", ["unknown top-level keys 'profile', 'extra'"]),
        ("molcfg.yaml", "version: one\n", ["version must be a positive integer"]),
        ("molcfg.yaml", "version: 0\n", ["version must be a positive integer"]),
        ("molcfg.yaml", "version: true\n", ["version must be a positive integer"]),
        ("molcfg.yaml", "version: 1.0\n", ["version must be a positive integer"]),
        ("molcfg.yaml", "defaults: [1]\n", ["`defaults` must be a mapping, found a list"]),
        ("molcfg.yaml", "defaults: {extends: x}\n", ["`defaults` cannot use `extends`"]),
        ("molcfg.yaml", "profiles: [smoke]\n", ["`profiles` must be a mapping"]),
        ("molcfg.yaml", "profiles: {smoke: 3}\n", ["profile 'smoke' must be a mapping"]),
        ("molcfg.yaml", "profiles: {smoke: [1]}\n", ["profile 'smoke' must be a mapping"]),
        ("molcfg.yaml", "profiles: {1: {}}\n", ["`profiles` has key 1", "strings"]),
        ("molcfg.yaml", "profiles: {'  ': {}}\n", ["empty profile name"]),
        ("molcfg.yaml", "profiles: {a: {extends: 3}}\n", ["'a'", "`extends` must be"]),
        ("molcfg.yaml", "profiles: {a: {extends: [b]}}\n", ["`extends` must be"]),
        ("molcfg.yaml", "profiles: {a: {extends: ''}}\n", ["`extends` must be"]),
        ("molcfg.yaml", "profiles: {a: {extends: }}\n", ["`extends` must be"]),
        ("molcfg.yaml", "profiles: {defaults: {}}\n", ["'defaults' cannot be a profile name"]),
        ("molcfg.yaml", "profiles: {' defaults ': {}}\n", ["cannot be a profile name"]),
        (
            "molcfg.yaml",
            "profiles:\n  dry-run: {}\n  dry_run: {}\n",
            ["profiles 'dry-run' and 'dry_run' both normalise to 'dry_run'"],
        ),
        (
            "molcfg.yaml",
            "profiles:\n  gpu_big: {}\n  ' gpu-big': {}\n",
            ["'gpu_big' and ' gpu-big'", "'gpu_big'"],
        ),
    ],
)
def test_load_errors(tmp_path: Path, name: str, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = message_of(info)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_load_non_utf8(tmp_path: Path) -> None:
    for name in ("molcfg.yaml", "molcfg.json"):
        path = tmp_path / name
        path.write_bytes(b'{"defaults": {"a": "\xff"}}')
        with pytest.raises(ConfigError, match="not valid UTF-8 at line 1"):
            load_config_file(path)


def test_load_newer_version_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 2\ndefaults: {}\n")
    with pytest.raises(SchemaVersionError) as info:
        load_config_file(path)
    message = message_of(info)
    assert str(path) in message
    assert "version 2" in message and "newer molexp" in message
    assert "Upgrade molexp" in message
    assert info.value.exit_code == 3


def test_config_errors_are_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles: [x]\n")
    with pytest.raises(UsageError) as info:
        load_config_file(path)
    assert info.value.exit_code == 2


# --- resolving profiles ---------------------------------------------------------------


SPEC_EXPECTED: list[tuple[str | None, dict[str, Any]]] = [
    (None, SPEC_DEFAULTS),
    ("smoke", {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001}, "batch_size": 8}),
    ("dry-run", {"dataset": "qm9", "epochs": 1, "optimizer": {"lr": 0.001}, "skip_heavy_compute": True}),
    ("dry_run", {"dataset": "qm9", "epochs": 1, "optimizer": {"lr": 0.001}, "skip_heavy_compute": True}),
    (" dry-run ", {"dataset": "qm9", "epochs": 1, "optimizer": {"lr": 0.001}, "skip_heavy_compute": True}),
    ("large-batch", {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001}, "batch_size": 64}),
    ("large_batch", {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001}, "batch_size": 64}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), SPEC_EXPECTED)
def test_resolve_spec_example(tmp_path: Path, name: str | None, expected: dict[str, Any]) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    assert resolve_profile(cfg, name) == expected


def test_resolve_returns_fresh_copies(tmp_path: Path) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    for name in (None, "smoke", "large-batch"):
        result = resolve_profile(cfg, name)
        result["optimizer"]["lr"] = 99
        result["new"] = 1
    assert cfg.defaults == SPEC_DEFAULTS
    assert cfg.profiles["large_batch"] == {"extends": "smoke", "batch_size": 64}
    assert resolve_profile(cfg, "smoke")["optimizer"] == {"lr": 0.001}


CHAIN = """\
defaults: {model: {depth: 2, width: 64, act: relu}, data: {path: /d, splits: [0.8, 0.2]}, tag: base}
profiles:
  a: {model: {depth: 4}, tag: a}
  b: {extends: a, model: {width: 128}, data: {splits: [1.0]}}
  c: {extends: B-like, tag: c}
  B-like: {extends: b, model: {act: gelu}}
  d: {extends: defaults, tag: d}
  e: {extends: ' c ', data: null}
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a", {"model": {"depth": 4, "width": 64, "act": "relu"},
               "data": {"path": "/d", "splits": [0.8, 0.2]}, "tag": "a"}),
        ("b", {"model": {"depth": 4, "width": 128, "act": "relu"},
               "data": {"path": "/d", "splits": [1.0]}, "tag": "a"}),
        ("B_like", {"model": {"depth": 4, "width": 128, "act": "gelu"},
                    "data": {"path": "/d", "splits": [1.0]}, "tag": "a"}),
        ("c", {"model": {"depth": 4, "width": 128, "act": "gelu"},
               "data": {"path": "/d", "splits": [1.0]}, "tag": "c"}),
        ("d", {"model": {"depth": 2, "width": 64, "act": "relu"},
               "data": {"path": "/d", "splits": [0.8, 0.2]}, "tag": "d"}),
        ("e", {"model": {"depth": 4, "width": 128, "act": "gelu"}, "data": None, "tag": "c"}),
    ],
)  # fmt: skip
def test_resolve_chains(tmp_path: Path, name: str, expected: dict[str, Any]) -> None:
    cfg = load(tmp_path, CHAIN)
    result = resolve_profile(cfg, name)
    assert result == expected
    assert "extends" not in result


@pytest.mark.parametrize(
    ("text", "name", "cycle"),
    [
        ("profiles: {a: {extends: a}}\n", "a", "a -> a"),
        ("profiles: {a: {extends: b}, b: {extends: a}}\n", "a", "a -> b -> a"),
        ("profiles: {a: {extends: b}, b: {extends: a}}\n", "b", "b -> a -> b"),
        ("profiles: {a: {extends: b}, b: {extends: c}, c: {extends: a}}\n", "a", "a -> b -> c -> a"),
        ("profiles: {x: {extends: a}, a: {extends: b}, b: {extends: a}}\n", "x", "x -> a -> b -> a"),
        ("profiles: {a-1: {extends: b_1}, b-1: {extends: a_1}}\n", "a-1", "a_1 -> b_1 -> a_1"),
    ],
)  # fmt: skip
def test_resolve_cycle(tmp_path: Path, text: str, name: str, cycle: str) -> None:
    cfg = load(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_profile(cfg, name)
    assert f"profile cycle in {cfg.path}: {cycle}" in message_of(info)


def test_resolve_cycle_elsewhere_does_not_block_other_profiles(tmp_path: Path) -> None:
    cfg = load(tmp_path, "profiles: {ok: {x: 1}, a: {extends: b}, b: {extends: a}}\n")
    assert resolve_profile(cfg, "ok") == {"x": 1}


def test_resolve_unknown_base(tmp_path: Path) -> None:
    cfg = load(tmp_path, "profiles: {smoke: {}, big: {extends: smok}}\n")
    with pytest.raises(ConfigError) as info:
        resolve_profile(cfg, "big")
    message = message_of(info)
    assert message.startswith(f"profile 'big' extends unknown profile 'smok' in {cfg.path}")
    assert "available: smoke, big" in message
    assert "Did you mean 'smoke'?" in message


def test_resolve_unknown_profile(tmp_path: Path) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError) as info:
        resolve_profile(cfg, "smok")
    message = message_of(info)
    assert message.splitlines()[0] == (
        f"unknown profile 'smok' in {cfg.path}; available: smoke, dry_run, large_batch"
    )
    assert message.splitlines()[1] == "Did you mean 'smoke'?"


def test_resolve_unknown_profile_without_close_match(tmp_path: Path) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError) as info:
        resolve_profile(cfg, "zzzzzz")
    assert "\n" not in message_of(info)


def test_resolve_unknown_profile_when_there_are_none(tmp_path: Path) -> None:
    cfg = load(tmp_path, "defaults: {a: 1}\n")
    with pytest.raises(ConfigError, match="it defines no profiles"):
        resolve_profile(cfg, "smoke")


@pytest.mark.parametrize("name", ["defaults", " defaults "])
def test_resolve_defaults_is_not_a_profile(tmp_path: Path, name: str) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError, match="'defaults' is not a profile name"):
        resolve_profile(cfg, name)


def test_resolve_profile_names_are_case_sensitive(tmp_path: Path) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError, match="Did you mean 'smoke'"):
        resolve_profile(cfg, "Smoke")


# --- resolve_config -------------------------------------------------------------------


def test_resolve_config_no_file_no_profile(tmp_path: Path) -> None:
    assert resolve_config(None, tmp_path, None) == ResolvedConfig(None, {}, None)


def test_resolve_config_no_file_overrides_apply_to_empty(tmp_path: Path) -> None:
    resolved = resolve_config(None, tmp_path, None, [("a.b", 1), ("c", "x")])
    assert resolved == ResolvedConfig(None, {"a": {"b": 1}, "c": "x"}, None)


def test_resolve_config_profile_without_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(None, tmp_path, "smoke")
    assert message_of(info) == (
        f"--profile smoke given but no molcfg.yaml/molcfg.yml/molcfg.json in {tmp_path}; "
        "pass --config FILE"
    )


def test_resolve_config_file_without_profile_is_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_EXAMPLE)
    assert resolve_config(None, tmp_path, None) == ResolvedConfig(None, SPEC_DEFAULTS, path)


def test_resolve_config_normalises_the_profile_name(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_EXAMPLE)
    resolved = resolve_config(None, tmp_path, " large-batch ")
    assert resolved.profile == "large_batch"
    assert resolved.source == path
    assert resolved.config["batch_size"] == 64


def test_resolve_config_explicit_file(tmp_path: Path) -> None:
    write(tmp_path, "defaults: {where: cwd}\n")
    other = write(tmp_path, '{"profiles": {"p": {"where": "json"}}}', "other.json")
    resolved = resolve_config(Path("other.json"), tmp_path, "p")
    assert resolved == ResolvedConfig("p", {"where": "json"}, other)


def test_resolve_config_explicit_file_missing(tmp_path: Path) -> None:
    write(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config(Path("missing.yaml"), tmp_path, "smoke")


def test_resolve_config_works_from_monkeypatched_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, SPEC_EXAMPLE)
    monkeypatch.chdir(tmp_path)
    resolved = resolve_config(None, Path.cwd(), "smoke")
    assert resolved.config["epochs"] == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001}, "batch_size": 8}),
        ([("epochs", 5)], {"dataset": "qm9", "epochs": 5, "optimizer": {"lr": 0.001}, "batch_size": 8}),
        ([("optimizer.lr", 0.1)], {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.1}, "batch_size": 8}),
        ([("optimizer.name", "adam")],
         {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001, "name": "adam"}, "batch_size": 8}),
        ([("model.layers", [64, 64])],
         {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 0.001}, "batch_size": 8,
          "model": {"layers": [64, 64]}}),
        ([("optimizer", {"momentum": 0.9})],
         {"dataset": "qm9", "epochs": 3, "optimizer": {"momentum": 0.9}, "batch_size": 8}),
        ([("epochs", 5), ("epochs", 7)],
         {"dataset": "qm9", "epochs": 7, "optimizer": {"lr": 0.001}, "batch_size": 8}),
        ([("optimizer", 1), ("optimizer", {"lr": 2})],
         {"dataset": "qm9", "epochs": 3, "optimizer": {"lr": 2}, "batch_size": 8}),
    ],
)  # fmt: skip
def test_resolve_config_overrides(
    tmp_path: Path, overrides: list[tuple[str, Any]], expected: dict[str, Any]
) -> None:
    write(tmp_path, SPEC_EXAMPLE)
    assert resolve_config(None, tmp_path, "smoke", overrides).config == expected


def test_resolve_config_override_below_scalar(tmp_path: Path) -> None:
    write(tmp_path, SPEC_EXAMPLE)
    with pytest.raises(ConfigError) as info:
        resolve_config(None, tmp_path, "smoke", [("optimizer.lr.warmup", 10)])
    assert message_of(info).startswith(
        "--override 'optimizer.lr.warmup': 'optimizer.lr' is a float (0.001), not a mapping"
    )


def test_resolve_config_override_values_are_not_shared(tmp_path: Path) -> None:
    value = {"layers": [1]}
    resolved = resolve_config(None, tmp_path, None, [("model", value)])
    resolved.config["model"]["layers"].append(2)
    assert value == {"layers": [1]}


def test_resolve_config_newer_version(tmp_path: Path) -> None:
    write(tmp_path, "version: 7\n")
    with pytest.raises(SchemaVersionError, match="version 7"):
        resolve_config(None, tmp_path, None)
