#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py (Debian's slurm-wlm + munge).
#
#   tests/slurm/cluster.sh install          install slurm-wlm and munge with apt-get when missing
#   tests/slurm/cluster.sh start STATE_DIR  write /etc/slurm/{slurm,gres}.conf, start munged
#                                           (unless one already answers), slurmctld and slurmd;
#                                           wait until the node is idle
#   tests/slurm/cluster.sh stop STATE_DIR   stop exactly the daemons `start` started (pid files in
#                                           STATE_DIR) and remove the config files it wrote
#   tests/slurm/cluster.sh check            exit 0 when the SLURM and munge programs are installed
#
# Runs as root without systemd.  The config goes to the default path /etc/slurm/slurm.conf because
# the slurm jobstep strips SLURM_CONF from the job environment.  An existing slurm.conf that this
# script did not write is never touched (start fails instead).  slurm.conf.template beside this
# script documents the cluster: fake GPU GRES (File=/dev/null), no accounting, MinJobAge=300.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MARKER="advfeatures-test-cluster"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MUNGE_PID=/run/munge/munged.advfeatures-test.pid
PROGS=(munged munge unmunge slurmctld slurmd sbatch squeue scancel scontrol sinfo)

die() { echo "cluster.sh: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else die "needs root (or passwordless sudo) to run: $*"
    fi
}

missing_programs() {
    local p out=()
    for p in "${PROGS[@]}"; do command -v "$p" >/dev/null || out+=("$p"); done
    echo "${out[@]:-}"
}

cmd_check() {
    local m; m="$(missing_programs)"
    [ -z "$m" ] || die "missing programs: $m (install with: tests/slurm/cluster.sh install)"
}

cmd_install() {
    if [ -z "$(missing_programs)" ]; then echo "cluster.sh: slurm-wlm and munge already installed"; return; fi
    command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge by hand"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null
    cmd_check
    echo "cluster.sh: installed slurm-wlm and munge"
}

ours() { [ -f "$1" ] && grep -q "$MARKER" "$1"; }

# pid of a live daemon recorded in a pid file, or nothing
live_pid() {
    local f="$1" pid
    [ -s "$f" ] || return 0
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

wait_idle() {
    local node="$1" state="" i
    for i in $(seq 1 120); do
        state="$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n1 || true)"
        case "$state" in
            idle|mixed|allocated) return 0 ;;
            down*|drain*|unknown*|"") ;;
        esac
        # the node registers as "unknown"/"down" first; ReturnToService=2 usually brings it
        # up by itself, a resume makes sure
        if [ "$i" -eq 20 ] || [ "$i" -eq 60 ]; then
            scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.25
    done
    die "node $node did not become idle (state: '${state}'); see $STATE/slurmctld.log and $STATE/slurmd.log"
}

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "start must run as root (slurmd needs it)"
    cmd_check
    if [ -e "$CONF" ] && ! ours "$CONF"; then
        die "$CONF exists and was not written by this script: not starting a test cluster over a real one"
    fi
    mkdir -p "$STATE"/ctld "$STATE"/spool
    if [ -n "$(live_pid "$STATE/slurmctld.pid")" ] || [ -n "$(live_pid "$STATE/slurmd.pid")" ]; then
        die "a test cluster from $STATE is already running; stop it first"
    fi
    local node cpus
    node="$(hostname -s)"
    cpus="$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)"
    [ -n "$cpus" ] || cpus="$(nproc)"
    mkdir -p /etc/slurm
    sed -e "s|@NODE@|$node|g" -e "s|@CPUS@|$cpus|g" -e "s|@STATE@|$STATE|g" \
        "$HERE/slurm.conf.template" > "$CONF"
    printf '# %s: fake GPU for tests (written by tests/slurm/cluster.sh)\nNodeName=%s Name=gpu File=/dev/null\n' \
        "$MARKER" "$node" > "$GRES"

    # munge: reuse a running munged that answers, else start our own
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
        chmod 0400 /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        if id munge >/dev/null 2>&1; then
            chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
            su -s /bin/sh munge -c "munged --pid-file=$MUNGE_PID"
        else
            munged --force --pid-file="$MUNGE_PID"
        fi
        for _ in $(seq 1 40); do (munge -n | unmunge) >/dev/null 2>&1 && break; sleep 0.25; done
        (munge -n | unmunge) >/dev/null 2>&1 || die "munged did not start"
        cp "$MUNGE_PID" "$STATE/munged.pid"  # munged runs as user munge: its own pid file is in /run/munge
    fi

    slurmctld
    slurmd
    wait_idle "$node"
    echo "cluster.sh: one-node cluster up on $node ($cpus CPUs, 1 fake GPU), state in $STATE"
}

stop_pidfile() {
    local f="$1" pid
    pid="$(live_pid "$f")"
    [ -n "$pid" ] || { rm -f "$f"; return 0; }
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$f"
}

cmd_stop() {
    # cancel leftover test jobs first so slurmd does not leave job steps behind
    if [ -n "$(live_pid "$STATE/slurmctld.pid")" ]; then scancel --full --quiet --user="$(id -un)" 2>/dev/null || true; fi
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    stop_pidfile "$STATE/munged.pid"
    if ours "$CONF"; then rm -f "$CONF"; fi
    if ours "$GRES"; then rm -f "$GRES"; fi
    echo "cluster.sh: stopped the test cluster of $STATE"
}

case "${1:-}" in
    install) cmd_install ;;
    check) cmd_check ;;
    start|stop)
        [ -n "${2:-}" ] || die "usage: $0 $1 STATE_DIR"
        mkdir -p "$2"
        STATE="$(cd "$2" && pwd)"
        "cmd_$1" ;;
    *) die "usage: $0 install|check|start STATE_DIR|stop STATE_DIR" ;;
esac
