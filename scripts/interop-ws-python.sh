#!/usr/bin/env bash
# An independent SIP over WebSocket client against sipstorm serve (issue 16,
# RFC 7118), on 127.0.0.1: scripts/ws-register.py, built on the Python
# `websockets` library (Debian's python3-websockets) with digest auth from
# hashlib, registers USERS users, each on its own connection, with
#   ws    serve --listen ws:127.0.0.1:P
#   wss   serve --listen wss:127.0.0.1:Q with a certificate made here by
#         openssl (the client trusts it)
# and checks serve's own counts when it stops: every Upgrade taken, no
# connection failed. Debian's python (/usr/bin/python3) is used: that is
# where python3-websockets installs.
#
# Usage: scripts/interop-ws-python.sh [CASE...]   (no CASE = ws wss)
# Env: SIPSTORM (binary), USERS (50), INTEROP_KEEP=1.
. "$(dirname "$0")/interop-lib.sh"

USERS=${USERS:-50}
PY=/usr/bin/python3
need openssl
[ -x "$PY" ] || fail "$PY is not installed: run scripts/install-test-deps.sh"
"$PY" -c 'import websockets' 2>/dev/null \
  || fail "python3-websockets is not installed: run scripts/install-test-deps.sh"

SIPSTORM_BIN=$(sipstorm_bin)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >"$WORK/openssl.log" 2>&1 \
  || fail "openssl could not make a certificate: $(cat "$WORK/openssl.log")"

# client_case KIND: serve on KIND, the Python client registers USERS users.
client_case() {
  local kind=$1 port serve_pid rc=0
  port=$(free_tcp_port)
  local tls=() ca=()
  if [ "$kind" = wss ]; then
    tls=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
    ca=(--ca "$WORK/cert.pem")
  fi
  timeout 120 "$SIPSTORM_BIN" serve --listen "$kind:127.0.0.1:$port" "${tls[@]}" \
    --workers 2 --quiet >"$WORK/serve-$kind.out" 2>&1 &
  serve_pid=$!
  _interop_pids+=("$serve_pid")
  wait_tcp_listen "$port" || { cat "$WORK/serve-$kind.out" >&2; fail "serve did not listen on $kind:$port"; }
  timeout 120 "$PY" "$ROOT/scripts/ws-register.py" "$kind://127.0.0.1:$port/" "$USERS" "${ca[@]}" \
    >"$WORK/client-$kind.out" 2>&1 || rc=$?
  cat "$WORK/client-$kind.out" >&2
  kill -TERM "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
  [ "$rc" -eq 0 ] || fail "$kind: the Python client failed"
  grep -q "ws-register: $USERS/$USERS registered over $kind" "$WORK/client-$kind.out" \
    || fail "$kind: not every user registered"
  local said
  said=$(grep "connections opened" "$WORK/serve-$kind.out" || true)
  log "serve: ${said#sipstorm serve: }"
  [[ "$said" == *"ws upgrades $USERS"* ]] || fail "$kind: serve did not count $USERS Upgrades"
  [[ "$said" == *"failed 0"* ]] || fail "$kind: serve counted failed connections"
  log "$kind: $USERS users registered by the Python websockets client with digest auth"
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(ws wss)
for c in "${cases[@]}"; do
  case "$c" in
    ws | wss) client_case "$c" ;;
    *) fail "unknown case $c" ;;
  esac
done
interop_pass "${cases[*]}"
