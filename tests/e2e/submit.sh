#!/usr/bin/env bash
# e2e: `seedgrid submit` runs a 40-shard chaos sweep as ONE allocation on two emulated nodes
# (srun --mpi=pmix, 1 coordinator + 2 x 2 workers), with one --chain follow-up that finds the
# sweep complete and exits 0 at once. Also: an invalid spec exits 2 and queues nothing, and
# resubmitting the spec grown by 4 seeds runs only the 4 new shards.
source "$(dirname "$0")/lib.sh"
e2e_start_cluster
cd "$E2E_DIR" || exit 1
SWEEP=e2e-submit

cat >bad.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 200, no_such_param: 1}
seeds: [0]
YAML
rc=0
"$SG" submit bad.yaml --nodes 2 --workers-per-node 2 --time 5 >bad.out 2>&1 || rc=$?
((rc == 2)) || { cat bad.out; fail "invalid spec: exit $rc, expected 2"; }
grep -q no_such_param bad.out || fail "invalid spec: the error does not name the bad key"
(($(job_count) == 0)) || fail "an invalid spec queued a job"
[[ ! -e $E2E_REG ]] || fail "an invalid spec created the registry"

cat >sweep.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 200}
seeds: [$(seq -s, 0 39)]
YAML
"$SG" submit sweep.yaml --nodes 2 --workers-per-node 2 --time 5 --print >print.out
grep -q '^#SBATCH --nodes=2$' print.out || fail "--print: no --nodes=2 directive"
(($(job_count) == 0)) || fail "--print queued a job"

mapfile -t ids < <("$SG" submit sweep.yaml --nodes 2 --workers-per-node 2 --time 5 --chain 1)
((${#ids[@]} == 2)) || fail "expected 2 job ids (sweep + 1 chained), got: ${ids[*]:-none}"
log "submitted jobs ${ids[*]}"
state=$(wait_job "${ids[0]}" 120)
log "$state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "sweep job: $state"
state=$(wait_job "${ids[1]}" 60)
log "$state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "chained job: $state"
(($(job_count) == 2)) || fail "expected exactly 2 jobs in the cluster (one per allocation), saw $(job_count)"

LOG1=$(job_log $SWEEP "${ids[0]}")
LOG2=$(job_log $SWEEP "${ids[1]}")
grep -q '5 ranks = 1 coordinator + 2 nodes x 2 workers on node1 node2; launcher srun' "$LOG1" ||
  fail "job log does not show the srun layout"
grep -q 'seedgrid exited with code 0' "$LOG1" || fail "job log lacks the exit line"
grep -q 'is complete (40 shards done): nothing to do' "$LOG2" || fail "the chained job did not see the sweep complete"

# Registry: every shard done at its first attempt, work spread over the workers of both nodes.
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP'") == 40 ]] || fail "registry: not 40 shards"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 40 ]] ||
  fail "registry: not all 40 shards done: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
[[ $(sql "SELECT count(*) FROM attempts WHERE outcome='ok' AND n=1 AND job_id='${ids[0]}'") == 40 &&
  $(sql "SELECT count(*) FROM attempts") == 40 ]] ||
  fail "registry: expected one ok attempt per shard, all in job ${ids[0]}: $(sql "SELECT n, outcome, job_id, count(*) FROM attempts GROUP BY 1,2,3")"
ranks=$(sql "SELECT count(DISTINCT a.rank) FROM attempts a JOIN shards s ON s.id=a.shard WHERE s.sweep='$SWEEP'")
((ranks == 4)) || fail "expected work on 4 worker ranks, saw $ranks"
[[ $(sql "SELECT value FROM provenance WHERE sweep='$SWEEP' AND key='slurm.job_ids'") == "${ids[0]},${ids[1]}" ]] ||
  fail "provenance slurm.job_ids is not ${ids[0]},${ids[1]}"
[[ $(sql "SELECT count(*) FROM slurm_jobs WHERE sweep='$SWEEP'") == 2 ]] || fail "slurm_jobs: not 2 rows"

# Results: one published HDF5 file per shard and the sweep's results.h5 linking them.
nfiles=$(find "$E2E_DIR/runs/$SWEEP" -name '*.h5' ! -name results.h5 | wc -l)
((nfiles == 40)) || fail "expected 40 shard files, found $nfiles"
[[ -s $E2E_DIR/runs/$SWEEP/results.h5 ]] || fail "no results.h5"
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  links=$(/usr/bin/python3 - "$E2E_DIR/runs/$SWEEP/results.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:  # group per stage, an external link per done shard
    print(sum(1 for st in f for sid in f[st] if "chaos" in f[st][sid]))
PY
)
  ((links == 40)) || fail "results.h5 reaches $links shard groups, expected 40"
fi
# The same sweep grown by 4 seeds (an override): the job must not trust "all registry shards
# done" (the new shards are not in the registry yet); it runs exactly the 4 new ones.
id3=$("$SG" submit sweep.yaml "seeds=[$(seq -s, 0 43)]" --resume $SWEEP --nodes 2 --workers-per-node 2 --time 5)
state=$(wait_job "$id3" 120)
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "grown sweep job: $state"
[[ $(sql "SELECT count(*) FROM attempts WHERE job_id='$id3'") == 4 &&
  $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 44 ]] ||
  fail "the grown sweep did not run exactly its 4 new shards: $(sql "SELECT job_id, count(*) FROM attempts GROUP BY 1")"
e2e_pass
