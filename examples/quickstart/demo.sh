#!/usr/bin/env bash
# The quickstart, end to end: a workspace, an experiment with 2 replicas, a
# re-run that does nothing, a profile that gives new runs, a failure and its fix.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
demo=${DEMO_DIR:-$here/../../demo}
rm -rf "$demo" && mkdir -p "$demo" && cd "$demo"
cp "$here/mc.py" "$here/molcfg.yaml" .
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step molexp init lab
cd lab && cp ../mc.py ../molcfg.yaml .
step molexp project create lj --description "2D Lennard-Jones fluid"
step molexp experiment create lj/mc --param temperature=1.0 --param density=0.5 \
  --replicas 2 --command "python mc.py" --workflow mc.py
step molexp run lj/mc
step molexp run lj/mc                  # up to date: nothing runs again
step molexp run lj/mc --profile smoke  # a profile gives new, distinct runs
step molexp ls

echo; echo "# break the script: the next runs fail and keep their logs"
cp mc.py mc.py.orig && sed -i 's/float(params\["temperature"\])/float(params["temprature"])/' mc.py
set +e; step molexp run lj/mc --profile long; echo "exit code: $?"; set -e
failed=$(molexp ls lj/mc --status failed --format ids | head -n 1)
step molexp show "$failed"

echo; echo "# fix it: the failed runs get attempt 2"
mv mc.py.orig mc.py
step molexp run lj/mc --profile long
step molexp show "$failed"
step molexp ls --format csv
