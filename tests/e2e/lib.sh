# shellcheck shell=bash
# Shared set-up of the Slurm end-to-end tests (sourced, not run).
#
# Each test gets its own temp dir holding a fresh two-node cluster (slurm/local-cluster.sh, a
# free port base), its spec, output and registry. An EXIT trap stops the daemons by their PIDs
# whatever happens; the dir is removed when the test passes and kept (path printed, with the
# job logs) when it fails. Exit 77 (ctest SKIP_RETURN_CODE) only when the Slurm/munge packages
# are not installed.
#
# Environment: SEEDGRID_BIN (the seedgrid binary; ctest sets it), E2E_KEEP=1 keeps the dir.

set -euo pipefail

E2E_NAME=${E2E_NAME:-$(basename "$0" .sh)}
E2E_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../slurm/local-cluster.sh
source "$E2E_SRC/slurm/local-cluster.sh"

log() { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

if ! sg_cluster_available; then
  echo "SKIP: Slurm is not installed (need Debian packages slurm-wlm and munge: scripts/install-deps)"
  exit 77
fi
for tool in sqlite3 mpirun; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps installs it)"
done
SG=${SEEDGRID_BIN:?set SEEDGRID_BIN to the seedgrid binary}
[[ -x $SG ]] || fail "SEEDGRID_BIN=$SG is not executable"

E2E_DIR=$(mktemp -d "/tmp/sg-e2e-$E2E_NAME.XXXXXX")
E2E_CLUSTER=$E2E_DIR/cluster
E2E_REG=$E2E_DIR/runs/registry.sqlite   # every test's spec has out: $E2E_DIR/runs
E2E_PASSED=0

e2e_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  sg_cluster_stop "$E2E_CLUSTER" >/dev/null 2>&1 || true
  if ((E2E_PASSED)) && [[ ${E2E_KEEP:-0} != 1 ]]; then
    rm -rf "$E2E_DIR"
  else
    if ! ((E2E_PASSED)); then
      local f
      for f in "$E2E_DIR"/runs/*/slurm/job-*.out; do
        [[ -f $f ]] || continue
        echo "----- $f (last 40 lines)"
        tail -n 40 "$f"
      done
      echo "----- slurmctld.log (last 15 lines)"
      tail -n 15 "$E2E_CLUSTER/log/slurmctld.log" 2>/dev/null || true
    fi
    log "kept $E2E_DIR"
  fi
  exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# e2e_start_cluster [FAKE_GPUS_PER_NODE]
e2e_start_cluster() {
  SEEDGRID_SLURM_NODES=2 SEEDGRID_SLURM_CPUS=4 SEEDGRID_SLURM_PORT=auto SEEDGRID_SLURM_GPUS=${1:-0} \
    sg_cluster_start "$E2E_CLUSTER" 2>"$E2E_DIR/cluster-start.log" ||
    { cat "$E2E_DIR/cluster-start.log" >&2; fail "could not start the local Slurm cluster"; }
  export SLURM_CONF=$E2E_CLUSTER/etc/slurm.conf
  # mpirun (the launcher fallback) refuses root without these; srun needs nothing.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # The job inherits this environment (sbatch --export=ALL): plain progress lines in the log.
  export SEEDGRID_PROGRESS=plain
}

# sql "SELECT ...": one read-only query on the test's registry (WAL: fine while a job writes).
sql() { sqlite3 -readonly -cmd '.timeout 5000' "$E2E_REG" "$1"; }

# wait_job ID TIMEOUT: prints "JobId=.. JobState=.. ExitCode=..".
wait_job() {
  local out
  out=$(sg_cluster_wait "$1" "${2:-120}") || true
  [[ -n $out ]] || fail "job $1 did not finish within ${2:-120}s"
  echo "$out"
}

job_log() { echo "$E2E_DIR/runs/$1/slurm/job-$2.out"; }

# Jobs this test's cluster has seen (finished ones stay listed for MinJobAge=300 s).
job_count() { scontrol show job -o 2>/dev/null | grep -c '^JobId=' || true; }

e2e_pass() {
  E2E_PASSED=1
  log "PASS ($SECONDS s)"
}
