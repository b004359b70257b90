#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm executor's tests and for trying
# `apitune run --executor slurm` by hand: munged, MariaDB + slurmdbd (so that `sacct` works, as on
# real clusters), slurmctld and slurmd, all with their state, sockets and logs under one
# directory and their ports on 127.0.0.1. Debian 12's `slurm-wlm` 22.05, `slurmdbd`, `munge` and
# `mariadb-server` are installed with apt-get when missing (root only).
#
#   scripts/slurm-local.sh start   # installs if needed, starts, prints the environment to export
#   scripts/slurm-local.sh env     # the environment again (SLURM_CONF)
#   scripts/slurm-local.sh stop
#
# Settings: APITUNE_SLURM_DIR (default $TMPDIR/apitune-slurm).
set -euo pipefail

dir="${APITUNE_SLURM_DIR:-${TMPDIR:-/tmp}/apitune-slurm}"
node="$(hostname -s)"
cpus="$(nproc)"
memory_mb="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
db_port=3317
dbd_port=6819
ctld_port=6817
slurmd_port=6818

print_env() {
    echo "export SLURM_CONF=$dir/slurm.conf"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # what, command...
    local what="$1"
    shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "$what did not come up; logs are in $dir/log" >&2
    exit 1
}

install() {
    local missing=()
    for tool in slurmctld slurmd slurmdbd munged mariadbd; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "missing ${missing[*]}: install slurm-wlm slurmdbd munge mariadb-server (Debian/Ubuntu)" >&2
        exit 1
    fi
    echo "installing slurm-wlm, slurmdbd, munge and mariadb-server (once)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
}

write_configs() {
    mkdir -p "$dir"/{munge,mysql,state,spool,log}
    chmod 700 "$dir/munge"
    [ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    local auth="AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket"
    cat >"$dir/slurmdbd.conf" <<CONF
$auth
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
CONF
    chmod 600 "$dir/slurmdbd.conf"
    cat >"$dir/slurm.conf" <<CONF
ClusterName=apitune
SlurmctldHost=$node
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
$auth
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
# For a slurmdbd connection this names the munge socket.
AccountingStoragePass=$dir/munge/munge.socket
MailProg=/bin/true
JobCompType=jobcomp/none
NodeName=$node CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    install
    write_configs
    export SLURM_CONF="$dir/slurm.conf"
    if ! running "$dir/munged.pid"; then
        munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
            --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
            --seed-file="$dir/munge/munge.seed"
        wait_for munged test -S "$dir/munge/munge.socket"
    fi
    if ! running "$dir/mysql.pid"; then
        if [ ! -d "$dir/mysql/mysql" ]; then
            mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=normal \
                >"$dir/log/mariadb-install.log" 2>&1
        fi
        mariadbd --user=root --datadir="$dir/mysql" --bind-address=127.0.0.1 --port=$db_port \
            --socket="$dir/mysql.sock" --pid-file="$dir/mysql.pid" --log-error="$dir/log/mariadb.log" \
            >/dev/null 2>&1 &
        wait_for mariadb mariadb-admin --socket="$dir/mysql.sock" -uroot ping
    fi
    if ! running "$dir/slurmdbd.pid"; then
        # slurmdbd reads slurmdbd.conf beside $SLURM_CONF.
        slurmdbd
        wait_for slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$dbd_port"
        sacctmgr -i add cluster apitune >/dev/null 2>&1 || true
    fi
    if ! running "$dir/slurmctld.pid"; then
        slurmctld -f "$dir/slurm.conf"
        wait_for slurmctld scontrol ping
    fi
    if ! running "$dir/slurmd.pid"; then
        slurmd -f "$dir/slurm.conf"
        wait_for slurmd bash -c "sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'"
    fi
    echo "Slurm cluster \`apitune\` up on $node ($cpus CPUs); state and logs in $dir" >&2
    print_env
}

stop() {
    for daemon in slurmd slurmctld slurmdbd mysql munged; do
        if running "$dir/$daemon.pid"; then
            kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
        fi
    done
    for daemon in slurmd slurmctld slurmdbd mysql munged; do
        for _ in $(seq 1 50); do
            running "$dir/$daemon.pid" || break
            sleep 0.1
        done
        rm -f "$dir/$daemon.pid"
    done
}

case "${1:-}" in
start) start ;;
env) print_env ;;
stop) stop ;;
*)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
