#!/usr/bin/env bash
# Smoke-test a simulation in CI with molexp: a throwaway workspace, the smoke
# profile, JSON for the checks, and as the job's artifact a bundle of every
# record and log (import it on a laptop with `molexp import`) and an HTML report
# of the runs (table, replicas aggregated, plot; opens from disk).
#
# Run it from the directory holding mc.py and molcfg.yaml (your repository's
# root); github-actions.yml beside this file calls it. Exit status: 0 when
# every run succeeded, else molexp's (1 a run failed, 2 bad input, 3 the
# workspace refuses).
set -euo pipefail
export NO_COLOR=1     # plain logs (molexp also stays plain when not on a terminal)
exec </dev/null       # no prompts: a molexp command never waits for input here

WORKSPACE=${WORKSPACE:-ci-lab}
PROFILE=${PROFILE:-smoke}
OUT=${OUT:-molexp-out}
mkdir -p "$OUT"

molexp init "$WORKSPACE" --name ci
export MOLEXP_WORKSPACE="$PWD/$WORKSPACE"   # every molexp below uses it
molexp project create lj
molexp experiment create lj/mc --param temperature=1.0 --param density=0.5 \
  --replicas 2 --command "python3 mc.py" --workflow mc.py

# One JSON object per run on stdout; the simulation's own output goes to stderr.
status=0
molexp run lj/mc --profile "$PROFILE" --jobs 2 --json > "$OUT/runs.jsonl" || status=$?

# Every record as JSON: print what failed (with its stderr), check the results.
molexp ls lj/mc --format json > "$OUT/runs.json"
python3 - "$OUT/runs.json" <<'PY'
import json, os, sys

for run in json.load(open(sys.argv[1])):
    ref = f"{run['project']}/{run['experiment']}/{run['id']}"
    if run["status"] != "succeeded":
        n = run["attempts"][-1]["n"]
        log = os.path.join(os.environ["MOLEXP_WORKSPACE"], "projects", run["project"],
                           "experiments", run["experiment"], "runs", run["id"],
                           "attempts", str(n), "stderr.log")
        print(f"{ref}: {run['status']}; stderr of attempt {n}:\n{open(log).read()}")
        continue
    energy = run["results"]["energy_per_particle"]
    print(f"{ref}: energy per particle {energy}")
    assert -4.0 < energy < 0.0, f"{ref}: energy {energy} out of range"
PY

molexp ls --format csv > "$OUT/runs.csv"
molexp export lj -o "$OUT/lj.tar.gz"
# The experiment page as one self-contained HTML file: open it from the artifact.
molexp report lj/mc -o "$OUT/report.html"
exit "$status"
