#!/usr/bin/env bash
# e2e: the walltime warning. A job with --time 1 and --signal USR1@20 gets SIGUSR1 from Slurm
# (B: the batch shell) 10-40 s in: Slurm checks time limits every 30 s and sends the warning
# up to 30 s early, so never in the first 10 s, by which time the shards are in flight. The
# script forwards it to the coordinator, whose in-flight shards (chaos `hang` while a gate
# file exists) become preempted; the job exits 4, logged. The --chain 1 follow-up (afterany)
# resumes and finishes the sweep; preempted attempts are not charged.
source "$(dirname "$0")/lib.sh"
e2e_start_cluster
cd "$E2E_DIR" || exit 1
SWEEP=e2e-walltime
GATE=$E2E_DIR/hold-shards
touch "$GATE"
cat >sweep.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 100, mode: hang, fail_while_file_exists: $GATE}
seeds: [$(seq -s, 0 11)]
YAML
mapfile -t ids < <("$SG" submit sweep.yaml --nodes 2 --workers-per-node 2 --time 1 --signal USR1@20 --chain 1)
((${#ids[@]} == 2)) || fail "expected 2 job ids, got: ${ids[*]:-none}"
log "submitted jobs ${ids[*]} (waiting for Slurm's walltime warning)"
LOG1=$(job_log $SWEEP "${ids[0]}")

# Open the gate as soon as the warning is forwarded: the hanging shards of job 1 are already
# running (and get preempted); those of the follow-up job start after the gate is gone.
for ((i = 0; i < 900; i++)); do
  grep -q 'got SIGUSR1 (walltime near): forwarded to the coordinator' "$LOG1" 2>/dev/null && break
  [[ -n $(squeue -h -j "${ids[0]}" -o %T 2>/dev/null) ]] || break
  sleep 0.1
done
rm -f "$GATE"
grep -q 'forwarded to the coordinator' "$LOG1" || fail "no walltime signal forwarded within 90 s"
log "walltime warning forwarded after $SECONDS s"

state=$(wait_job "${ids[0]}" 60)
log "$state"
[[ $state == *"JobState=FAILED ExitCode=4:0"* ]] || fail "job 1 should end with seedgrid's exit 4: $state"
grep -q 'seedgrid exited with code 4: preempted' "$LOG1" || fail "job log lacks 'exited with code 4'"
grep -q -- "--resume $SWEEP" "$LOG1" || fail "job log lacks the resume command"
npre=$(sql "SELECT count(*) FROM attempts a JOIN shards s ON s.id=a.shard
            WHERE s.sweep='$SWEEP' AND a.outcome='preempted' AND a.job_id='${ids[0]}'")
((npre >= 4)) || fail "expected >= 4 preempted attempts (one per worker), saw $npre"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status IN ('failed','done')") == 0 ]] ||
  fail "job 1 should have finished or failed nothing: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
log "job 1: $npre in-flight shards preempted"

state=$(wait_job "${ids[1]}" 90)
log "$state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "follow-up job: $state"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 12 ]] ||
  fail "not all 12 shards done: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
# Preempted attempts are recorded but not charged: a shard preempted in job 1 has the same
# charged count as one that ran only in job 2, and its ok attempt came from job 2.
[[ $(sql "SELECT count(DISTINCT attempts) FROM shards WHERE sweep='$SWEEP'") == 1 ]] ||
  fail "a preempted attempt was charged: $(sql "SELECT id, attempts FROM shards")"
[[ $(sql "SELECT count(*) FROM attempts WHERE outcome='ok' AND job_id='${ids[1]}'") == 12 ]] ||
  fail "expected 12 ok attempts in job ${ids[1]}: $(sql "SELECT outcome, job_id, count(*) FROM attempts GROUP BY 1,2")"
e2e_pass
