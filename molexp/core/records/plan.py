"""Turn an experiment and a selection into the runs to consider (SPEC §9).

replicas × grid points → :class:`RunSpec`, each with its deterministic id from
:mod:`molexp.core.model.identity`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molexp.core.model import identity
from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.records.profiles import ResolvedConfig
    from molexp.core.records.workspace import Experiment


class RunSpec(NamedTuple):
    """Everything that defines one derived run."""

    project: str
    experiment: str
    params: dict[str, Any]
    replica: int
    seed: int
    profile: str | None
    config: dict[str, Any]
    config_hash: str
    run_id: str

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.experiment}/{self.run_id}"


def effective_params(
    base: dict[str, Any], assignments: Sequence[tuple[str, Any]]
) -> dict[str, Any]:
    """``base`` with ``--param``/grid assignments (dotted keys) applied in order."""
    from molexp.core.model.values import set_dotted

    params = copy.deepcopy(base)
    for key, value in assignments:
        set_dotted(params, key, value, what="--param")
    return identity.normalise(params, "params")  # type: ignore[no-any-return]


def param_paths(params: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of ``params`` as a dotted path, nested mappings included:
    ``{"opt": {"lr": 1}}`` -> ``["opt", "opt.lr"]``."""
    paths: list[str] = []
    for key, value in params.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths.extend(param_paths(value, path + "."))
    return paths


def check_keys(exp: Experiment, keys: Sequence[str]) -> None:
    """Refuse a ``--param``/``--grid`` key the experiment does not have (SPEC §15):
    a typo would otherwise plan new runs silently.  ``--new-param`` skips this."""
    known = param_paths(exp.params)
    for key in dict.fromkeys(keys):
        if key in known:
            continue
        from difflib import get_close_matches

        close = get_close_matches(key, known, n=1)
        have = f"its params are {', '.join(known)}" if known else "it has no params"
        lead = f"Did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"{key!r} is not a param of {exp.ref} ({have})",
            f"{lead}Pass --new-param if a new key is meant (it gives new runs).",
        )


def check_replicas(exp: Experiment, replicas: Sequence[int] | None) -> list[int]:
    count = exp.replicas
    if not replicas:
        return list(range(count))
    chosen: list[int] = []
    for r in replicas:
        if not 0 <= r < count:
            raise UsageError(
                f"--replica {r} is out of range: {exp.ref} has replicas 0..{count - 1}"
            )
        if r not in chosen:
            chosen.append(r)
    return chosen


def make_spec(
    exp: Experiment, params: dict[str, Any], replica: int, resolved: ResolvedConfig
) -> RunSpec:
    seed = exp.seed_for(replica)
    derived = identity.derive(exp.ref, params, replica, seed, resolved.profile, resolved.config)
    return RunSpec(
        project=exp.project.name,
        experiment=exp.name,
        params=params,
        replica=replica,
        seed=seed,
        profile=resolved.profile,
        config=identity.normalise(resolved.config, "config"),
        config_hash=derived.config_hash,
        run_id=derived.run_id,
    )


def plan(
    exp: Experiment,
    resolved: ResolvedConfig,
    replicas: Sequence[int] | None = None,
    param_assignments: Sequence[tuple[str, Any]] = (),
    grid: Sequence[tuple[str, Sequence[Any]]] = (),
    points: Sequence[Sequence[tuple[str, Any]]] = (),
    new_param: bool = False,
) -> list[RunSpec]:
    """One spec per point and replica, in a stable order, without duplicates.

    The points are ``points`` (explicit ones, e.g. from a grid file; default one
    empty point) times the cartesian product of ``grid``; each point's assignments
    apply after ``param_assignments``.  Keys the experiment lacks are refused
    unless ``new_param``.
    """
    chosen = check_replicas(exp, replicas)
    keys = [key for key, _ in grid]
    if not new_param:
        check_keys(
            exp, [k for k, _ in param_assignments] + keys + [k for p in points for k, _ in p]
        )
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise UsageError(f"--grid names a key twice: {', '.join(dupes)}")
    specs: list[RunSpec] = []
    seen: set[str] = set()
    products = itertools.product(points or [()], itertools.product(*(v for _, v in grid)))
    for explicit, point in products:
        clash = sorted({k for k, _ in explicit} & set(keys))
        if clash:
            raise UsageError(
                f"grid key {clash[0]!r} is set both by a listed point and by a grid of values",
                "Give each key either in the points list or as a grid, not both.",
            )
        params = effective_params(exp.params, [*param_assignments, *explicit, *zip(keys, point)])
        for replica in chosen:
            spec = make_spec(exp, params, replica, resolved)
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                specs.append(spec)
    return specs


class GridFile(NamedTuple):
    """A sweep read from ``--grid-file``: a grid of values and/or explicit points."""

    grid: list[tuple[str, list[Any]]]
    points: list[list[tuple[str, Any]]]


def _grid_key(key: Any, source: str) -> str:
    segments = key.split(".") if isinstance(key, str) else []
    if not segments or any(not s.strip() for s in segments):
        raise UsageError(
            f"{source}: {key!r} is not a parameter name; keys are names or dotted paths (a.b.c)"
        )
    return ".".join(s.strip() for s in segments)


def read_grid_file(path: Path) -> GridFile:
    """Read a sweep file (YAML, SPEC §7 values).

    Either a mapping ``KEY: [V1, V2, ...]`` (cartesian product; a value that is not
    a list is a single value, so one list-valued point is ``[[64, 64]]``), or a
    list of mappings ``- {KEY: VALUE, ...}``, one explicit point each.
    """
    from molexp.core.model.yaml12 import load_yaml

    source = str(path)
    try:
        data = load_yaml(path.read_bytes(), source)
    except FileNotFoundError:
        raise UsageError(f"--grid-file {source}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--grid-file {source}: is a directory, not a YAML file") from None
    if isinstance(data, dict) and data:
        grid: list[tuple[str, list[Any]]] = []
        for key, values in data.items():
            name = _grid_key(key, source)
            values = values if isinstance(values, list) else [values]
            if not values:
                raise UsageError(f"{source}: {name} has an empty list of values")
            grid.append((name, values))
        return GridFile(grid, [])
    if isinstance(data, list) and data and all(isinstance(p, dict) for p in data):
        points = [[(_grid_key(k, source), v) for k, v in p.items()] for p in data]
        return GridFile([], points)
    raise UsageError(
        f"{source}: a sweep file is a mapping KEY: [VALUES...] or a list of mappings "
        "(one point each)",
        "Example: `lr: [0.001, 0.0001]` on one line per parameter.",
    )


def plan_one(
    exp: Experiment,
    replica: int,
    resolved: ResolvedConfig,
    params: dict[str, Any],
    new_param: bool = False,
) -> RunSpec:
    check_replicas(exp, [replica])
    if not new_param:
        check_keys(exp, list(params))
    merged = effective_params(exp.params, list(params.items()))
    return make_spec(exp, merged, replica, resolved)
