#!/usr/bin/env bash
# Starts the project's Kamailio (scripts/kamailio/kamailio.cfg) on
# udp:127.0.0.1:PORT, with everything it writes under RUNDIR:
#   RUNDIR/kamailio.pid   pid of the main process
#   RUNDIR/kamailio.log   its log (stderr, -E)
#   RUNDIR/kamailio_ctl   binrpc socket: kamcmd -s unixs:RUNDIR/kamailio_ctl ...
#
# Usage: scripts/kamailio/start.sh RUNDIR [PORT]
#   or   KAMAILIO_RUNDIR=... KAMAILIO_PORT=... scripts/kamailio/start.sh
# PORT defaults to 5070. Returns once Kamailio answers on its ctl socket and
# prints shell assignments (KAMAILIO_PID=..., KAMAILIO_CTL=...) on stdout.
# Stop it with scripts/kamailio/stop.sh RUNDIR (also safe in a trap).
# With KAMAILIO_TCP_PORT and KAMAILIO_TLS_PORT set it also listens on
# tcp:127.0.0.1:TCP_PORT and tls:127.0.0.1:TLS_PORT (needs Debian's
# kamailio-tls-modules and openssl): a self-signed certificate for
# 127.0.0.1 is made in RUNDIR (cert.pem, key.pem; a client trusts
# cert.pem) with RUNDIR/tls.cfg pointing at it. With KAMAILIO_WS_PORT and
# KAMAILIO_WSS_PORT set as well it also takes SIP over WebSocket (RFC 7118)
# on tcp:127.0.0.1:WS_PORT (ws) and tls:127.0.0.1:WSS_PORT (wss, the same
# certificate), with Debian's kamailio-websocket-modules (xhttp, websocket).
# Extra env: KAMAILIO_LOG_LEVEL (default 2), KAMAILIO_CHILDREN (default 2),
# KAMAILIO_SHM_MB (256), KAMAILIO_PKG_MB (32), KAMAILIO_DEFINES (extra
# config defines, space-separated, e.g. "AUTH_SHA256" for SHA-256 digests),
# KAMAILIO_CFG (a config in this directory or a path; default kamailio.cfg),
# KAMAILIO_LISTEN6=1 (also listen on udp:[::1]:PORT, as define LISTEN6).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

rundir=${1:-${KAMAILIO_RUNDIR:-}}
port=${2:-${KAMAILIO_PORT:-5070}}
[ -n "$rundir" ] || { echo "usage: $0 RUNDIR [PORT]" >&2; exit 2; }
[[ "$port" =~ ^[0-9]+$ ]] || { echo "start.sh: bad port '$port'" >&2; exit 2; }
command -v kamailio >/dev/null || { echo "start.sh: kamailio not installed (scripts/install-test-deps.sh)" >&2; exit 3; }
command -v kamcmd >/dev/null || { echo "start.sh: kamcmd not installed (scripts/install-test-deps.sh)" >&2; exit 3; }

mkdir -p "$rundir"
rundir=$(cd "$rundir" && pwd)
ctl="unixs:$rundir/kamailio_ctl"
log="$rundir/kamailio.log"
pidfile="$rundir/kamailio.pid"

if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "start.sh: kamailio already running in $rundir (pid $(cat "$pidfile"))" >&2
  exit 1
fi
rm -f "$pidfile" "$rundir/kamailio_ctl"

# -DD: the main process stays in the foreground (our child), still forking
# its workers; -E: log to stderr, which goes to the log file.
defines=()
for d in ${KAMAILIO_DEFINES:-}; do defines+=(-A "$d"); done
proto_flags=(-T -S)
if [ -n "${KAMAILIO_TCP_PORT:-}" ] && [ -n "${KAMAILIO_TLS_PORT:-}" ]; then
  command -v openssl >/dev/null || { echo "start.sh: openssl not installed" >&2; exit 3; }
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$rundir/key.pem" -out "$rundir/cert.pem" >"$rundir/openssl.log" 2>&1 \
    || { echo "start.sh: openssl failed: $(cat "$rundir/openssl.log")" >&2; exit 3; }
  cat >"$rundir/tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $rundir/key.pem
certificate = $rundir/cert.pem

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
EOF
  defines+=(-A WITH_STREAMS -A "TCP_LISTEN=tcp:127.0.0.1:$KAMAILIO_TCP_PORT"
    -A "TLS_LISTEN=tls:127.0.0.1:$KAMAILIO_TLS_PORT" -A "TLS_CFG=\"$rundir/tls.cfg\"")
  if [ -n "${KAMAILIO_WS_PORT:-}" ] && [ -n "${KAMAILIO_WSS_PORT:-}" ]; then
    defines+=(-A WITH_WEBSOCKET -A "WS_LISTEN=tcp:127.0.0.1:$KAMAILIO_WS_PORT"
      -A "WSS_LISTEN=tls:127.0.0.1:$KAMAILIO_WSS_PORT")
  fi
  proto_flags=(-S)
fi

cfg=${KAMAILIO_CFG:-kamailio.cfg}
[ -f "$cfg" ] || cfg="$here/$cfg"
[ -f "$cfg" ] || { echo "start.sh: no config '$cfg'" >&2; exit 2; }
listeners="udp:127.0.0.1:$port"
if [ "${KAMAILIO_LISTEN6:-0}" = 1 ]; then
  defines+=(-A "LISTEN6=udp:[::1]:$port")
  listeners="$listeners and udp:[::1]:$port"
fi

kamailio -f "$cfg" -DD -E \
  -Y "$rundir" -P "$pidfile" -w "$rundir" \
  -A "LISTEN=udp:127.0.0.1:$port" \
  -A "CTL_SOCKET=\"$ctl\"" \
  -A "LOG_LEVEL=${KAMAILIO_LOG_LEVEL:-2}" "${defines[@]}" \
  -m "${KAMAILIO_SHM_MB:-256}" -M "${KAMAILIO_PKG_MB:-32}" \
  -n "${KAMAILIO_CHILDREN:-2}" "${proto_flags[@]}" \
  >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$rundir/kamailio.shpid"

# Ready when the ctl socket answers (at most ~10 s).
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: kamailio exited during startup; log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if kamcmd -s "$ctl" core.uptime >/dev/null 2>&1; then
    [ -s "$pidfile" ] || echo "$pid" >"$pidfile"
    echo "start.sh: kamailio pid $pid on $listeners, ctl $ctl, log $log" >&2
    echo "KAMAILIO_PID=$pid"
    echo "KAMAILIO_CTL=$ctl"
    echo "KAMAILIO_PORT=$port"
    echo "KAMAILIO_LOG=$log"
    exit 0
  fi
  sleep 0.1
done
echo "start.sh: kamailio did not answer on $ctl within 10 s; log:" >&2
tail -n 30 "$log" >&2
kill "$pid" 2>/dev/null || true
exit 1
