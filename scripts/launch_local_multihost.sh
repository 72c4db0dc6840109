#!/usr/bin/env bash
# Start N CPU processes of `python -m audiogs_jax.train` on this machine, joined by
# jax.distributed, to try multi-host training without a cluster:
#
#     scripts/launch_local_multihost.sh 2 --config configs/smoke.py --workdir runs/mh
#
# Every process gets JAX_COORDINATOR_ADDRESS=localhost:PORT, JAX_NUM_PROCESSES=N and
# its JAX_PROCESS_ID (which audiogs_jax.train turns into jax.distributed.initialize),
# and JAX_PLATFORMS=cpu. Each process has one CPU device unless XLA_FLAGS says
# otherwise (e.g. XLA_FLAGS=--xla_force_host_platform_device_count=2). PORT is
# $AUDIOGS_COORDINATOR_PORT, or a free port. Process 0 prints; the others' output goes
# to $AUDIOGS_LOG_DIR/process_<i>.log (default: a temporary folder), shown if one
# fails. Waits for all; if one fails, stops the others and exits with its status.
# SIGINT/SIGTERM to this script stops every process: SIGTERM (training saves its
# state and stops), then SIGKILL for any still alive 10 s later; none outlives it.
set -u

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ || "$1" -lt 1 ]]; then
  echo "usage: $0 N [python -m audiogs_jax.train arguments...]" >&2
  exit 2
fi
n=$1
shift

port=${AUDIOGS_COORDINATOR_PORT:-$(python -c \
  'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')}
logs=${AUDIOGS_LOG_DIR:-$(mktemp -d -t audiogs_multihost.XXXXXX)}
mkdir -p "$logs"

pids=()
for ((i = 0; i < n; i++)); do
  log="$logs/process_$i.log"
  if ((i == 0)); then log=/dev/stdout; fi
  JAX_PLATFORMS=cpu JAX_COORDINATOR_ADDRESS="localhost:$port" JAX_NUM_PROCESSES="$n" \
    JAX_PROCESS_ID="$i" python -m audiogs_jax.train "$@" >"$log" 2>&1 &
  pids+=($!)
done
live=("${pids[@]}")

stop_all() {  # send signal $1 to the processes still running
  for p in "${live[@]+"${live[@]}"}"; do kill "-$1" "$p" 2>/dev/null; done
}
any_alive() {
  for p in "${live[@]+"${live[@]}"}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
shutdown() {  # on SIGINT/SIGTERM: TERM (each saves and stops), KILL after 10 s
  trap '' INT TERM
  echo "launch_local_multihost: stopping ${#live[@]} process(es)" >&2
  stop_all TERM
  local t
  for ((t = 0; t < 20; t++)); do any_alive || break; sleep 0.5; done
  # A process blocked in a collective with a stopped peer may not act on SIGTERM.
  if any_alive; then stop_all KILL; fi
  wait 2>/dev/null
  exit 130
}
trap shutdown INT TERM

status=0
stopping=0
stopped_at=0
while ((${#live[@]} > 0)); do
  still=()
  for p in "${live[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      still+=("$p")
      continue
    fi
    wait "$p"
    rc=$?
    if ((rc != 0 && status == 0)); then
      status=$rc
      echo "launch_local_multihost: a process exited with status $rc; stopping the others" >&2
      stop_all TERM
      stopping=1
      stopped_at=$SECONDS
    fi
  done
  live=("${still[@]+"${still[@]}"}")
  # A process blocked in a collective with a dead peer may not act on SIGTERM.
  if ((stopping && SECONDS - stopped_at >= 10)); then stop_all KILL; fi
  if ((${#live[@]} > 0)); then sleep 0.5; fi
done

if ((status != 0)); then
  for ((i = 1; i < n; i++)); do
    echo "----- process $i ($logs/process_$i.log), last lines:" >&2
    tail -n 30 "$logs/process_$i.log" >&2
  done
fi
exit "$status"
