#!/usr/bin/env bash
# A single-node Slurm on this host, for tests/test_slurm.py: munged, slurmctld and slurmd as
# root, with ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups, no systemd
# needed). Installs Debian's slurm-wlm and munge when apt-get is there, writes
# /etc/slurm/slurm.conf, starts the daemons and waits until `sinfo` shows the node idle.
# Exit 0 when `srun hostname` works; non-zero (with the reason on stderr) otherwise, and the
# Slurm tests then skip with that reason. Safe to run twice: running daemons are left as they are.
set -uo pipefail

fail() { echo "start-slurm: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (the daemons and the test jobs run as root)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || fail "slurm-wlm and munge are not installed and apt-get is absent"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q slurm-wlm munge; } >/dev/null || fail "apt-get install slurm-wlm munge failed"
fi

if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
  echo "start-slurm: already running: $(sinfo -h -o '%N %T %c')"
  exit 0
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

# munge: a key (the package usually makes one) and the daemon
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force || fail "munged did not start"
fi
munge -n | unmunge >/dev/null || fail "munge does not validate its own credential"

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
# written by rdbench .ci/start-slurm.sh: one node, root daemons, no cgroups
ClusterName=rdbench
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
# Debian's slurmd also reads cgroup.conf when present; nothing here uses cgroups
rm -f /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld -c || fail "slurmctld did not start: $(tail -5 /var/log/slurm/slurmctld.log 2>/dev/null)"
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -c || fail "slurmd did not start: $(tail -5 /var/log/slurm/slurmd.log 2>/dev/null)"

for _ in $(seq 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated) break ;;
    *down*|*drain*) scontrol update nodename="${host}" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
[ "$state" = idle ] || [ "$state" = mixed ] || [ "$state" = allocated ] \
  || fail "node never became idle (state: ${state:-none}): $(tail -5 /var/log/slurm/slurmd.log 2>/dev/null)"
out=$(timeout 60 srun -N1 -n1 hostname 2>&1) || fail "srun hostname failed: $out"
echo "start-slurm: up: $(sinfo -h -o '%P %N %T cpus=%c mem=%m'); srun hostname -> $out"
