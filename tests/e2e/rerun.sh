#!/usr/bin/env bash
# e2e: `seedgrid submit --rerun SWEEP` resubmits only the failed shards, and the mpirun
# launcher (used where srun has no pmix) runs the same layout. Half the shards throw while a
# gate file exists (max_attempts 1): job 1 (SEEDGRID_LAUNCHER=mpirun) exits 3; the gate is
# removed; the --rerun job (no SPEC needed: the registry has it) redoes exactly those, and
# its --chain 1 follow-up finds the sweep complete.
source "$(dirname "$0")/lib.sh"
e2e_start_cluster
cd "$E2E_DIR" || exit 1
SWEEP=e2e-rerun
GATE=$E2E_DIR/broken
touch "$GATE"
cat >sweep.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 100, fail_while_file_exists: $GATE}
grid: {mode: [ok, throw]}
seeds: [0, 1, 2, 3, 4, 5]
resources: {max_attempts: 1}
YAML
FLAGS=(--nodes 2 --workers-per-node 2 --time 5)

id1=$(SEEDGRID_LAUNCHER=mpirun "$SG" submit sweep.yaml "${FLAGS[@]}")
state=$(wait_job "$id1" 120)
log "job $id1 (mpirun): $state"
LOG1=$(job_log $SWEEP "$id1")
grep -q '5 ranks = 1 coordinator + 2 nodes x 2 workers on node1 node2; launcher mpirun' "$LOG1" ||
  fail "job 1 did not use the mpirun launcher layout"
[[ $state == *"JobState=FAILED ExitCode=3:0"* ]] || fail "job 1 should exit 3 (failed shards): $state"
grep -q 'seedgrid exited with code 3' "$LOG1" || fail "job log lacks 'exited with code 3'"
grep -q -- "--rerun $SWEEP" "$LOG1" || fail "job log lacks the rerun command"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='failed'") == 6 ]] ||
  fail "expected 6 failed shards: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
sql "SELECT s.id, s.attempts, (SELECT count(*) FROM attempts a WHERE a.shard=s.id)
     FROM shards s WHERE s.sweep='$SWEEP' AND s.status='done' ORDER BY s.id" >done_before.txt

# Resuming (not rerunning) a sweep whose only unfinished shards have failed starts no ranks:
# the job exits 3 at once and names the --rerun command.
idr=$("$SG" submit sweep.yaml --resume $SWEEP "${FLAGS[@]}")
state=$(wait_job "$idr" 60)
[[ $state == *"JobState=FAILED ExitCode=3:0"* ]] || fail "resume of a failed-only sweep: $state"
grep -q "has only failed shards left (6); rerun them with: .* --rerun $SWEEP" "$(job_log $SWEEP "$idr")" ||
  fail "the resume job did not point at --rerun"
[[ $(sql "SELECT count(*) FROM attempts WHERE job_id='$idr'") == 0 ]] || fail "the resume job ran shards"

rm -f "$GATE"
mapfile -t ids < <("$SG" submit --rerun $SWEEP --registry "$E2E_REG" --nodes 2 --workers-per-node 2 --time 5 --chain 1)
((${#ids[@]} == 2)) || fail "expected 2 job ids (rerun + 1 chained), got: ${ids[*]:-none}"
id2=${ids[0]}
state=$(wait_job "$id2" 120)
log "rerun job $id2: $state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "rerun job: $state"
state=$(wait_job "${ids[1]}" 60)
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "chained rerun job: $state"
grep -q "sweep $SWEEP is complete: nothing to do" "$(job_log $SWEEP "${ids[1]}")" ||
  fail "the chained rerun job did not see the sweep complete"
grep -q 'launcher srun' "$(job_log $SWEEP "$id2")" || fail "rerun job did not pick srun (pmix available)"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 12 ]] ||
  fail "not all shards done after rerun: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
sql "SELECT s.id, s.attempts, (SELECT count(*) FROM attempts a WHERE a.shard=s.id)
     FROM shards s WHERE s.id IN (SELECT id FROM shards WHERE sweep='$SWEEP' AND json_extract(params, '$.mode')='ok')
     ORDER BY s.id" >done_after.txt
diff done_before.txt done_after.txt || fail "--rerun recomputed shards that were done"
e2e_pass
