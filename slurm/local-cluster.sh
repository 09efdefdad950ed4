#!/usr/bin/env bash
# =============================================================================
# slurm/local-cluster.sh -- a real Slurm cluster (munged + slurmctld + N slurmd
# emulating N nodes) on ONE machine, for seedgrid's end-to-end tests and for
# trying `seedgrid submit` without a cluster. Debian 12 packages (slurm-wlm,
# munge, Open MPI, libpmix-dev), no systemd, no cgroups, runs as root; all state
# lives under one directory; every daemon is stopped by the PID in its own
# pidfile after checking /proc/PID/exe (never pkill/killall by name).
#
# Adapted from the verified recipe in the project's research notes
# (local-slurm.md): the gotchas it documents are handled where noted below.
#
# Usage (run it, or `source` it and call the sg_cluster_* functions):
#   slurm/local-cluster.sh start  [DIR]      start (idempotent); prints nothing on stdout
#   slurm/local-cluster.sh stop   [DIR]      cancel its jobs, stop its daemons by PID (idempotent)
#   slurm/local-cluster.sh status [DIR]      daemons + sinfo (rc 0 iff all up)
#   slurm/local-cluster.sh env    [DIR]      prints `export SLURM_CONF=...` (for eval)
#   slurm/local-cluster.sh wait JOBID [TIMEOUT_S]
#                                            wait until the job left the queue; prints
#                                            "JobId=.. JobState=.. ExitCode=.."; rc 0 iff
#                                            COMPLETED, 1 otherwise, 2 on timeout
#   slurm/local-cluster.sh wipe   [DIR]      stop + rm -rf DIR
#
# Knobs (environment; remembered in DIR/etc/params.env so a later plain
# `start DIR` reuses them; a variable set explicitly always wins):
#   SEEDGRID_SLURM_DIR    state dir (default /tmp/seedgrid-slurm); the DIR argument wins
#   SEEDGRID_SLURM_NODES  emulated nodes (default 2): one slurmd each, named node1..nodeN,
#                         all on 127.0.0.1 with their own port (Debian's slurm is built
#                         with --enable-multiple-slurmd)
#   SEEDGRID_SLURM_CPUS   CPUs advertised per node (default 4; may exceed the real cores)
#   SEEDGRID_SLURM_PORT   base TCP port (default 16817) or `auto` (a free base in
#                         20000-31999): slurmctld = PORT, slurmd i = PORT+i.
#                         Clusters running side by side need different ports and DIRs.
#   SEEDGRID_SLURM_GPUS   fake GPUs per node (default 0): GRES gpu backed by empty files
#                         under DIR/dev/, so --gpus-per-node jobs schedule and Slurm sets
#                         CUDA_VISIBLE_DEVICES as on a GPU cluster (no CUDA behind them)
#
# Clients (sbatch, srun, squeue, scancel, scontrol, sinfo) then need only
#   export SLURM_CONF=$DIR/etc/slurm.conf
# and, to run Open MPI's mpirun as root inside a job:
#   export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# =============================================================================

# No global `set -e`/`set -u`: this file is meant to be sourceable from scripts
# that use either.

_sgc_log() { printf '[local-cluster] %s\n' "$*" >&2; }

# Resolve DIR, derived paths and knobs (environment > params.env > default).
_sgc_paths() {
  local d=${1:-${SEEDGRID_SLURM_DIR:-/tmp/seedgrid-slurm}} k v
  mkdir -p "$d" || return 1
  SGC_D=$(cd "$d" && pwd -P)
  SGC_CONF=$SGC_D/etc/slurm.conf
  SGC_KEY=$SGC_D/etc/munge.key
  SGC_MSOCK=$SGC_D/munge/munge.socket
  SGC_MPID=$SGC_D/munge/munged.pid
  SGC_CTLD_PID=$SGC_D/run/slurmctld.pid
  SGC_HOST=$(hostname -s)
  local s_nodes="" s_cpus="" s_port="" s_gpus=""
  if [[ -f $SGC_D/etc/params.env ]]; then
    while IFS='=' read -r k v; do
      case $k in NODES) s_nodes=$v ;; CPUS) s_cpus=$v ;; PORT) s_port=$v ;; GPUS) s_gpus=$v ;; esac
    done <"$SGC_D/etc/params.env"
  fi
  SGC_NNODES=${SEEDGRID_SLURM_NODES:-${s_nodes:-2}}
  SGC_CPUS=${SEEDGRID_SLURM_CPUS:-${s_cpus:-4}}
  SGC_PORT=${SEEDGRID_SLURM_PORT:-${s_port:-16817}}
  SGC_GPUS=${SEEDGRID_SLURM_GPUS:-${s_gpus:-0}}
  [[ $SGC_NNODES =~ ^[1-9][0-9]*$ && $SGC_CPUS =~ ^[1-9][0-9]*$ && $SGC_GPUS =~ ^[0-9]+$ ]] ||
    { _sgc_log "SEEDGRID_SLURM_NODES/CPUS must be positive integers, GPUS >= 0"; return 1; }
  local i
  SGC_NODES=()
  for ((i = 1; i <= SGC_NNODES; i++)); do SGC_NODES+=("node$i"); done
}

# Echo the PID in pidfile $1 if it names a live process whose executable's
# basename starts with $2 ("slurmd" also matches /usr/sbin/slurmd-wlm). Guards
# against stale pidfiles and recycled PIDs.
_sgc_pid_alive() {
  local f=$1 want=$2 pid exe
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ ${exe##*/} == "$want"* ]] || return 1
  echo "$pid"
}

# SIGTERM one PID, wait up to $2 s, then SIGKILL.
_sgc_kill_pid() {
  local pid=$1 t=${2:-10} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < t * 10; i++)); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
  _sgc_log "PID $pid ignored SIGTERM for ${t}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
  return 0
}
_sgc_wait_gone() {
  local pid=$1 t=${2:-15} i
  for ((i = 0; i < t * 10; i++)); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 0
}

# Is something listening on 127.0.0.1:$1? (bash /dev/tcp; no ss/netstat needed)
_sgc_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PIDs of all descendants of $1, deepest first (walks /proc/*/stat ppid).
_sgc_descendants() {
  local root=$1 f st p
  for f in /proc/[0-9]*/stat; do
    { st=$(<"$f"); } 2>/dev/null || continue
    st=${st##*) }            # drop "pid (comm) ": comm may contain spaces
    read -r _ p _ <<<"$st"   # state ppid ...
    [[ $p == "$root" ]] || continue
    p=${f#/proc/}
    p=${p%/stat}
    _sgc_descendants "$p"
    echo "$p"
  done
}

# Kill a leftover slurmstepd and everything below it, by PID. The descendant
# list is taken once: when a job script dies its srun children are re-parented
# to PID 1 and would escape a second walk (srun survives SIGTERM once its
# slurmd is gone).
_sgc_kill_tree() {
  local root=$1 p kids
  kids=$(_sgc_descendants "$root")
  kill -KILL "$root" 2>/dev/null   # slurmstepd ignores SIGTERM
  for p in $kids; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in $kids; do [[ -d /proc/$p ]] && kill -KILL "$p" 2>/dev/null; done
  return 0
}

# A free port base for slurmctld + NNODES slurmds, below the ephemeral range.
_sgc_pick_port() {
  local try base i busy
  for ((try = 0; try < 50; try++)); do
    base=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    busy=0
    for ((i = 0; i <= SGC_NNODES; i++)); do
      _sgc_port_busy $((base + i)) && { busy=1; break; }
    done
    ((busy)) || { echo "$base"; return 0; }
  done
  return 1
}

_sgc_write_conf() {
  local f=$1 i
  {
    echo "# generated by seedgrid slurm/local-cluster.sh -- rewritten on every start"
    echo "ClusterName=seedgridlocal"
    # With explicit addresses no name resolution is needed at all; the
    # controller's name must be `hostname -s` (or localhost).
    echo "SlurmctldHost=${SGC_HOST}(127.0.0.1)"
    echo "SlurmctldPort=${SGC_PORT}"
    echo "SlurmdPort=$((SGC_PORT + 1))"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    # Private munged socket: no /run/munge, no clash with a system munged.
    echo "AuthInfo=socket=${SGC_MSOCK}"
    echo "StateSaveLocation=${SGC_D}/ctld"
    echo "SlurmdSpoolDir=${SGC_D}/spool/%n"
    echo "SlurmctldPidFile=${SGC_CTLD_PID}"
    echo "SlurmdPidFile=${SGC_D}/run/slurmd-%n.pid"
    echo "SlurmctldLogFile=${SGC_D}/log/slurmctld.log"
    echo "SlurmdLogFile=${SGC_D}/log/slurmd-%n.log"
    echo "SlurmctldDebug=info"
    echo "SlurmdDebug=info"
    # Per-node scratch: the PMIx plugin creates spmix_appdir_<uid>_<job>.<step>
    # under TmpFS; with a shared /tmp two emulated nodes collide ("File exists").
    echo "TmpFS=${SGC_D}/tmp/%n"
    # No cgroups (proctrack/cgroup fails in VMs without the freezer controller).
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "SchedulerType=sched/backfill"
    # The default batch_sched_delay=3 s delays every queued (dependent) job.
    echo "SchedulerParameters=batch_sched_delay=0"
    # srun --mpi=pmix works with Debian's Open MPI; pmi2 does not.
    echo "MpiDefault=pmix"
    # Advertise SGC_CPUS even on fewer cores (else the node drains: "Low CPUs").
    echo "SlurmdParameters=config_overrides"
    # Reject impossible requests at submit time instead of PENDING forever.
    echo "EnforcePartLimits=ALL"
    echo "ReturnToService=2"
    echo "MailProg=/bin/true"
    echo "InactiveLimit=0"
    echo "KillWait=5"
    echo "MinJobAge=300"
    # Open MPI names its shared-memory segments <hostname>.<jobid>.<local rank>;
    # emulated nodes share one hostname, so the same segment would be mapped by
    # two "nodes" (SIGSEGV in the vader BTL). The TaskProlog gives every task
    # (batch script, srun tasks, mpirun's orteds) TCP over lo instead.
    echo "TaskProlog=${SGC_D}/etc/task_prolog.sh"
    local gres=""
    if ((SGC_GPUS > 0)); then
      echo "GresTypes=gpu"
      gres=" Gres=gpu:${SGC_GPUS}"
    fi
    for ((i = 1; i <= SGC_NNODES; i++)); do
      echo "NodeName=node$i NodeHostname=${SGC_HOST} NodeAddr=127.0.0.1 Port=$((SGC_PORT + i)) CPUs=${SGC_CPUS} RealMemory=1000${gres} State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=node[1-${SGC_NNODES}] Default=YES MaxTime=INFINITE State=UP"
  } >"$f"
  cat >"$SGC_D/etc/task_prolog.sh" <<'EOF'
#!/bin/sh
# Slurm TaskProlog: every "export NAME=VALUE" line printed here is added to the
# task's environment. Emulated nodes share a hostname: keep Open MPI off shared memory.
[ -n "$OMPI_MCA_btl" ] || echo "export OMPI_MCA_btl=self,tcp"
[ -n "$OMPI_MCA_btl_tcp_if_include$OMPI_MCA_btl_tcp_if_exclude" ] || echo "export OMPI_MCA_btl_tcp_if_include=lo"
exit 0
EOF
  chmod 0755 "$SGC_D/etc/task_prolog.sh"
  # Fake GPUs: slurmd only needs the device files to exist; gres/gpu then hands out
  # indices and sets CUDA_VISIBLE_DEVICES in every step.
  rm -f "$SGC_D/etc/gres.conf"
  if ((SGC_GPUS > 0)); then
    local n g
    for n in "${SGC_NODES[@]}"; do
      mkdir -p "$SGC_D/dev/$n"
      for ((g = 0; g < SGC_GPUS; g++)); do : >"$SGC_D/dev/$n/nvidia$g"; done
      echo "NodeName=$n Name=gpu File=$SGC_D/dev/$n/nvidia[0-$((SGC_GPUS - 1))]"
    done >"$SGC_D/etc/gres.conf"
  fi
}

_sgc_start_munged() {
  local pid i
  if pid=$(_sgc_pid_alive "$SGC_MPID" munged); then _sgc_log "munged already running (pid $pid)"; return 0; fi
  [[ -s $SGC_KEY ]] || {
    mungekey --create --keyfile="$SGC_KEY" 2>/dev/null ||
      dd if=/dev/urandom of="$SGC_KEY" bs=1024 count=1 status=none
  }
  chmod 0400 "$SGC_KEY"        # munged refuses keys readable by group/other
  chmod 0755 "$SGC_D/munge"    # the socket dir must be world-executable
  rm -f "$SGC_MSOCK" "$SGC_MSOCK.lock" "$SGC_MPID"
  # --force turns "Socket is inaccessible: execute permissions for all required
  # on <parent>" (a DIR under a 0700 parent) into a warning.
  munged --force --key-file="$SGC_KEY" --socket="$SGC_MSOCK" --pid-file="$SGC_MPID" \
    --log-file="$SGC_D/log/munged.log" --seed-file="$SGC_D/munge/munged.seed" \
    </dev/null >>"$SGC_D/log/munged.stdout" 2>&1 ||
    { _sgc_log "munged failed; see $SGC_D/log/munged.log"; tail -3 "$SGC_D/log/munged.log" >&2; return 1; }
  for ((i = 0; i < 100; i++)); do
    munge -n -S "$SGC_MSOCK" 2>/dev/null | unmunge -S "$SGC_MSOCK" >/dev/null 2>&1 && break
    sleep 0.1
  done
  ((i < 100)) || { _sgc_log "munged not answering on $SGC_MSOCK"; return 1; }
  _sgc_log "munged up (pid $(<"$SGC_MPID"))"
}

_sgc_start_slurmctld() {
  local pid i
  if pid=$(_sgc_pid_alive "$SGC_CTLD_PID" slurmctld); then _sgc_log "slurmctld already running (pid $pid)"; return 0; fi
  rm -f "$SGC_CTLD_PID"
  SLURM_CONF=$SGC_CONF slurmctld -f "$SGC_CONF" </dev/null >>"$SGC_D/log/slurmctld.stdout" 2>&1 ||
    { _sgc_log "slurmctld failed; see $SGC_D/log/slurmctld.log"; tail -5 "$SGC_D/log/slurmctld.log" >&2; return 1; }
  for ((i = 0; i < 300; i++)); do
    pid=$(_sgc_pid_alive "$SGC_CTLD_PID" slurmctld) &&
      SLURM_CONF=$SGC_CONF scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.1
  done
  ((i < 300)) || { _sgc_log "slurmctld did not come up"; tail -5 "$SGC_D/log/slurmctld.log" >&2; return 1; }
  _sgc_log "slurmctld up (pid $pid)"
}

_sgc_start_slurmd() {
  local n pid
  for n in "${SGC_NODES[@]}"; do
    mkdir -p "$SGC_D/spool/$n" "$SGC_D/tmp/$n"
    if pid=$(_sgc_pid_alive "$SGC_D/run/slurmd-$n.pid" slurmd); then _sgc_log "slurmd $n already running (pid $pid)"; continue; fi
    rm -f "$SGC_D/run/slurmd-$n.pid"
    SLURM_CONF=$SGC_CONF slurmd -f "$SGC_CONF" -N "$n" </dev/null >>"$SGC_D/log/slurmd-$n.stdout" 2>&1 ||
      { _sgc_log "slurmd $n failed; see $SGC_D/log/slurmd-$n.log"; tail -5 "$SGC_D/log/slurmd-$n.log" >&2; return 1; }
  done
}

_sgc_wait_nodes_up() {
  local i states bad n
  for ((i = 0; i < 300; i++)); do
    states=$(SLURM_CONF=$SGC_CONF sinfo -h -N -o '%N %T' 2>/dev/null)
    bad=$(awk '$2 !~ /^(idle|mixed|allocated|completing)$/' <<<"$states")
    [[ -n $states && -z $bad ]] && break
    if ((i == 50)) && [[ -n $bad ]]; then   # left DOWN/DRAIN by an unclean earlier run
      for n in $(awk '$2 ~ /drain|down/ {print $1}' <<<"$bad"); do
        SLURM_CONF=$SGC_CONF scontrol update NodeName="$n" State=RESUME 2>/dev/null
      done
    fi
    sleep 0.1
  done
  ((i < 300)) || { _sgc_log "nodes not ready: $(tr '\n' ' ' <<<"$states")"; return 1; }
  _sgc_log "nodes up: $(tr '\n' ' ' <<<"$states")"
}

# Refuse to start if a port we need is taken by someone else: a busy port makes
# our slurmctld die while `scontrol ping` happily answers from the other cluster.
_sgc_preflight() {
  local n i=0
  if ! _sgc_pid_alive "$SGC_CTLD_PID" slurmctld >/dev/null && _sgc_port_busy "$SGC_PORT"; then
    _sgc_log "port $SGC_PORT already in use (another cluster?) -- set SEEDGRID_SLURM_PORT"; return 1
  fi
  for n in "${SGC_NODES[@]}"; do
    i=$((i + 1))
    if ! _sgc_pid_alive "$SGC_D/run/slurmd-$n.pid" slurmd >/dev/null && _sgc_port_busy $((SGC_PORT + i)); then
      _sgc_log "port $((SGC_PORT + i)) already in use -- set SEEDGRID_SLURM_PORT"; return 1
    fi
  done
}

# True when the Debian packages this script needs are installed.
sg_cluster_available() {
  command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch &&
    command -v mungekey
} >/dev/null 2>&1

sg_cluster_start() {
  _sgc_paths "${1:-}" || return 1
  local d t0=$SECONDS
  sg_cluster_available ||
    { _sgc_log "slurm/munge not installed (Debian: slurm-wlm munge; see scripts/install-deps)"; return 1; }
  for d in etc munge ctld spool run log tmp; do mkdir -p "$SGC_D/$d"; done
  if [[ $SGC_PORT == auto ]]; then
    if _sgc_pid_alive "$SGC_CTLD_PID" slurmctld >/dev/null; then
      SGC_PORT=$(sed -n 's/^PORT=//p' "$SGC_D/etc/params.env")
    else
      SGC_PORT=$(_sgc_pick_port) || { _sgc_log "no free port base found"; return 1; }
    fi
  fi
  [[ $SGC_PORT =~ ^[0-9]+$ ]] || { _sgc_log "SEEDGRID_SLURM_PORT must be a number or auto"; return 1; }
  _sgc_write_conf "$SGC_CONF.new"
  if [[ -f $SGC_CONF ]] && ! cmp -s "$SGC_CONF" "$SGC_CONF.new" &&
    _sgc_pid_alive "$SGC_CTLD_PID" slurmctld >/dev/null; then
    _sgc_log "the cluster in $SGC_D runs with a different config; stop it first"
    rm -f "$SGC_CONF.new"
    return 1
  fi
  mv -f "$SGC_CONF.new" "$SGC_CONF"
  printf 'NODES=%s\nCPUS=%s\nPORT=%s\nGPUS=%s\n' "$SGC_NNODES" "$SGC_CPUS" "$SGC_PORT" "$SGC_GPUS" >"$SGC_D/etc/params.env"
  _sgc_preflight && _sgc_start_munged && _sgc_start_slurmctld && _sgc_start_slurmd &&
    _sgc_wait_nodes_up || return 1
  _sgc_log "ready in $((SECONDS - t0))s -- export SLURM_CONF=$SGC_CONF"
}

sg_cluster_stop() {
  _sgc_paths "${1:-}" || return 1
  local pid n ids i p f envf pids=() ctld_pid="" munge_pid=""
  # 1. Cancel every job of THIS cluster: stopping slurmd alone leaves slurmstepd
  #    and the job's processes running (and a job scheduled while slurmd is down
  #    shows RUNNING forever).
  if _sgc_pid_alive "$SGC_CTLD_PID" slurmctld >/dev/null; then
    ids=$(SLURM_CONF=$SGC_CONF squeue -h -o %A 2>/dev/null | sort -u)
    if [[ -n $ids ]]; then
      _sgc_log "cancelling jobs: $(tr '\n' ' ' <<<"$ids")"
      # shellcheck disable=SC2086
      SLURM_CONF=$SGC_CONF scancel $ids 2>/dev/null
      for ((i = 0; i < 300; i++)); do
        [[ -z $(SLURM_CONF=$SGC_CONF squeue -h -t PD,R,CG,S,CF -o %A 2>/dev/null) ]] && break
        sleep 0.1
      done
    fi
  fi
  # 2. Stop the daemons concurrently (one after another takes ~5.5 s):
  #    slurmctld through the shutdown RPC to OUR controller, SIGTERM to every
  #    slurmd found through its pidfile, SIGTERM to munged.
  if ctld_pid=$(_sgc_pid_alive "$SGC_CTLD_PID" slurmctld); then
    _sgc_log "stopping slurmctld (pid $ctld_pid)"
    SLURM_CONF=$SGC_CONF scontrol shutdown slurmctld >/dev/null 2>&1
  fi
  for f in "$SGC_D"/run/slurmd-*.pid; do
    [[ -e $f ]] || continue
    n=${f##*/slurmd-}
    n=${n%.pid}
    if pid=$(_sgc_pid_alive "$f" slurmd); then
      _sgc_log "stopping slurmd $n (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid")
    fi
  done
  if munge_pid=$(_sgc_pid_alive "$SGC_MPID" munged); then
    _sgc_log "stopping munged (pid $munge_pid)"
    kill -TERM "$munge_pid" 2>/dev/null
  fi
  for pid in "${pids[@]}"; do _sgc_wait_gone "$pid" 15; done
  rm -f "$SGC_D"/run/slurmd-*.pid
  # 3. Fallback for crashed daemons: a slurmstepd forked by OUR slurmd carries
  #    SLURM_CONF=<our conf> in its environment; kill it and its job processes.
  # (one `find` over /proc: a readlink per process takes seconds on a busy machine)
  while read -r f; do
    p=${f%/exe}
    envf=$(tr '\0' '\n' <"$p/environ" 2>/dev/null)
    grep -qxF "SLURM_CONF=$SGC_CONF" <<<"$envf" || continue
    _sgc_log "killing leftover slurmstepd ${p#/proc/} and its job processes"
    _sgc_kill_tree "${p#/proc/}"
  done < <(find /proc -mindepth 2 -maxdepth 2 -name exe -lname '*slurmstepd*' 2>/dev/null)
  # 4. Wait for slurmctld (TERM then KILL if the RPC did not work) and munged.
  if [[ -n $ctld_pid ]]; then
    for ((i = 0; i < 100; i++)); do [[ -d /proc/$ctld_pid ]] || break; sleep 0.1; done
    [[ -d /proc/$ctld_pid ]] && _sgc_kill_pid "$ctld_pid" 20
  fi
  rm -f "$SGC_CTLD_PID"
  [[ -n $munge_pid ]] && _sgc_kill_pid "$munge_pid" 10
  rm -f "$SGC_MPID"
  _sgc_log "stopped ($SGC_D kept: state and logs)"
}

sg_cluster_status() {
  _sgc_paths "${1:-}" || return 1
  local pid n rc=0
  if pid=$(_sgc_pid_alive "$SGC_MPID" munged); then echo "munged    pid $pid"; else echo "munged    down"; rc=1; fi
  if pid=$(_sgc_pid_alive "$SGC_CTLD_PID" slurmctld); then echo "slurmctld pid $pid"; else echo "slurmctld down"; rc=1; fi
  for n in "${SGC_NODES[@]}"; do
    if pid=$(_sgc_pid_alive "$SGC_D/run/slurmd-$n.pid" slurmd); then echo "slurmd    $n pid $pid"; else echo "slurmd    $n down"; rc=1; fi
  done
  ((rc == 0)) && SLURM_CONF=$SGC_CONF sinfo -N -l
  return $rc
}

sg_cluster_env() { _sgc_paths "${1:-}" && echo "export SLURM_CONF=$SGC_CONF"; }

# Wait until a job has left PENDING/RUNNING/COMPLETING...; prints one line
# "JobId=N JobState=S ExitCode=a:b". rc 0 iff COMPLETED, 1 otherwise, 2 on
# timeout. Polls scontrol (sbatch --wait polls only every 8+ s). Uses
# $SLURM_CONF, else the conf of $SEEDGRID_SLURM_DIR.
sg_cluster_wait() {
  local id=$1 timeout=${2:-600} t0=$SECONDS out states conf
  conf=${SLURM_CONF:-${SEEDGRID_SLURM_DIR:-/tmp/seedgrid-slurm}/etc/slurm.conf}
  [[ -n $id ]] || { _sgc_log "wait: JOBID missing"; return 2; }
  while :; do
    out=$(SLURM_CONF=$conf scontrol show job -o "$id" 2>/dev/null)
    [[ -z $out ]] && { _sgc_log "job $id unknown (purged after MinJobAge?)"; return 1; }
    states=$(grep -o 'JobState=[A-Z_]*' <<<"$out" | cut -d= -f2 | sort -u)
    if ! grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUE|RESIZING|SIGNALING|STAGE_OUT' <<<"$states"; then
      while read -r line; do
        grep -oE '^JobId=[0-9]+|ArrayTaskId=[0-9]+|JobState=[A-Z_]+|ExitCode=[0-9:]+' <<<"$line" | paste -sd' '
      done <<<"$out"
      [[ $states == COMPLETED ]]
      return
    fi
    ((SECONDS - t0 > timeout)) && { _sgc_log "timeout waiting for job $id"; return 2; }
    sleep 0.2
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  cmd=${1:-}
  shift || true
  case $cmd in
    start) sg_cluster_start "$@" ;;
    stop) sg_cluster_stop "$@" ;;
    status) sg_cluster_status "$@" ;;
    env) sg_cluster_env "$@" ;;
    wait) sg_cluster_wait "$@" ;;
    wipe)
      sg_cluster_stop "$@" || exit 1
      # Only ever remove a directory this script set up.
      [[ -f $SGC_D/etc/params.env ]] || { _sgc_log "$SGC_D is not a local-cluster dir; not removing"; exit 1; }
      rm -rf "$SGC_D" && _sgc_log "removed $SGC_D" ;;
    *) sed -n '2,37p' "$0"; exit 2 ;;
  esac
fi
