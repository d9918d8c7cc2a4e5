#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the `slurm` tests (make test-slurm).
#
#   scripts/slurm_local.sh up      install slurm-wlm and munge if missing (apt, needs root), write a
#                                  config, start munged, slurmctld and slurmd; wait until the node is idle
#   scripts/slurm_local.sh down    stop the three daemons started by `up`
#   scripts/slurm_local.sh conf    print the path of its slurm.conf (for SLURM_CONF)
#
# Everything lives in $SLURM_LOCAL_DIR (default /tmp/enlighten-slurm): slurm.conf, state, logs, the
# munge key and socket. Clients find the cluster through SLURM_CONF (`export SLURM_CONF=$(scripts/slurm_local.sh conf)`).
# The daemons run as root, as on a throwaway test machine; this is not a way to run a shared cluster.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/enlighten-slurm}
CONF=$DIR/slurm.conf
SOCKET=$DIR/munge/munge.socket.2
NODE=$(hostname -s)

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "slurm_local.sh: the local cluster's daemons must be started as root (sudo $0 $1)." >&2
        exit 2
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if ! command -v apt-get >/dev/null; then
        echo "slurm_local.sh: slurmctld, slurmd and munged are missing and apt-get is not available." \
             "Install SLURM and munge with your system's package manager, then run this again." >&2
        exit 2
    fi
    echo "slurm_local.sh: installing slurm-wlm and munge (apt-get)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log,munge}
    cat > "$CONF" <<EOF
# Written by scripts/slurm_local.sh: one node, this machine, for tests.
ClusterName=enlighten-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s)
AuthInfo=socket=$SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobRequeue=1
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
# Jobs that outlive their time limit get SIGTERM (submitit's timeout signal), then SIGKILL after KillWait.
KillWait=10
MinJobAge=600
InactiveLimit=0
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
    need_root up
    install_packages
    write_config
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 700 "$DIR/munge"; chmod 400 "$DIR/munge/munge.key"
    if ! pgrep -f "munged.*$SOCKET" >/dev/null; then
        munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
               --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    fi
    pgrep -f "slurmctld -f $CONF" >/dev/null || slurmctld -f "$CONF"
    pgrep -f "slurmd -f $CONF" >/dev/null || slurmd -f "$CONF"
    export SLURM_CONF=$CONF
    for _ in $(seq 60); do
        if sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
            echo "slurm_local.sh: cluster up (node $NODE, $(nproc) CPUs); export SLURM_CONF=$CONF"
            return
        fi
        sleep 1
    done
    echo "slurm_local.sh: the node did not come up in 60 s; logs in $DIR/log" >&2
    tail -5 "$DIR"/log/*.log >&2 || true
    exit 1
}

down() {
    if [ -f "$CONF" ]; then  # jobs still running belong to the cluster we stop: end them first
        SLURM_CONF=$CONF scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(SLURM_CONF=$CONF squeue -h 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if [ -s "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 20); do
        pgrep -f "(slurmctld|slurmd) -f $CONF|munged.*$SOCKET" >/dev/null || break
        sleep 0.5
    done
    rm -rf "$DIR/state" "$DIR/spool"
    echo "slurm_local.sh: cluster down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    conf) echo "$CONF" ;;
    *) echo "usage: $0 up|down|conf" >&2; exit 2 ;;
esac
