#!/usr/bin/env bash
# Interop proof, real programs only: calls through the project's Kamailio
# proxy with 407 digest authentication and Record-Route.
#
#   1. start Kamailio (scripts/kamailio/start.sh) on a free udp 127.0.0.1 port
#   2. SIPp registers the 20 callees of scripts/sipp/callees.csv with digest,
#      Contact = the UAS socket (register_contact.xml -key contact ...)
#   3. a SIPp UAS (uas_rr.xml: copies Record-Route into 180/200) listens there
#   4. a SIPp UAC (uac_auth.xml, callers from scripts/sipp/calls.csv):
#      INVITE -> 407 -> ACK; INVITE + Proxy-Authorization -> 180/200 (with
#      Record-Route) -> ACK and BYE through the proxy via the route set
#   5. CALL_CANCELS (default 20) more calls are CANCELled after the 180
#      (uac_auth_cancel.xml / uas_rr_cancel.xml): 200 for the CANCEL, 487
#      for the INVITE, ACK; 0 skips this
#   6. checks: every call of the UAC and of the UAS succeeded, and Kamailio's
#      tm statistics show the relayed INVITE and BYE transactions. SIPp sends
#      only to Kamailio, so the UAS seeing each ACK and BYE means Kamailio
#      routed them: it refuses in-dialog requests without its Route (404),
#      so this also proves the UAC used the Record-Route set.
#   7. stop everything (also on failure, via the trap in interop-lib.sh)
#
# Usage: scripts/interop-kamailio-call-sipp.sh [CALLS] [RATE]
#   CALLS default 100 (at most 200, the lines of calls.csv), RATE default 50/s,
#   hold 200 ms. INTEROP_KEEP=1 keeps the logs. INTEROP_PCAP=1 also records
#   Kamailio's traffic with tshark and checks on the wire that every BYE
#   reached Kamailio with its Route and left it towards the UAS.
#   Exit 0 only if all checks pass.
. "$(dirname "$0")/interop-lib.sh"

CALLS=${1:-${CALL_COUNT:-100}}
RATE=${2:-${CALL_RATE:-50}}
HOLD_MS=${CALL_HOLD_MS:-200}
CANCELS=${CALL_CANCELS:-20}
[ "$CALLS" -ge 1 ] && [ "$CALLS" -le 200 ] || fail "CALLS must be 1..200 (calls.csv has 200 callers)"

need sipp kamailio kamcmd python3

KPORT=$(free_udp_port)
start_kamailio kamailio "$KPORT"
log "kamailio on udp:127.0.0.1:$KPORT (pid $KAM_PID)"

UPORT=$(free_udp_port)
RPORT=$(free_udp_port)
log "registering 20 callees with Contact 127.0.0.1:$UPORT"
rc=0
run_sipp callees "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register_contact.xml" \
  -inf "$SIPP_DIR/callees.csv" -i 127.0.0.1 -p "$RPORT" \
  -key contact "127.0.0.1:$UPORT" -m 20 -r 100 || rc=$?
if [ "$rc" -ne 0 ]; then
  show_sipp_errors callees
  fail "callee registration failed (SIPp exit $rc)"
fi
for i in $(seq 0 19); do printf 'c%04d\n' "$i"; done >"$WORK/callees.txt"
kam_check_bindings "$WORK/callees.txt" "@127.0.0.1:$UPORT" --exact || fail "callee bindings missing in Kamailio"

log "UAS (uas_rr.xml) on 127.0.0.1:$UPORT"
start_sipp_bg uas -sf "$SIPP_DIR/uas_rr.xml" -i 127.0.0.1 -p "$UPORT" -m "$CALLS"
UAS_PID=$BG_PID
wait_udp_listen "$UPORT" 5 || fail "the SIPp UAS did not bind 127.0.0.1:$UPORT"

start_capture kamailio "$KPORT"
tm0=$(kamcmd_ stats.get_statistics tmx: 2>/dev/null | tr '\n' ' ')
CPORT=$(free_udp_port)
cpu0=$(proc_tree_cpu_s "$KAM_PID")
log "UAC (uac_auth.xml): $CALLS calls at $RATE/s, hold ${HOLD_MS}ms, from 127.0.0.1:$CPORT"
rc=0
run_sipp uac "127.0.0.1:$KPORT" -sf "$SIPP_DIR/uac_auth.xml" \
  -inf "$SIPP_DIR/calls.csv" -i 127.0.0.1 -p "$CPORT" \
  -m "$CALLS" -r "$RATE" -d "$HOLD_MS" || rc=$?
cpu1=$(proc_tree_cpu_s "$KAM_PID")
log "sipp uac: rc=$rc $(sipp_summary uac); kamailio cpu $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')s"
uas_rc=0
wait_bg "$UAS_PID" || uas_rc=$?
log "sipp uas: rc=$uas_rc $(sipp_summary uas)"
if [ "$rc" -ne 0 ] || [ "$uas_rc" -ne 0 ]; then
  show_sipp_errors uac
  show_sipp_errors uas
  fail "calls failed (UAC exit $rc, UAS exit $uas_rc)"
fi
uac_ok=$(sipp_stat uac 'SuccessfulCall(C)')
uas_ok=$(sipp_stat uas 'SuccessfulCall(C)')
[ "$uac_ok" = "$CALLS" ] && [ "$uas_ok" = "$CALLS" ] \
  || fail "expected $CALLS successful calls on both sides, got UAC $uac_ok, UAS $uas_ok"
[ "$(sipp_stat uac 'FailedCall(C)')" = 0 ] || fail "UAC reports failed calls"
# Every call was challenged once: SIPp's screen counts the 407s received.
n407=$(awk '$1 == "407" && $2 ~ /^<-/ { print $3; exit }' "$WORK/uac.screen.log" 2>/dev/null)
[ "$n407" = "$CALLS" ] || fail "expected $CALLS x 407 at the UAC, SIPp saw '${n407:-none}'"

tm1=$(kamcmd_ stats.get_statistics tmx: 2>/dev/null | tr '\n' ' ')
log "kamailio tmx stats after: $tm1"
relayed=$(printf '%s\n' "$tm1" | sed -n 's/.*tmx:2xx_transactions = \([0-9]*\).*/\1/p')
# Each call: the authenticated INVITE and the BYE are relayed statefully and
# both end with a 2xx (the 407ed INVITE is answered statelessly by sl).
[ -n "$relayed" ] && [ "$relayed" -ge $((2 * CALLS)) ] \
  || fail "Kamailio relayed $relayed 2xx transactions, expected >= $((2 * CALLS))"

# CANCEL through the proxy: same callees, a UAS that answers 180 and then
# 487 after the CANCEL (uas_rr_cancel.xml) on the same socket.
if [ "$CANCELS" -gt 0 ]; then
  log "CANCEL: $CANCELS calls, INVITE (407 auth) -> 180 -> CANCEL -> 200 + 487 -> ACK"
  start_sipp_bg uas-cancel -sf "$SIPP_DIR/uas_rr_cancel.xml" -i 127.0.0.1 -p "$UPORT" -m "$CANCELS"
  UAS_PID=$BG_PID
  wait_udp_listen "$UPORT" 5 || fail "the SIPp CANCEL UAS did not bind 127.0.0.1:$UPORT"
  rc=0
  run_sipp uac-cancel "127.0.0.1:$KPORT" -sf "$SIPP_DIR/uac_auth_cancel.xml" \
    -inf "$SIPP_DIR/calls.csv" -i 127.0.0.1 -p "$(free_udp_port)" -m "$CANCELS" -r "$RATE" || rc=$?
  uas_rc=0
  wait_bg "$UAS_PID" || uas_rc=$?
  log "sipp uac-cancel: rc=$rc $(sipp_summary uac-cancel); uas-cancel: rc=$uas_rc $(sipp_summary uas-cancel)"
  if [ "$rc" -ne 0 ] || [ "$uas_rc" -ne 0 ]; then
    show_sipp_errors uac-cancel
    show_sipp_errors uas-cancel
    fail "cancelled calls failed (UAC exit $rc, UAS exit $uas_rc)"
  fi
  n487=$(awk '$1 == "487" && $2 ~ /^<-/ { print $3; exit }' "$WORK/uac-cancel.screen.log" 2>/dev/null)
  [ "$n487" = "$CANCELS" ] || fail "expected $CANCELS x 487 at the UAC, SIPp saw '${n487:-none}'"
fi

stop_capture
if [ "${INTEROP_PCAP:-0}" = 1 ] && [ -s "$WORK/kamailio.pcapng" ]; then
  # BYEs into Kamailio carry the Route from Record-Route; BYEs out of it go to the UAS.
  byes_in=$(tshark -r "$WORK/kamailio.pcapng" -Y "sip.Method == \"BYE\" && udp.dstport == $KPORT && sip.Route" -T fields -e sip.Call-ID 2>/dev/null | sort -u | wc -l)
  byes_out=$(tshark -r "$WORK/kamailio.pcapng" -Y "sip.Method == \"BYE\" && udp.srcport == $KPORT && udp.dstport == $UPORT" -T fields -e sip.Call-ID 2>/dev/null | sort -u | wc -l)
  log "wire: $byes_in calls' BYEs reached Kamailio with a Route, $byes_out left it for the UAS"
  [ "$byes_in" = "$CALLS" ] && [ "$byes_out" = "$CALLS" ] || fail "the capture does not show every BYE routed through Kamailio"
fi

{
  echo "calls=$CALLS rate=$RATE hold_ms=$HOLD_MS"
  echo "uac: $(sipp_summary uac)"
  echo "uas: $(sipp_summary uas)"
  [ "$CANCELS" -gt 0 ] && echo "cancelled: $(sipp_summary uac-cancel)"
  echo "kamailio_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')"
  echo "kamailio tmx before: $tm0"
  echo "kamailio tmx after:  $tm1"
} >"$WORK/result.txt"
[ -n "${INTEROP_RESULT:-}" ] && cp "$WORK/result.txt" "$INTEROP_RESULT"
interop_pass "$CALLS calls through Kamailio with 407 auth and Record-Route, all completed on both sides; $CANCELS cancelled with 487"
