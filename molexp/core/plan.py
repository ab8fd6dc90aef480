"""Turn an experiment and a selection into the runs to consider (SPEC §9).

replicas × grid points → :class:`RunSpec`, each with its deterministic id from
:mod:`molexp.core.identity`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from molexp.core import identity
from molexp.errors import UsageError

if TYPE_CHECKING:
    from molexp.core.profiles import ResolvedConfig
    from molexp.core.workspace import Experiment


@dataclass(frozen=True)
class RunSpec:
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
    from molexp.core.values import set_dotted

    params = copy.deepcopy(base)
    for key, value in assignments:
        set_dotted(params, key, value, what="--param")
    return identity.normalise(params, "params")  # type: ignore[no-any-return]


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
    digest = identity.config_hash(resolved.config)
    key = identity.run_key(exp.ref, params, replica, seed, resolved.profile, digest)
    run_id = identity.xxh3_128_hex(identity.canonical_json(key))[: identity.RUN_ID_LENGTH]
    return RunSpec(
        project=exp.project.name,
        experiment=exp.name,
        params=params,
        replica=replica,
        seed=seed,
        profile=resolved.profile,
        config=identity.normalise(resolved.config, "config"),
        config_hash=digest,
        run_id=run_id,
    )


def plan(
    exp: Experiment,
    resolved: ResolvedConfig,
    replicas: Sequence[int] | None = None,
    param_assignments: Sequence[tuple[str, Any]] = (),
    grid: Sequence[tuple[str, Sequence[Any]]] = (),
) -> list[RunSpec]:
    """One spec per grid point and replica, in a stable order, without duplicates."""
    chosen = check_replicas(exp, replicas)
    keys = [key for key, _ in grid]
    if len(set(keys)) != len(keys):
        raise UsageError(f"--grid names a key twice: {', '.join(keys)}")
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for point in itertools.product(*(values for _, values in grid)):
        params = effective_params(exp.params, [*param_assignments, *zip(keys, point)])
        for replica in chosen:
            spec = make_spec(exp, params, replica, resolved)
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                specs.append(spec)
    return specs


def plan_one(
    exp: Experiment, replica: int, resolved: ResolvedConfig, params: dict[str, Any]
) -> RunSpec:
    check_replicas(exp, [replica])
    merged = effective_params(exp.params, list(params.items()))
    return make_spec(exp, merged, replica, resolved)
