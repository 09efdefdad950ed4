#!/usr/bin/env bash
# e2e: a GPU job. The cluster advertises 2 fake GPUs per node (GRES gpu on dummy device
# files: Slurm schedules them and sets CUDA_VISIBLE_DEVICES, no CUDA behind them);
# `submit --gpus-per-node 2 --cpus-per-gpu 1` gets one worker rank per GPU, each seeing
# only its own GPU, and a coordinator that sees none.
source "$(dirname "$0")/lib.sh"
e2e_start_cluster 2
cd "$E2E_DIR" || exit 1
SWEEP=e2e-gpus
cat >sweep.yaml <<YAML
name: $SWEEP
out: $E2E_DIR/runs
kind: chaos
params: {sleep_ms: 100}
seeds: [$(seq -s, 0 15)]
YAML
id=$("$SG" submit sweep.yaml --nodes 2 --gpus-per-node 2 --cpus-per-gpu 1 --time 5)
state=$(wait_job "$id" 120)
log "$state"
[[ $state == *"JobState=COMPLETED ExitCode=0:0"* ]] || fail "GPU job: $state"
scontrol show job -o "$id" | grep -q 'TresPerNode=gres:gpu:2' || fail "the job did not ask for 2 GPUs per node: $(scontrol show job -o "$id")"
LOG=$(job_log $SWEEP "$id")
grep '^\[seedgrid-rank' "$LOG" | sort >bindings.txt
cat >expected.txt <<TXT
[seedgrid-rank 0] node1: coordinator, CUDA_VISIBLE_DEVICES=
[seedgrid-rank 1] node1: worker 0, CUDA_VISIBLE_DEVICES=0
[seedgrid-rank 2] node1: worker 1, CUDA_VISIBLE_DEVICES=1
[seedgrid-rank 3] node2: worker 0, CUDA_VISIBLE_DEVICES=0
[seedgrid-rank 4] node2: worker 1, CUDA_VISIBLE_DEVICES=1
TXT
diff expected.txt bindings.txt || fail "GPU binding per rank differs (expected vs job log)"
[[ $(sql "SELECT count(*) FROM shards WHERE sweep='$SWEEP' AND status='done'") == 16 ]] ||
  fail "not all 16 shards done: $(sql "SELECT status, count(*) FROM shards GROUP BY 1")"
e2e_pass
