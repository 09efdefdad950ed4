#!/usr/bin/env bash
# Benchmark (issue 15, BENCHMARKS.md §10): N commands of `sleep 0.2` on the local two-node Slurm
# cluster (slurm/local-cluster.sh: 2 emulated nodes x 4 CPUs), run two ways, interleaved:
#   seedgrid  `seedgrid submit` of a `kind: command` sweep (argv [sleep, "0.2"], N seeds): ONE
#             allocation of 2 nodes x 4 worker ranks (+ the coordinator), registry on;
#   array     a Slurm job array of the same N commands (`sbatch --array=0-(N-1) --wrap 'sleep
#             0.2'`, 1 CPU per task, so 8 run at once: what spd-run does).
# Makespan = wall clock from just before sbatch/submit until the job (every array task) has left
# the queue, polled every 0.1 s with `squeue`; the same clock and poll for both sides. The
# cluster lives in a temp dir; an EXIT trap stops its daemons by PID and removes the dir.
#
# Usage: bench/command/slurm.sh [--seedgrid build/seedgrid] [--shards 200] [--reps 2]
# Needs the Slurm/munge packages (scripts/install-deps); exits 77 without them.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SG=$SRC/build/seedgrid
N=200
REPS=2
while (($#)); do
  case $1 in
    --seedgrid) SG=$2; shift 2 ;;
    --shards) N=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    *) echo "usage: $0 [--seedgrid BIN] [--shards N] [--reps R]" >&2; exit 2 ;;
  esac
done
[[ -x $SG ]] || { echo "seedgrid binary $SG is not executable (--seedgrid)" >&2; exit 2; }
SG=$(cd "$(dirname "$SG")" && pwd)/$(basename "$SG")

# shellcheck source=../../slurm/local-cluster.sh
source "$SRC/slurm/local-cluster.sh"
sg_cluster_available || { echo "SKIP: Slurm/munge not installed (scripts/install-deps)"; exit 77; }

DIR=$(mktemp -d /tmp/sg-bench-slurm.XXXXXX)
cleanup() {
  sg_cluster_stop "$DIR/cluster" >/dev/null 2>&1 || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SEEDGRID_SLURM_NODES=2 SEEDGRID_SLURM_CPUS=4 SEEDGRID_SLURM_PORT=auto SEEDGRID_SLURM_GPUS=0 \
  sg_cluster_start "$DIR/cluster" 2>"$DIR/cluster-start.log" ||
  { cat "$DIR/cluster-start.log" >&2; exit 1; }
export SLURM_CONF=$DIR/cluster/etc/slurm.conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SEEDGRID_PROGRESS=plain
cd "$DIR"

now() { date +%s.%N; }
# wait_gone ID: returns once no task of job ID is in the queue (pending, running or completing).
wait_gone() {
  local t0=$SECONDS
  while [[ -n $(squeue -h -j "$1" -t all -o %i 2>/dev/null | grep -v -e '^$' || true) ]]; do
    local st
    st=$(squeue -h -j "$1" -t all -o %T 2>/dev/null | sort -u | paste -sd, || true)
    [[ $st =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)(,(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL))*$ ]] && return 0
    ((SECONDS - t0 < 600)) || { echo "job $1 still queued after 600 s" >&2; return 1; }
    sleep 0.1
  done
}
# check_done ID: every task of the job ended COMPLETED with exit 0.
check_done() {
  local bad
  bad=$(scontrol show job -o "$1" | grep -v 'JobState=COMPLETED ' | grep -c '^JobId=' || true)
  ((bad == 0)) || { echo "job $1: $bad task(s) not COMPLETED" >&2; scontrol show job -o "$1" | head -3 >&2; return 1; }
}

run_seedgrid() { # REP -> prints makespan seconds
  local spec=$DIR/sg-$1.yaml id t0 t1
  printf 'name: sleep_%s\nout: %s/runs\nkind: command\nseeds: %s\nparams: {argv: [sleep, "0.2"]}\n' \
    "$1" "$DIR" "$N" >"$spec"
  t0=$(now)
  id=$("$SG" submit "$spec" --nodes 2 --workers-per-node 4 --time 10)
  wait_gone "$id"
  t1=$(now)
  check_done "$id"
  local ndone
  ndone=$(sqlite3 -readonly "$DIR/runs/registry.sqlite" \
    "SELECT count(*) FROM shards WHERE sweep='sleep_$1' AND status='done'")
  ((ndone == N)) || { echo "seedgrid rep $1: $ndone of $N shards done" >&2; return 1; }
  echo "$t1 - $t0" | bc -l
}

run_array() { # REP -> prints makespan seconds
  local id t0 t1
  t0=$(now)
  id=$(sbatch --parsable --job-name="arr-$1" --array=0-$((N - 1)) --ntasks=1 --cpus-per-task=1 \
    --time=10 --output=/dev/null --wrap 'sleep 0.2')
  wait_gone "$id"
  t1=$(now)
  check_done "$id"
  echo "$t1 - $t0" | bc -l
}

LOAD0=$(uptime)
declare -a SGT ART
for ((r = 1; r <= REPS; r++)); do
  ART+=("$(run_array "$r")")
  echo "rep $r: array ${ART[-1]} s" >&2
  SGT+=("$(run_seedgrid "$r")")
  echo "rep $r: seedgrid ${SGT[-1]} s" >&2
done
LOAD1=$(uptime)

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
msg=$(median "${SGT[@]}")
mar=$(median "${ART[@]}")
echo
echo "$N x \`sleep 0.2\` on the local 2-node x 4-CPU Slurm cluster, $REPS rep(s) each, interleaved"
echo "load at start: $LOAD0"
echo "load at end:   $LOAD1"
echo
echo "| runner | makespan per rep (s) | median (s) |"
echo "|---|---|---|"
printf '| seedgrid submit (1 allocation, 2 x 4 workers) | %s | %.2f |\n' \
  "$(printf '%.2f ' "${SGT[@]}")" "$msg"
printf '| Slurm job array (%d tasks, 1 CPU each) | %s | %.2f |\n' "$N" \
  "$(printf '%.2f ' "${ART[@]}")" "$mar"
printf '\nratio seedgrid / array: %.2f (goal <= 0.60)\n' "$(echo "$msg / $mar" | bc -l)"
