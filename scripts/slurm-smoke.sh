#!/usr/bin/env bash
# Runs the README's Slurm job array ("Scale-out") on a real, throw-away,
# single-node Slurm cluster on localhost, and checks its promises:
#   1. a 3-task array (`--shard ${SLURM_ARRAY_TASK_ID}/3`, one core per task)
#      writes one OUT that `clipes eval` scores, whose masks are byte-identical
#      to a single-process run, with a run record per shard and no failures;
#   2. pre-emption: a task cancelled with `scancel` while it writes, then
#      resubmitted with `sbatch --array=K`, leaves OUT complete and identical,
#      with no temp files;
#   3. node failure: slurmd and the processes of its running tasks are killed
#      mid-task, slurmd restarts; Slurm requeues the tasks (or they are
#      resubmitted) and OUT again ends complete and identical.
#
# Usage: bash scripts/slurm-smoke.sh [BUILD_DIR]   (default build/, or $CLIPES_BUILD_DIR)
# Needs root (apt-get and the daemons) and no systemd: munged, slurmctld and
# slurmd run in the foreground of background jobs, configured under a temp dir
# (key, slurm.conf with this machine's cores and memory, state, logs) on free
# ports; every daemon this script started is stopped by pid on exit, also on
# failure. Data: the bundled toy model and 60 toy val images. Takes about a
# minute or two (1 min 47 s on a Zen 5 pair of cores). Exit status 0 only if every check passes. The temp dir is kept
# when a check fails (its path is printed); KEEP=1 keeps it always.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-${CLIPES_BUILD_DIR:-build}}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CLIPES=$BUILD/clipes
MAKE_TOY=$BUILD/make_toy_dataset
MODEL=$ROOT/models/toy-clip.pt
VOCAB=$ROOT/models/toy-vocab.txt.gz
SHARDS=3
COUNT=60

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'slurm-smoke: ERROR: %s\n' "$*" >&2; exit 1; }

FAILS=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILS=$((FAILS + 1)); }
check() {  # check "description" command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

for f in "$CLIPES" "$MAKE_TOY"; do
  [ -x "$f" ] || die "$f not found: build clipes first (cmake --build $BUILD) or pass the build dir"
done
[ -f "$MODEL" ] && [ -f "$VOCAB" ] || die "the toy model is missing ($MODEL, $VOCAB)"
[ "$(id -u)" -eq 0 ] || die "run as root: the script installs packages and starts munged/slurmctld/slurmd"

# ---- packages -------------------------------------------------------------------
PKGS=(slurm-wlm slurmctld slurmd munge)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for b in munged mungekey slurmctld slurmd slurmstepd sinfo squeue sbatch scancel scontrol; do
  command -v "$b" >/dev/null || die "$b not on PATH after installing ${PKGS[*]}"
done

# A Slurm job running this script must not leak its job's settings into ours.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^SLURM_' || true)

# ---- layout ---------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clipes-slurm-smoke.XXXXXX")
mkdir -p "$WORK"/{etc,munge,log,run,state/ctld,state/slurmd,jobs}
chmod 755 "$WORK" "$WORK/munge"   # munged wants its socket's folders searchable by all
CONF=$WORK/etc/slurm.conf
MUNGE_SOCKET=$WORK/munge/munge.socket
DATA=$WORK/toy
export SLURM_CONF=$CONF
# Every process of this cluster (daemons, step daemons, job scripts) carries
# this variable, so that cleanup can find the ones this script caused.
MARK="CLIPES_SLURM_SMOKE=$WORK"

MUNGED_PID="" CTLD_PID="" SLURMD_PID=""

marked_pids() {  # pids of processes carrying $MARK, except those listed in $@ and their children
  local p pp
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    pp=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
    case " $* " in *" $p "* | *" $pp "*) continue ;; esac
    grep -qzxF "$MARK" "/proc/$p/environ" 2>/dev/null && echo "$p"
  done
  return 0
}

stop_pid() {  # stop_pid PID NAME: TERM, then KILL after 10 s
  local pid=$1 name=$2 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  echo "stopped $name (pid $pid)"
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  say "cleanup"
  if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
    scancel --quiet --user=root 2>/dev/null
    for i in $(seq 50); do [ -z "$(squeue -h -t R,CG 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  stop_pid "$SLURMD_PID" slurmd
  stop_pid "$CTLD_PID" slurmctld
  stop_pid "$MUNGED_PID" munged
  local left
  left=$(marked_pids)
  if [ -n "$left" ]; then
    echo "killing leftover cluster processes: $left"
    kill -KILL $left 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] || [ "$FAILS" -ne 0 ]; then
    [ "$rc" -ne 0 ] || rc=1
    for f in "$WORK"/log/*.log; do
      [ -f "$f" ] || continue
      echo "--- tail of $f"; tail -n 25 "$f"
    done
    echo "slurm-smoke: FAILED ($FAILS failed checks, exit $rc); state kept in $WORK"
  else
    echo "slurm-smoke: all checks passed"
    [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {  # first free port from $1 up
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

wait_for() {  # wait_for SECONDS DESCRIPTION command...: poll every 0.2 s
  local t=$1 what=$2 i; shift 2
  for ((i = 0; i < t * 5; i++)); do "$@" && return 0; sleep 0.2; done
  die "timed out after ${t}s waiting for $what"
}

# ---- munge ----------------------------------------------------------------------
say "munge"
mungekey --create --keyfile="$WORK/munge/munge.key" >/dev/null 2>&1 ||
  dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
env "$MARK" munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$WORK/munge/munge.key" \
  --log-file="$WORK/log/munged.log" --pid-file="$WORK/run/munged.pid" \
  --seed-file="$WORK/munge/munged.seed" >"$WORK/log/munged.stdout" 2>&1 &
MUNGED_PID=$!
munge_ok() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
wait_for 20 "munged to answer" munge_ok
echo "munged pid $MUNGED_PID, socket $MUNGE_SOCKET: credential round trip ok"

# ---- slurm.conf -----------------------------------------------------------------
HOST=$(hostname -s)
NODE_HW=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
case $NODE_HW in NodeName=*RealMemory=*) ;; *) die "unexpected 'slurmd -C' output: $NODE_HW" ;; esac
CTLD_PORT=$(free_port "${SLURM_SMOKE_PORT:-16817}")
SLURMD_PORT=$(free_port $((CTLD_PORT + 1)))
: >"$WORK/etc/plugstack.conf"
cat >"$CONF" <<EOF
# Throw-away single-node cluster of scripts/slurm-smoke.sh
ClusterName=clipes-smoke
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state/ctld
SlurmdSpoolDir=$WORK/state/slurmd
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$WORK/etc/plugstack.conf
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# finished jobs stay visible to scontrol for the checks
MinJobAge=3600
KillWait=5
# a node whose slurmd stops answering is marked DOWN within ~10-20 s, and it
# returns when slurmd registers; its batch jobs are requeued only if they ask
# for it (the README's #SBATCH --requeue), not by the cluster's default
SlurmdTimeout=10
JobRequeue=0
ReturnToService=2
InactiveLimit=0
$NODE_HW NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=smoke Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
say "slurm.conf ($CONF)"
grep -v '^#' "$CONF"

# ---- daemons --------------------------------------------------------------------
start_slurmd() {
  env "$MARK" slurmd -D -f "$CONF" -N "$HOST" >>"$WORK/log/slurmd.stdout" 2>&1 &
  SLURMD_PID=$!
  echo "slurmd pid $SLURMD_PID"
}
env "$MARK" slurmctld -D -i -f "$CONF" >"$WORK/log/slurmctld.stdout" 2>&1 &
CTLD_PID=$!
echo "slurmctld pid $CTLD_PID (port $CTLD_PORT)"
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
wait_for 30 "slurmctld to answer" ctld_up
start_slurmd
node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1; }
node_is() { [ "$(node_state)" = "$1" ]; }
wait_for 60 "the node to be idle" node_is idle
say "sinfo"
sinfo
sinfo -N -o '%N %T %c CPUs %m MB %P'

# ---- data and the single-process reference --------------------------------------
say "toy data: $COUNT val images (seed 2)"
# Images of 480-640 px, not the toy default (~150-320 px): a task must run for
# seconds, not one second, or the pre-emption and node-failure checks cannot
# catch it midway (a 20-image shard took 0.8 s at the default size on a Zen 5
# core, 5.3 s at this size).
"$MAKE_TOY" --out "$DATA" --count "$COUNT" --seed 2 --split val --min-size 480 --max-size 640
mapfile -t IDS <"$DATA/ImageSets/Segmentation/val.txt"
[ "${#IDS[@]}" -eq "$COUNT" ] || die "expected $COUNT ids in $DATA, got ${#IDS[@]}"

say "single-process reference run"
# One thread: the masks do not depend on the thread count, and two busy-waiting
# threads on cores shared with other work can be 30x slower.
# Pinned to one CPU like each Slurm task (--cpus-per-task=1): OpenBLAS sizes its
# own thread pool from the CPUs it may use, and on some CPUs (Zen 5 with the
# Haswell kernels) its sums then round differently, so an unpinned reference
# differed from the tasks in the last bit of some confidence maps.
PIN=""; command -v taskset >/dev/null && PIN="taskset -c 0"
time $PIN "$CLIPES" generate --model "$MODEL" --vocab "$VOCAB" --classes toy \
  --format voc --split val --dataset "$DATA" --out "$WORK/ref" --device cpu --engine reference --threads 1 2>"$WORK/log/ref.stderr"
tail -n 1 "$WORK/log/ref.stderr"

# The shard of an id, as clipes computes it: FNV-1a 64 of the id, mod N.
shard_of() {
  local s=$1 n=$2 h=1469598103934665603 i c r
  for ((i = 0; i < ${#s}; i++)); do
    printf -v c '%d' "'${s:i:1}"
    h=$(((h ^ c) * 1099511628211))
  done
  r=$((h % n)); ((r < 0)) && r=$((r + n))
  ((h < 0)) && r=$(((r + ((1 << 62) % n) * 4 % n) % n))  # bash is signed: add 2^64 mod n
  echo "$r"
}
declare -a SHARD_IDS
for id in "${IDS[@]}"; do
  k=$(shard_of "$id" "$SHARDS")
  SHARD_IDS[k]+="$id "
done
for ((k = 0; k < SHARDS; k++)); do
  set -- ${SHARD_IDS[k]}
  echo "shard $k/$SHARDS: $# images"
done

# ---- the README's array script ----------------------------------------------------
# README.md "Scale-out", unchanged but for the paths: the toy model and class
# file, a VOC toy dataset, a local OUT, 3 tasks on the CPU with one core each
# (--cpus-per-task=1 and --device cpu for the README's GPU). --engine reference:
# this smoke checks Slurm's requeue/resume machinery, and at 30+ images/s the
# fused engine finishes a toy task before the pre-emption check can stop it
# midway.
write_job() {  # write_job OUT FILE
  cat >"$2" <<EOF
#!/bin/bash
#SBATCH --array=0-$((SHARDS - 1))
#SBATCH --cpus-per-task=1
#SBATCH --requeue
$CLIPES generate --model $MODEL --vocab $VOCAB --classes toy \\
  --format voc --split val --dataset $DATA --out $1 \\
  --device cpu --shard \${SLURM_ARRAY_TASK_ID}/$SHARDS --engine reference
EOF
}

submit() {  # submit SCRIPT [sbatch options...]: prints the job id
  local script=$1; shift
  (cd "$WORK/jobs" && env "$MARK" sbatch --parsable "$@" "$script") | cut -d';' -f1
}

SQ_FORMAT='%.12i %.9P %.10j %.8T %.6M %.4C %R'
wait_jobs() {  # wait_jobs TIMEOUT JOBID...: until none is pending/running; prints squeue on change
  local t=$1; shift
  local ids=$*; ids=${ids// /,}
  local start=$SECONDS last="" snap
  while :; do
    snap=$(squeue -h -r -j "$ids" -o "$SQ_FORMAT" 2>/dev/null || true)
    if [ "$snap" != "$last" ]; then
      echo "--- squeue at +$((SECONDS - start))s"
      if [ -n "$snap" ]; then squeue -r -j "$ids" -o "$SQ_FORMAT"; else echo "(no pending or running tasks)"; fi
      last=$snap
    fi
    [ -z "$snap" ] && return 0
    ((SECONDS - start > t)) && die "jobs $ids still queued after ${t}s"
    sleep 0.5
  done
}

job_field() {  # job_field JOB FIELD: e.g. job_field 12_1 JobState
  scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

show_tasks() {  # show_tasks ARRAY_JOBID
  local k
  for ((k = 0; k < SHARDS; k++)); do
    printf '  task %s_%s: %-10s exit %-5s restarts %s\n' "$1" "$k" "$(job_field "$1_$k" JobState)" \
      "$(job_field "$1_$k" ExitCode)" "$(job_field "$1_$k" Restarts)"
  done
}

# ---- checks ---------------------------------------------------------------------
identical() {  # identical OUT: every reference mask/confidence equal, nothing else
  local out=$1 id n=0 bad=0 d
  for id in "${IDS[@]}"; do
    for d in masks confidence; do
      if [ -f "$out/$d/$id.png" ] && cmp -s "$WORK/ref/$d/$id.png" "$out/$d/$id.png"; then n=$((n + 1))
      else bad=$((bad + 1)); [ "$bad" -le 5 ] && echo "      differs or missing: $out/$d/$id.png"; fi
    done
  done
  local extra
  extra=$(comm -13 <(cd "$WORK/ref" && find masks confidence -type f | sort) \
                   <(cd "$out" && find masks confidence -type f | sort) | grep -c . || true)
  echo "      $n of $((2 * COUNT)) files byte-identical to the single-process run, $bad not, $extra extra"
  [ "$bad" -eq 0 ] && [ "$extra" -eq 0 ]
}
no_temps() {
  local t
  t=$(find "$1" -name '*.tmp-*' | wc -l)
  echo "      $t temp files"
  [ "$t" -eq 0 ]
}
json_count() {  # json_count FILE KEY: an integer field of run.json's "counts"
  sed -n "/\"counts\"/,/}/s/^ *\"$2\": *\([0-9]*\).*/\1/p" "$1" | head -n 1
}
records_ok() {  # records_ok OUT: a run record per shard, complete, no failures
  local out=$1 k rec ok=0 sel
  for ((k = 0; k < SHARDS; k++)); do
    rec=$out/run.shard-$k-of-$SHARDS.json
    set -- ${SHARD_IDS[k]}
    if [ ! -f "$rec" ]; then echo "      missing $rec"; ok=1; continue; fi
    sel=$(json_count "$rec" selected)
    printf '      %s: selected %s complete %s failed %s processed %s skipped_complete %s\n' "${rec##*/}" "$sel" \
      "$(json_count "$rec" complete)" "$(json_count "$rec" failed)" "$(json_count "$rec" processed)" \
      "$(json_count "$rec" skipped_complete)"
    [ "$sel" = "$#" ] && [ "$(json_count "$rec" complete)" = "$#" ] && [ "$(json_count "$rec" failed)" = 0 ] || ok=1
  done
  local logs
  logs=$(find "$out" -maxdepth 1 -name 'failures*.jsonl' -size +0 | wc -l)
  echo "      non-empty failure logs: $logs"
  [ "$logs" -eq 0 ] || { cat "$out"/failures*.jsonl | head -n 5; ok=1; }
  return $ok
}
tasks_completed() {  # tasks_completed JOB...: every task of these jobs COMPLETED with exit 0:0
  local j line ok=0
  for j in "$@"; do
    while read -r line; do
      case $line in *"JobState=COMPLETED "*"ExitCode=0:0 "*) ;; *) ok=1 ;; esac
    done < <(scontrol -o show job "$j")
  done
  return $ok
}
verify_out() {  # verify_out OUT LABEL
  check "$2: masks and confidence maps byte-identical to the single-process run" identical "$1"
  check "$2: no *.tmp-* files left in OUT" no_temps "$1"
  check "$2: run.shard-i-of-$SHARDS.json for every shard, complete, no failure records" records_ok "$1"
}

# ---- helpers for killing a task midway ---------------------------------------------
CLIPES_EXE=$(readlink -f "$CLIPES")
task_pid() {  # task_pid OUT K: pid of the clipes process of shard K writing OUT
  # Builtins only: with a fork or two per process this scan took over a second,
  # long enough for a whole toy task to start and end between two scans.
  local p args want=" --out $1 --device cpu --shard $2/$SHARDS "
  for p in /proc/[0-9]*; do
    [ "$p/exe" -ef "$CLIPES_EXE" ] 2>/dev/null || continue
    mapfile -d '' -t args <"$p/cmdline" 2>/dev/null || continue
    [[ " ${args[*]} " == *"$want"* ]] && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}
masks_done() {  # masks_done OUT K: how many of shard K's masks exist
  local n=0 id
  for id in ${SHARD_IDS[$2]}; do [ -f "$1/masks/$id.png" ] && n=$((n + 1)); done
  echo "$n"
}
freeze_midway() {  # freeze_midway OUT K: SIGSTOP shard K's process midway, ideally inside a write
  local out=$1 k=$2 pid="" i n how start=$SECONDS
  set -- ${SHARD_IDS[k]}
  n=$#
  # Bounded by time, not by a count of scans, and it gives up as soon as the
  # task is seen to have finished: either way a clear error, never a hang.
  until pid=$(task_pid "$out" "$k"); do
    (($(masks_done "$out" "$k") < n)) ||
      die "task $k wrote all its $n masks before it could be seen running: make its images bigger"
    ((SECONDS - start < 120)) || die "task $k did not start within 120 s"
    sleep 0.01
  done
  # Once its first mask is out, spin on builtins only (no fork) until one of its
  # temp files exists, i.e. it is writing an output; failing that, stop it once
  # half its masks are done.
  local armed=0 d
  for ((i = 0; ; i++)); do
    ((SECONDS - start < 300)) || die "task $k (pid $pid) could not be stopped midway within 300 s"
    if ((armed)) && { compgen -G "$out/masks/*.tmp-$pid" >/dev/null ||
                      compgen -G "$out/confidence/*.tmp-$pid" >/dev/null; }; then
      kill -STOP "$pid"; break
    fi
    if ((i % 64 == 0)); then
      kill -0 "$pid" 2>/dev/null || die "task $k ended before it could be stopped midway"
      d=$(masks_done "$out" "$k")
      ((d > 0)) && armed=1
      if ((d * 2 >= n)); then kill -STOP "$pid"; break; fi
    fi
  done
  # and the batch script waiting for it, so that signals to the job wait too
  local parent
  parent=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status")
  tr '\0' ' ' <"/proc/$parent/cmdline" | grep -q slurm_script && kill -STOP "$parent"
  # A temp file lives for microseconds (open, write, close, rename), so the stop
  # usually lands just after the write it was aimed at.
  how=$(cd "$out" && compgen -G "*/*.tmp-$pid" | head -n 1) || true
  how=${how:+inside the write of $how}
  echo "task $k (clipes pid $pid) frozen ${how:-between two writes}: $(masks_done "$out" "$k") of $n masks written" >&2
  echo "$pid"
}

plant_partial() {  # plant_partial OUT K PID: what a kill inside a write leaves, if the real kill left none
  local out=$1 k=$2 pid=$3 id
  [ -z "$(find "$out" -name '*.tmp-*')" ] || return 0
  for id in ${SHARD_IDS[k]}; do
    [ -f "$out/masks/$id.png" ] && continue
    head -c $(($(stat -c %s "$WORK/ref/masks/$id.png") / 2)) "$WORK/ref/masks/$id.png" >"$out/masks/$id.png.tmp-$pid"
    echo "no temp file left by the kill: planted a half-written masks/$id.png.tmp-$pid, as a kill inside write_file_atomic leaves"
    return 0
  done
}

# =====================================================================================
say "1. the README's array: --array=0-$((SHARDS - 1)), one core per task"
OUT1=$WORK/out-array
write_job "$OUT1" "$WORK/jobs/array.sbatch"
cat "$WORK/jobs/array.sbatch"
A1=$(submit "$WORK/jobs/array.sbatch")
echo "submitted array job $A1"
wait_jobs 300 "$A1"
show_tasks "$A1"
check "array: all $SHARDS tasks COMPLETED with exit 0" tasks_completed "$A1"

say "clipes eval on the merged OUT"
set +e
"$CLIPES" eval --pred "$OUT1" --gt "$DATA" --split val --classes toy --json "$OUT1/eval.json"
EVAL_RC=$?
set -e
check "eval on the merged OUT: exit 0, no missing predictions" test "$EVAL_RC" -eq 0
verify_out "$OUT1" "array"

# =====================================================================================
say "2. pre-emption: scancel one task while it writes, resubmit it with sbatch --array=K"
K=1
OUT2=$WORK/out-preempt
write_job "$OUT2" "$WORK/jobs/preempt.sbatch"
A2=$(submit "$WORK/jobs/preempt.sbatch")
echo "submitted array job $A2"
PID=$(freeze_midway "$OUT2" "$K")
# The signal reaches it where it stands: SIGTERM to all the job's processes
# (pending while they are stopped), then the cancel, whose SIGCONT lets the
# SIGTERM act: clipes finishes the image in flight, records the run
# (runs.jsonl "stopped_by") and exits 143, or the cancel's own kill ends it.
scancel --full --signal=TERM "${A2}_${K}"
echo "scancel --full --signal=TERM ${A2}_${K}"
sleep 1
scancel "${A2}_${K}"
echo "scancel ${A2}_${K}"
wait_for 60 "the cancelled task's process to end" bash -c "! kill -0 $PID 2>/dev/null"
wait_jobs 300 "$A2"
show_tasks "$A2"
DONE_BEFORE=$(masks_done "$OUT2" "$K")
set -- ${SHARD_IDS[K]}
echo "after the cancel: $DONE_BEFORE of $# masks of shard $K, $(find "$OUT2" -name '*.tmp-*' | wc -l) temp files"
check "pre-emption: task $K ended CANCELLED, midway ($DONE_BEFORE of $# masks)" \
  test "$(job_field "${A2}_${K}" JobState)" = CANCELLED -a "$DONE_BEFORE" -gt 0 -a "$DONE_BEFORE" -lt "$#"
set +e
"$CLIPES" eval --pred "$OUT2" --gt "$DATA" --split val --classes toy >"$WORK/log/eval-preempt.txt" 2>&1
EVAL_RC=$?
set -e
grep -m1 '^images:' "$WORK/log/eval-preempt.txt" || true
check "pre-emption: eval before the resubmit exits 1 (missing predictions)" test "$EVAL_RC" -eq 1
plant_partial "$OUT2" "$K" "$PID"
echo "temp files in OUT before the rerun: $(find "$OUT2" -name '*.tmp-*' | wc -l)"
B2=$(submit "$WORK/jobs/preempt.sbatch" --array="$K")
echo "resubmitted: sbatch --array=$K -> job $B2"
wait_jobs 300 "$B2"
check "pre-emption: the resubmitted task COMPLETED with exit 0" tasks_completed "$B2"
check "pre-emption: the resubmitted task skipped the $DONE_BEFORE masks already done" \
  test "$(json_count "$OUT2/run.shard-$K-of-$SHARDS.json" skipped_complete)" = "$DONE_BEFORE"
verify_out "$OUT2" "pre-emption"

# =====================================================================================
say "3. node failure: kill slurmd and its tasks mid-task, restart slurmd"
K=2
OUT3=$WORK/out-node
write_job "$OUT3" "$WORK/jobs/node.sbatch"
A3=$(submit "$WORK/jobs/node.sbatch")
echo "submitted array job $A3"
PID=$(freeze_midway "$OUT3" "$K")
kill -KILL "$SLURMD_PID"; wait "$SLURMD_PID" 2>/dev/null || true
echo "killed slurmd (pid $SLURMD_PID)"
# a restart takes the node's processes with it: its slurmstepds and their jobs
VICTIMS=$(marked_pids "$MUNGED_PID" "$CTLD_PID" | tr '\n' ' ')
for p in $VICTIMS; do
  printf '  killing pid %s: %s\n' "$p" "$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c1-90 || true)"
done
kill -KILL $VICTIMS 2>/dev/null || true
plant_partial "$OUT3" "$K" "$PID"
echo "temp files in OUT before the rerun: $(find "$OUT3" -name '*.tmp-*' | wc -l)"
squeue -r -j "$A3" -o "$SQ_FORMAT"
echo "waiting for slurmctld to notice (SlurmdTimeout=10)"
node_down() { case $(node_state) in down*) return 0 ;; *) return 1 ;; esac; }
wait_for 120 "the node to be marked down" node_down
sinfo -N -o '%N %T %E'
start_slurmd
wait_for 60 "the node to be idle again" node_is idle
sinfo -N -o '%N %T'
requeued_or_ended() { [ "$(job_field "${A3}_$K" JobState)" != RUNNING ]; }
wait_for 60 "task $K to be requeued or to end" requeued_or_ended
# Slurm holds a requeued batch job back (Reason=BeginTime, StartTime ~2 min
# ahead); a real cluster would wait, the smoke test starts it at once.
for ((i = 0; i < 50; i++)); do
  [ "$(job_field "${A3}_$K" JobState)" = PENDING ] || break
  if [ "$(job_field "${A3}_$K" Reason)" = BeginTime ]; then
    squeue -r -j "$A3" -o "$SQ_FORMAT"
    echo "task $K requeued (restarts $(job_field "${A3}_$K" Restarts)), held until $(job_field "${A3}_$K" StartTime): scontrol update StartTime=now"
    scontrol update JobId="${A3}_$K" StartTime=now
    break
  fi
  sleep 0.2
done
wait_jobs 300 "$A3"
show_tasks "$A3"
REDO=()
for ((k = 0; k < SHARDS; k++)); do
  [ "$(job_field "${A3}_$k" JobState)" = COMPLETED ] || REDO+=("$k")
done
REQUEUED=$(job_field "${A3}_$K" Restarts)
echo "task $K restarts (requeues by Slurm): ${REQUEUED:-0}"
JOBS3=("$A3")
if [ ${#REDO[@]} -gt 0 ]; then
  R=$(IFS=,; echo "${REDO[*]}")
  B3=$(submit "$WORK/jobs/node.sbatch" --array="$R")
  echo "not requeued: resubmitted sbatch --array=$R -> job $B3"
  wait_jobs 300 "$B3"
  JOBS3+=("$B3")
  check "node failure: the resubmitted tasks COMPLETED with exit 0" tasks_completed "$B3"
else
  check "node failure: Slurm requeued task $K and it COMPLETED" test "${REQUEUED:-0}" -ge 1
fi
set +e
"$CLIPES" eval --pred "$OUT3" --gt "$DATA" --split val --classes toy >"$WORK/log/eval-node.txt" 2>&1
EVAL_RC=$?
set -e
grep -m1 '^mIoU' "$WORK/log/eval-node.txt" || true
check "node failure: eval exits 0" test "$EVAL_RC" -eq 0
verify_out "$OUT3" "node failure"

say "summary: $FAILS failed checks"
[ "$FAILS" -eq 0 ]
