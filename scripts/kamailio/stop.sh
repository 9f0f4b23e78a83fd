#!/usr/bin/env bash
# Stops the Kamailio that scripts/kamailio/start.sh started in RUNDIR:
# SIGTERM to its main process (which stops its workers), then SIGKILL to the
# main process and its direct children if they are still there after 5 s.
# Safe to call twice or when nothing runs (exit 0); meant for trap handlers.
#
# Usage: scripts/kamailio/stop.sh RUNDIR   (or KAMAILIO_RUNDIR=...)
set -uo pipefail

rundir=${1:-${KAMAILIO_RUNDIR:-}}
[ -n "$rundir" ] || { echo "usage: $0 RUNDIR" >&2; exit 2; }

pids=()
for f in "$rundir/kamailio.pid" "$rundir/kamailio.shpid"; do
  if [ -s "$f" ]; then
    p=$(cat "$f")
    [[ "$p" =~ ^[0-9]+$ ]] && pids+=("$p")
  fi
done
[ ${#pids[@]} -gt 0 ] || exit 0

# Only processes that are really kamailio (a pid file may be stale).
live=()
for p in $(printf '%s\n' "${pids[@]}" | sort -u); do
  if kill -0 "$p" 2>/dev/null && grep -qa kamailio "/proc/$p/cmdline" 2>/dev/null; then
    live+=("$p")
  fi
done
[ ${#live[@]} -gt 0 ] || { rm -f "$rundir/kamailio.pid" "$rundir/kamailio.shpid"; exit 0; }

children=()
for p in "${live[@]}"; do
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do children+=("$c"); done
done

kill -TERM "${live[@]}" 2>/dev/null
for _ in $(seq 1 50); do
  alive=0
  for p in "${live[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for p in "${live[@]}" "${children[@]}"; do
  if kill -0 "$p" 2>/dev/null && grep -qa kamailio "/proc/$p/cmdline" 2>/dev/null; then
    echo "stop.sh: kamailio pid $p ignored SIGTERM; SIGKILL" >&2
    kill -KILL "$p" 2>/dev/null
  fi
done
# Reap if it is our child (no-op otherwise).
wait "${live[@]}" 2>/dev/null
rm -f "$rundir/kamailio.pid" "$rundir/kamailio.shpid"
echo "stop.sh: kamailio stopped ($rundir)" >&2
exit 0
