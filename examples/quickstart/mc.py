"""A small Metropolis Monte Carlo of a 2D Lennard-Jones fluid.

Launched by `molexp run`: reads its parameters and config through molexp's
environment, writes results to MOLEXP_RESULTS_FILE and a trajectory summary to
the run's artifacts.  Pure Python, a second or less per run.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys


def energy_of(i: int, pos: list[tuple[float, float]], box: float, rc2: float) -> float:
    xi, yi = pos[i]
    e = 0.0
    for j, (xj, yj) in enumerate(pos):
        if j == i:
            continue
        dx = (xi - xj + box / 2) % box - box / 2
        dy = (yi - yj + box / 2) % box - box / 2
        r2 = dx * dx + dy * dy
        if r2 < rc2:
            inv6 = 1.0 / (r2 * r2 * r2)
            e += 4.0 * (inv6 * inv6 - inv6)
    return e


def main() -> int:
    params = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
    config = json.load(open(os.environ["MOLEXP_CONFIG_FILE"]))
    temperature = float(params["temperature"])
    density = float(params["density"])
    n = int(config.get("particles", 16))
    sweeps = int(config.get("sweeps", 200))
    step = float(config.get("max_step", 0.2))
    rng = random.Random(int(os.environ["MOLEXP_SEED"]))

    box = math.sqrt(n / density)
    side = math.ceil(math.sqrt(n))
    pos = [((k % side + 0.5) * box / side, (k // side + 0.5) * box / side) for k in range(n)]
    rc2 = 2.5**2
    accepted = 0
    energies = []
    for sweep in range(sweeps):
        for i in range(n):
            old = pos[i]
            e_old = energy_of(i, pos, box, rc2)
            pos[i] = ((old[0] + rng.uniform(-step, step)) % box, (old[1] + rng.uniform(-step, step)) % box)
            e_new = energy_of(i, pos, box, rc2)
            if e_new <= e_old or rng.random() < math.exp(-(e_new - e_old) / temperature):
                accepted += 1
            else:
                pos[i] = old
        total = sum(energy_of(i, pos, box, rc2) for i in range(n)) / 2
        energies.append(total / n)
    tail = energies[len(energies) // 2 :]
    results = {
        "energy_per_particle": round(sum(tail) / len(tail), 5),
        "acceptance": round(accepted / (sweeps * n), 4),
    }
    print(f"T={temperature} rho={density} N={n} sweeps={sweeps}: {results}")
    with open(os.environ["MOLEXP_RESULTS_FILE"], "w") as fh:
        json.dump(results, fh)
    with open(os.path.join(os.environ["MOLEXP_RUN_DIR"], "artifacts", "energies.json"), "w") as fh:
        json.dump(energies, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
