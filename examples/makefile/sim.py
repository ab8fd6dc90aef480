"""A stand-in simulation for the Makefile example (stdlib only, ~0.3 s).

Reads its parameters and config through molexp's environment and writes its
results to MOLEXP_RESULTS_FILE.  Set SIM_FAIL=<replica> to make that replica
fail (the test uses it to show that a failed run stops make).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

params = json.load(open(os.environ["MOLEXP_PARAMS_FILE"]))
config = json.load(open(os.environ["MOLEXP_CONFIG_FILE"]))
replica = os.environ["MOLEXP_REPLICA"]
if os.environ.get("SIM_FAIL") == replica:
    print(f"replica {replica}: failing on purpose (SIM_FAIL)", file=sys.stderr)
    sys.exit(1)
rng = random.Random(int(os.environ["MOLEXP_SEED"]))
steps = int(config["steps"])
time.sleep(float(config.get("sleep", 0.3)))
energy = sum(rng.gauss(-float(params["temperature"]), 0.1) for _ in range(steps)) / steps
print(f"replica {replica} profile {os.environ['MOLEXP_PROFILE']}: energy {energy:.4f}")
with open(os.environ["MOLEXP_RESULTS_FILE"], "w") as fh:
    json.dump({"energy": round(energy, 5), "steps": steps}, fh)
