#!/usr/bin/env bash
# e2e: scancel a sweep job mid-sweep, then `seedgrid submit --resume` completes it in a new
# allocation without recomputing any shard that was already done.
source "$(dirname "$0")/lib.sh"
e2e_start_cluster
cd "$E2E_DIR" || exit 1
SWEEP=e2e-resume
cat >sweep.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 400}
seeds: [$(seq -s, 0 39)]
YAML
FLAGS=(--nodes 2 --workers-per-node 2 --time 5)

id1=$("$SG" submit sweep.yaml "${FLAGS[@]}")
log "submitted job $id1"
# Cancel once a few shards are done (40 x 0.4 s on 4 workers is ~4 s of work).
done1=0
for ((i = 0; i < 600; i++)); do
  [[ -f $E2E_REG ]] && done1=$(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'" 2>/dev/null || echo 0)
  ((done1 >= 8)) && break
  state=$(squeue -h -j "$id1" -o %T 2>/dev/null || true)
  [[ -n $state ]] || fail "job $id1 ended before it could be cancelled: $(wait_job "$id1" 1)"
  sleep 0.1
done
((done1 >= 8)) || fail "no progress within 60 s (done: $done1)"
scancel "$id1"
state=$(wait_job "$id1" 60)
log "after scancel at $done1 done: $state"
[[ $state == *"JobState=CANCELLED"* ]] || fail "cancelled job: $state"

# What the cancelled job finished, with every attempt row of those shards.
sql "SELECT id FROM shards WHERE sweep='$SWEEP' AND status='done' ORDER BY id" >done_before.txt
attempt_rows() {
  sql "SELECT a.shard, a.n, a.outcome, a.job_id, s.attempts FROM attempts a JOIN shards s ON s.id=a.shard
       WHERE s.id IN ($(sed "s/.*/'&'/" done_before.txt | paste -sd,)) ORDER BY 1, 2"
}
attempt_rows >attempts_before.txt
ndone=$(wc -l <done_before.txt)
((ndone < 40)) || fail "the sweep finished before the cancel: nothing to resume"
log "done before resume: $ndone/40 ($(sql "SELECT status || '=' || count(*) FROM shards WHERE sweep='$SWEEP' GROUP BY status" | paste -sd' '))"

id2=$("$SG" submit sweep.yaml --resume $SWEEP "${FLAGS[@]}")
log "resume job $id2"
state=$(wait_job "$id2" 120)
log "$state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "resume job: $state"

[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 40 ]] ||
  fail "not all shards done after resume: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
# Done shards were not recomputed: their attempt rows (and charged counts) are unchanged.
attempt_rows >attempts_after.txt
diff attempts_before.txt attempts_after.txt || fail "shards done before the cancel were recomputed"
ran2=$(sql "SELECT count(DISTINCT shard) FROM attempts WHERE job_id='$id2'")
[[ $(sql "SELECT count(*) FROM attempts WHERE job_id='$id2' AND shard IN ($(sed "s/.*/'&'/" done_before.txt | paste -sd,))") == 0 ]] ||
  fail "the resume job ran shards that were done"
log "shards run by the resume job: $ran2 of the $((40 - ndone)) not done"
# (fewer when a shard's file was published just before the cancel: resume adopts it)
((ran2 >= 1 && ran2 <= 40 - ndone)) || fail "the resume job ran $ran2 shards, expected 1..$((40 - ndone))"
[[ $(sql "SELECT value FROM provenance WHERE sweep='$SWEEP' AND key='slurm.job_ids'") == "$id1,$id2" ]] ||
  fail "provenance slurm.job_ids is not $id1,$id2"
e2e_pass
