#!/usr/bin/env bash
# Run the 2-process smoke job (scripts/launch_local_multihost.sh 2 --config
# configs/smoke.py) N times in a row (default 10), each into a fresh workdir, and
# check every run: exit status 0, every checkpoint step committed (the step's
# folder under checkpoints/ and best/ holds commit_success.txt, and the last
# step is there),
# one committed best checkpoint, no orbax temporary folder (*.orbax-checkpoint-tmp*)
# left anywhere, and each step logged once in metrics.jsonl. A multi-host save
# that fails now and then is a bug, not something to retry: any failed run makes
# the script exit 1 (after the remaining runs), with that run's logs kept.
#
#     scripts/multihost_repeat.sh [N] [extra python -m audiogs_jax.train arguments]
#
# Work goes to $AUDIOGS_REPEAT_DIR (default: a temporary folder); the smoke scene
# is cached under it (simulated on the first run). Not part of the test suite:
# each run takes about a minute on 2 CPU cores.
set -u
cd "$(dirname "$0")/.."

n=10
if [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]]; then n=$1; shift; fi
base=${AUDIOGS_REPEAT_DIR:-$(mktemp -d -t audiogs_repeat.XXXXXX)}
mkdir -p "$base"
steps=$(python -c '
from audiogs_jax.config import load_config_file
print(load_config_file("configs/smoke.py").train.steps)')

check_run() {  # $1: workdir; prints what is wrong, returns 1 if anything is
  local wd=$1 bad=0 s
  local tmp
  tmp=$(find "$wd" -name '*.orbax-checkpoint-tmp*' 2>/dev/null)
  if [[ -n "$tmp" ]]; then echo "  uncommitted orbax folder(s): $tmp"; bad=1; fi
  # Every step folder committed, and the last step's among them.
  for d in "$wd"/checkpoints/* "$wd"/best/*; do
    if [[ -d "$d" && ! -f "$d/commit_success.txt" ]]; then
      echo "  ${d#$wd/} is not committed"; bad=1
    fi
  done
  if [[ ! -f "$wd/checkpoints/$steps/commit_success.txt" ]]; then
    echo "  checkpoints/$steps (the last step) is missing"; bad=1
  fi
  local best
  best=$(find "$wd/best" -mindepth 2 -maxdepth 2 -name commit_success.txt 2>/dev/null | wc -l)
  if ((best != 1)); then echo "  best/: $best committed checkpoints, expected 1"; bad=1; fi
  if ! python - "$wd/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = [(r["step"], r["split"]) for r in rows]
sys.exit(0 if keys and len(keys) == len(set(keys)) else 1)
EOF
  then echo "  metrics.jsonl: missing or repeated steps"; bad=1; fi
  return $bad
}

failed=0
for ((i = 1; i <= n; i++)); do
  wd="$base/run_$i"
  logs="$base/logs_$i"
  rm -rf "$wd" "$logs"
  mkdir -p "$logs"
  t0=$SECONDS
  AUDIOGS_LOG_DIR="$logs" scripts/launch_local_multihost.sh 2 --config configs/smoke.py \
    --workdir "$wd" --no-progress --config.data.root="$base/cache" "$@" \
    >"$logs/process_0.log" 2>&1
  rc=$?
  problems=$( (( rc == 0 )) || echo "  exit status $rc"; check_run "$wd")
  if [[ -z "$problems" ]]; then
    echo "run $i/$n: ok ($((SECONDS - t0)) s)"
  else
    echo "run $i/$n: FAILED ($((SECONDS - t0)) s; logs in $logs)"
    echo "$problems"
    failed=$((failed + 1))
  fi
done
echo "$((n - failed))/$n runs complete with every checkpoint committed ($base)"
((failed == 0))
