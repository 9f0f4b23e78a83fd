//! The transaction layer of RFC 3261 §17: client transactions (§17.1)
//! with their retransmission and timeout timers, response matching
//! (§17.1.3), the server INVITE transaction (§17.2.1 with RFC 6026) and
//! its responses, and the absorber records that replace waiting states
//! (Completed of client INVITE and of server non-INVITE, Confirmed of
//! server INVITE).

use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::event::{Event, MethodKind, Outcome};
use super::state::{Absorbed, REACK, SessKind, SessState, TxKind, TxState, Txn};
use super::timers::{Life, TimerKind, later};
use super::util::hex16;
use super::wheel::TimerId;
use super::wire::method_kind;
use crate::flow::Flow;
use crate::sip::Message;

impl Endpoint {
    /// Start a client transaction with the request in `msg` (consumed):
    /// stores a copy, sends it, arms Timer B/F at 64·T1 and, over an
    /// unreliable flow only, Timer A/E at T1. RFC 3261 §17.1.1.2: "If an
    /// unreliable transport is being used, the client transaction MUST start
    /// timer A"; §17.1.2.2 says the same of Timer E. A reliable transport
    /// delivers the request or reports a failure (§17.1.4), so nothing is
    /// retransmitted however late the answer; B and F still bound the wait.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_txn(
        &mut self,
        now: Instant,
        kind: TxKind,
        method: MethodKind,
        key: u64,
        dest: Flow,
        owner: u32,
        msg: Vec<u8>,
    ) -> (u32, u32) {
        let owner_gen = self.sessions.generation(owner);
        let sent_ns = self.to_ns(now);
        let uncredentialed = self
            .sessions
            .get(owner)
            .is_some_and(|s| s.challenge.is_empty());
        let prompt = uncredentialed
            && match method {
                MethodKind::Register => true,
                MethodKind::Invite => self.invites_challenged,
                _ => false,
            };
        self.prompt_txns += u32::from(prompt);
        let (ti, g, t) = self.txns.insert();
        t.kind = kind;
        t.state = if kind == TxKind::ClientInvite {
            TxState::Calling
        } else {
            TxState::Trying
        };
        t.method = Some(method);
        t.key = key;
        t.dest = Some(dest);
        t.msg.clear();
        t.msg.extend_from_slice(&msg);
        t.interval_ms = self.timers.t1.as_millis() as u64;
        t.sent_ns = sent_ns;
        t.retransmitted = false;
        t.prompt = prompt;
        t.owner = owner;
        t.owner_gen = owner_gen;
        t.retransmit_timer = TimerId::NONE;
        t.timeout_timer = TimerId::NONE;
        self.client_txns.insert(key, ti);
        self.send(dest, msg);
        let t1 = self.timers.t1;
        let t64 = self.timers.t64();
        if !dest.is_reliable() {
            self.arm_txn(now, t1, TimerKind::TxnRetransmit, ti);
        }
        self.arm_txn(now, t64, TimerKind::TxnTimeout, ti);
        (ti, g)
    }

    /// Free a transaction and its map entry.
    pub(super) fn txn_free(&mut self, ti: u32) {
        if let Some(t) = self.txns.get(ti) {
            let key = t.key;
            if t.kind == TxKind::ServerInvite
                && let Some(from) = t.dest
            {
                let sk = self.source_key(from);
                if let Some(n) = self.source_txns.get_mut(&sk) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.source_txns.remove(&sk);
                    }
                }
            }
            let Some(t) = self.txns.get(ti) else { return };
            let map = if t.kind == TxKind::ServerInvite {
                &mut self.server_txns
            } else {
                &mut self.client_txns
            };
            if map.get(&key) == Some(&ti) {
                map.remove(&key);
            }
            let (a, b) = (t.retransmit_timer, t.timeout_timer);
            self.prompt_txns -= u32::from(t.prompt);
            self.wheel.cancel(a);
            self.wheel.cancel(b);
            self.txns.remove(ti);
        }
    }

    /// The retransmission timer of `ti` fired: send its stored message
    /// again and re-arm with the next interval. Armed only where the RFC
    /// retransmits, so over a reliable flow only for a 2xx.
    pub(super) fn txn_retransmit(&mut self, now: Instant, ti: u32) {
        let t2 = self.timers.t2.as_millis() as u64;
        let Some(t) = self.txns.get_mut(ti) else {
            return;
        };
        let next = match (t.kind, t.state) {
            // Timer A: doubles without cap (§17.1.1.2).
            (TxKind::ClientInvite, TxState::Calling) => t.interval_ms * 2,
            // Timer E: doubles up to T2 in Trying, stays T2 in Proceeding (§17.1.2.2).
            (TxKind::ClientNonInvite, TxState::Trying) => (t.interval_ms * 2).min(t2),
            (TxKind::ClientNonInvite, TxState::Proceeding) => t2,
            // Timer G (§17.2.1) and the 2xx retransmission of §13.3.1.4.
            (TxKind::ServerInvite, TxState::Completed | TxState::Accepted) => {
                (t.interval_ms * 2).min(t2)
            }
            _ => return,
        };
        t.interval_ms = next;
        t.retransmitted = true;
        self.send_txn_copy(ti, true);
        self.arm_txn(
            now,
            Duration::from_millis(next),
            TimerKind::TxnRetransmit,
            ti,
        );
    }

    /// Terminate client transaction `ti` without a final response and tell
    /// its TU why: Timer B/F ([`Outcome::Timeout`], §17.1.1.2, §17.1.2.2)
    /// or a transport failure ([`Outcome::TransportError`], §17.1.4). The
    /// one teardown for both.
    pub(super) fn client_txn_fail(&mut self, now: Instant, ti: u32, outcome: Outcome) {
        let Some(t) = self.txns.get(ti) else { return };
        let (owner, owner_gen) = (t.owner, t.owner_gen);
        self.txn_free(ti);
        if self.sessions.generation(owner) == owner_gen && self.sessions.get(owner).is_some() {
            self.on_txn_failed(now, owner, ti, outcome);
        }
    }

    /// Whether a new server transaction from `from` fits under the caps:
    /// `max_transactions` live server transactions in all, and
    /// `max_transactions_per_source` from one source IP address. A client
    /// endpoint (mixed mode's answering side) has no caps.
    pub(super) fn server_txn_room(&self, from: Flow) -> bool {
        let Some(cfg) = self.role.server() else {
            return true;
        };
        self.server_txns.len() < cfg.max_transactions
            && self
                .source_txns
                .get(&self.source_key(from))
                .is_none_or(|n| *n < cfg.max_transactions_per_source)
    }

    /// The transport could not deliver to `dest`: an ICMP port, host or
    /// network unreachable came back for a datagram sent there, or a
    /// connection to it could not be opened or broke. Transactions match
    /// on peer and transport kind, and on the connection (id or key) when
    /// `dest` names one: a broken connection fails only what was sent on
    /// it.
    ///
    /// RFC 3261 §18.4: the transport informs its user of a failure in
    /// sending; §17.1.4: the client transaction then informs the TU and
    /// terminates at once (§8.1.3.1 treats it like a 503; for the load
    /// generator it is its own failure reason). Every client transaction
    /// whose next hop is `dest` and that still waits for a final response
    /// ends now with [`Outcome::TransportError`] through the same teardown
    /// as Timer B/F: INVITEs in Calling or Proceeding (nothing listens
    /// where the final response would come from), non-INVITEs in Trying or
    /// Proceeding. Their attempts end with one `*Done` event each and their
    /// state is freed. ICMP errors do not say which datagram bounced beyond
    /// its destination, so every such transaction towards `dest` fails.
    ///
    /// Server INVITE transactions answering `dest` end too (§17.2.4: "the
    /// server transaction ... SHOULD inform the TU that a failure has
    /// occurred, and SHOULD transition to the terminated state"): their
    /// responses, 2xx retransmissions included, go nowhere, and a spoofed
    /// INVITE must not draw a dozen datagrams at a closed port. Their TU, a
    /// UAS call not yet confirmed by an ACK, ends with them. Calls already
    /// established (no transaction) and attempts not waiting on a
    /// transaction (calls in hold) are left alone. Returns how many
    /// transactions ended.
    pub fn transport_error(&mut self, now: Instant, dest: Flow) -> usize {
        self.scen_transport_error(now, dest);
        let doomed: Vec<(u32, u32)> = self
            .txns
            .live_indices()
            .filter(|&ti| {
                self.txns.get(ti).is_some_and(|t| {
                    t.dest.is_some_and(|d| {
                        d.peer == dest.peer
                            && d.transport == dest.transport
                            && (dest.conn.is_any() || d.conn == dest.conn)
                    }) && matches!(
                        (t.kind, t.state),
                        (TxKind::ClientInvite, TxState::Calling | TxState::Proceeding)
                            | (
                                TxKind::ClientNonInvite,
                                TxState::Trying | TxState::Proceeding
                            )
                            | (TxKind::ServerInvite, _)
                    )
                })
            })
            .map(|ti| (ti, self.txns.generation(ti)))
            .collect();
        let mut ended = 0;
        for (ti, g) in doomed {
            // An earlier failure may have freed this one with its session
            // (a CANCEL's failure ends the call and its INVITE).
            if self.txns.generation(ti) != g {
                continue;
            }
            let Some(t) = self.txns.get(ti) else { continue };
            if t.kind == TxKind::ServerInvite {
                let (owner, owner_gen) = (t.owner, t.owner_gen);
                self.txn_free(ti);
                if self.sessions.generation(owner) == owner_gen
                    && self.sessions.get(owner).is_some_and(|s| {
                        s.kind == SessKind::UasCall && s.state != SessState::Established
                    })
                {
                    self.sess_free(owner);
                }
            } else {
                self.client_txn_fail(now, ti, Outcome::TransportError);
            }
            ended += 1;
        }
        ended
    }

    /// The timeout timer of `ti` fired (B, F, H or L, 64·T1 on every
    /// transport).
    pub(super) fn txn_timeout(&mut self, now: Instant, ti: u32) {
        let Some(t) = self.txns.get(ti) else { return };
        let (kind, state, owner, owner_gen) = (t.kind, t.state, t.owner, t.owner_gen);
        match (kind, state) {
            // Timer B: only while Calling; Proceeding waits for the TU.
            (TxKind::ClientInvite, TxState::Calling)
            | (TxKind::ClientNonInvite, TxState::Trying | TxState::Proceeding) => {
                self.counters.timeouts += 1;
                self.client_txn_fail(now, ti, Outcome::Timeout);
            }
            // Timer H (no ACK for a non-2xx) and Timer L (RFC 6026, no ACK for a 2xx).
            (TxKind::ServerInvite, TxState::Completed | TxState::Accepted) => {
                self.counters.ack_timeouts += 1;
                self.txn_free(ti);
                if state == TxState::Accepted
                    && self.sessions.generation(owner) == owner_gen
                    && self
                        .sessions
                        .get(owner)
                        .is_some_and(|s| s.state == SessState::Answered)
                {
                    self.sess_free(owner);
                }
            }
            _ => {}
        }
    }

    /// Remember a finished transaction for the lifetime of its waiting
    /// state, as an absorber record (one map entry and one FIFO slot, no
    /// buffer): Timer I of a server INVITE (§17.2.1: retransmitted ACKs are
    /// absorbed), Timer D of a client INVITE (§17.1.1.2: a retransmitted
    /// non-2xx is ACKed again). Timer J of a server non-INVITE keeps its
    /// response too, see [`Self::absorb_response`]. A client non-INVITE's
    /// Completed state (Timer K) needs no record, see [`Self::on_response`].
    ///
    /// `over` is the transaction's flow. On a reliable one these timers are
    /// zero ("Timer D ... zero seconds for reliable transports", §17.1.1.2;
    /// Timer I, §17.2.1; Timer J, §17.2.2): the peer sends no
    /// retransmissions, so no record is kept at all. A live record for the
    /// same key is kept (the first transaction wins).
    pub(super) fn absorb_add(&mut self, now: Instant, key: u64, code: u16, life: Life, over: Flow) {
        if over.is_reliable() || self.absorbers.records.contains_key(&key) {
            return;
        }
        let lasts = match life {
            Life::J => self.timers.t64(),
            Life::I => self.timers.t4,
            Life::D => self.timers.timer_d(),
        };
        let expiry = self.to_ns(later(now, lasts));
        let a = &mut self.absorbers;
        let seq = a.next_seq;
        a.next_seq += 1;
        a.expiry[life as usize].push_back((expiry, key, seq, 0));
        a.records.insert(
            key,
            Absorbed {
                code,
                seq,
                ..Absorbed::default()
            },
        );
    }

    /// The Completed state of a server non-INVITE transaction (Timer J,
    /// §17.2.2): "any retransmissions of the final response that are
    /// received ... the server transaction MUST pass the final response to
    /// the transport layer for retransmission". The record keeps `resp`
    /// byte for byte and the request's `fingerprint` (its bytes and source,
    /// see [`Self::request_fingerprint`]), so a retransmission gets exactly
    /// the response the transaction sent, and nothing runs again: a request
    /// that only shares the branch, sent-by and method is not a
    /// retransmission and is handled as a new request. The stored
    /// responses are bounded by `response_store_bytes` (oldest first); a
    /// reliable flow keeps nothing (Timer J is zero there).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn absorb_response(
        &mut self,
        now: Instant,
        key: u64,
        fingerprint: u64,
        code: u16,
        resp: &[u8],
        over: Flow,
    ) {
        if over.is_reliable() || self.absorbers.records.contains_key(&key) {
            return;
        }
        let expiry = self.to_ns(later(now, self.timers.t64()));
        let a = &mut self.absorbers;
        if resp.len() > a.response_cap {
            return;
        }
        while a.responses.len() + resp.len() > a.response_cap {
            let Some(slot) = a.expiry[Life::J as usize].pop_front() else {
                break;
            };
            a.forget(slot);
        }
        let at = a.responses_base + a.responses.len() as u64;
        a.responses.extend(resp);
        let seq = a.next_seq;
        a.next_seq += 1;
        let end = at + resp.len() as u64;
        a.expiry[Life::J as usize].push_back((expiry, key, seq, end));
        a.records.insert(
            key,
            Absorbed {
                code,
                seq,
                fingerprint,
                at,
                len: resp.len() as u32,
            },
        );
    }

    /// A request matched the Timer J record `rec` (same key and
    /// fingerprint): send its stored response again, to the flow the
    /// retransmission came on. False if the response is gone.
    pub(super) fn absorbed_resend(&mut self, to: Flow, rec: Absorbed) -> bool {
        let a = &self.absorbers;
        let Some(start) = rec.at.checked_sub(a.responses_base) else {
            return false;
        };
        let (start, end) = (start as usize, start as usize + rec.len as usize);
        if end > a.responses.len() || rec.len == 0 {
            return false;
        }
        let mut b = self.take_buf();
        b.extend(self.absorbers.responses.range(start..end));
        self.count_sent_response(rec.code);
        self.send(to, b);
        true
    }

    /// Forget absorber records whose lifetime is over.
    pub(super) fn absorb_sweep(&mut self, now: Instant) {
        let n = self.to_ns(now);
        let a = &mut self.absorbers;
        for life in 0..Life::COUNT {
            while let Some(&slot) = a.expiry[life].front() {
                if slot.0 > n {
                    break;
                }
                a.expiry[life].pop_front();
                a.forget(slot);
            }
        }
    }

    /// A response: match the client transaction (§17.1.3), or a dialog for
    /// a retransmitted 2xx, or an absorber record.
    pub(super) fn on_response(&mut self, now: Instant, from: Flow, msg: &Message<'_>) {
        if self.role.server().is_some() && self.proxy_response(msg) {
            return;
        }
        let (Some(code), Some(via), Some(cseq)) = (msg.status(), msg.top_via(), msg.cseq()) else {
            self.counters.unexpected += 1;
            return;
        };
        let m = method_kind(&cseq.method);
        let key = self.client_txn_key(via.branch.unwrap_or(b""), m);
        let Some(&ti) = self.client_txns.get(&key) else {
            if m == MethodKind::Invite && (200..300).contains(&code) {
                self.on_stray_2xx(now, from, msg);
            } else if let Some(rec) = self.absorbers.records.get(&key).map(|r| r.code) {
                self.counters.duplicates += 1;
                if rec & REACK != 0 && code >= 300 {
                    let ack = self.build_ack_from_response(msg);
                    self.send(from, ack);
                }
            } else if via.host == &self.wire.via_host[..]
                && via.port.unwrap_or(5060) == self.wire.via_port
                && via.branch.is_some_and(is_our_branch)
            {
                // A retransmission of a response to one of our finished
                // non-INVITE transactions (Timer K absorbs it).
                self.counters.duplicates += 1;
            } else {
                self.counters.unexpected += 1;
            }
            return;
        };
        // A broken or hostile server may echo our branch with another
        // dialog's Call-ID (§8.1.3.3: the response's Call-ID is the
        // request's). Matching on branch alone (§17.1.3) would then end the
        // wrong call; count it unexpected instead.
        if let Some(t) = self.txns.get(ti)
            && self.sessions.generation(t.owner) == t.owner_gen
            && let Some(s) = self.sessions.get(t.owner)
            && matches!(
                s.kind,
                SessKind::UacCall | SessKind::UacReg | SessKind::UacOptions
            )
            && msg.call_id() != Some(&hex16(s.call_id)[..])
        {
            self.counters.unexpected += 1;
            return;
        }
        let Some(t) = self.txns.get(ti) else {
            return;
        };
        if (200..700).contains(&code)
            && !matches!(t.state, TxState::Completed)
            && let Some(c) = self.counters.responses.get_mut(code as usize)
        {
            *c += 1;
            self.events
                .push_back(Event::FinalResponse { method: m, code });
            if m == MethodKind::Invite && matches!(code, 401 | 407) {
                self.invites_challenged = true;
            }
        }
        let Some(t) = self.txns.get(ti) else {
            return;
        };
        let (kind, state, owner, owner_gen, sent_ns, rtx) = (
            t.kind,
            t.state,
            t.owner,
            t.owner_gen,
            t.sent_ns,
            t.retransmitted,
        );
        let owner_ok =
            self.sessions.generation(owner) == owner_gen && self.sessions.get(owner).is_some();
        if code >= 200 && self.rtt_events && !rtx && state != TxState::Completed {
            let rtt = Duration::from_nanos(self.to_ns(now).saturating_sub(sent_ns));
            self.emit(Event::TransactionRtt { method: m, rtt });
        }
        match kind {
            TxKind::ClientInvite => {
                if code < 200 {
                    if state == TxState::Calling
                        && let Some(t) = self.txns.get_mut(ti)
                    {
                        // Timers A and B stop; the TU's ring guard bounds Proceeding.
                        t.state = TxState::Proceeding;
                        let (a, b) = (t.retransmit_timer, t.timeout_timer);
                        self.wheel.cancel(a);
                        self.wheel.cancel(b);
                    }
                    if matches!(state, TxState::Calling | TxState::Proceeding) && owner_ok {
                        self.uac_invite_provisional(now, owner, code, msg);
                    }
                } else if code < 300 {
                    // §17.1.1.2: a 2xx terminates the transaction; the TU ACKs.
                    self.txn_free(ti);
                    if owner_ok {
                        self.uac_invite_2xx(now, from, owner, msg);
                    }
                } else {
                    // §17.1.1.3: ACK inside the transaction. The Completed
                    // state (Timer D) shrinks to an absorber record: a
                    // retransmitted final response is ACKed again from it.
                    let ack = self.build_ack_failure(ti, owner, msg);
                    let dest = self.txns.get(ti).and_then(|t| t.dest).unwrap_or(from);
                    self.send(dest, ack);
                    self.txn_free(ti);
                    self.absorb_add(now, key, REACK | code, Life::D, dest);
                    if owner_ok {
                        self.uac_invite_failure(now, owner, code, msg);
                    }
                }
            }
            TxKind::ClientNonInvite => {
                if code < 200 {
                    if let Some(t) = self.txns.get_mut(ti)
                        && t.state == TxState::Trying
                    {
                        t.state = TxState::Proceeding;
                    }
                } else {
                    // Completed (Timer K) needs no state here: a late
                    // retransmission of this response finds no transaction
                    // and, carrying our Via, is counted as a duplicate.
                    self.txn_free(ti);
                    if owner_ok {
                        self.uac_final(now, owner, ti, m, code, msg);
                    }
                }
            }
            TxKind::ServerInvite => {
                self.counters.unexpected += 1;
            }
        }
    }

    pub(super) fn server_invite_txn(
        &mut self,
        now: Instant,
        from: Flow,
        key: u64,
        owner: u32,
    ) -> u32 {
        let owner_gen = self.sessions.generation(owner);
        let t1 = self.timers.t1.as_millis() as u64;
        let sent = self.to_ns(now);
        let (ti, _, t) = self.txns.insert();
        *t = Txn {
            kind: TxKind::ServerInvite,
            state: TxState::Proceeding,
            method: Some(MethodKind::Invite),
            key,
            dest: Some(from),
            msg: std::mem::take(&mut t.msg),
            interval_ms: t1,
            sent_ns: sent,
            retransmitted: false,
            prompt: false,
            owner,
            owner_gen,
            retransmit_timer: super::wheel::TimerId::NONE,
            timeout_timer: super::wheel::TimerId::NONE,
        };
        t.msg.clear();
        self.server_txns.insert(key, ti);
        let sk = self.source_key(from);
        *self.source_txns.entry(sk).or_insert(0) += 1;
        ti
    }

    /// Send a response on the INVITE server transaction and keep it for
    /// retransmission. A non-2xx final starts Timer H and, over an
    /// unreliable flow only, Timer G (Completed, §17.2.1: "If an unreliable
    /// transport is being used, the server transaction MUST start timer
    /// G"). A 2xx starts Timer L (RFC 6026 Accepted) and the 2xx
    /// retransmission on every transport: RFC 3261 §13.3.1.4 has the UAS
    /// core pass the 2xx to the transport "with an interval that starts at
    /// T1 seconds and doubles for each retransmission until it reaches T2
    /// seconds ... until the ACK arrives. This is independent of whatever
    /// transport protocols are used to send the response", because "the
    /// response is retransmitted periodically even if the transport at the
    /// UAS is reliable" to cross UDP hops further on. Over a reliable flow
    /// it therefore goes again only when the ACK is later than T1.
    pub(super) fn txn_respond(&mut self, now: Instant, ti: u32, msg: Vec<u8>, code: u16) {
        let Some(t) = self.txns.get_mut(ti) else {
            self.put_buf(msg);
            return;
        };
        t.msg.clear();
        t.msg.extend_from_slice(&msg);
        let dest = t.dest;
        if code >= 200 {
            t.state = if code < 300 {
                TxState::Accepted
            } else {
                TxState::Completed
            };
            let (t1, t64) = (self.timers.t1, self.timers.t64());
            let reliable = dest.is_some_and(|d| d.is_reliable());
            if code < 300 || !reliable {
                self.arm_txn(now, t1, TimerKind::TxnRetransmit, ti);
            }
            self.arm_txn(now, t64, TimerKind::TxnTimeout, ti);
        }
        match dest {
            Some(d) => self.send(d, msg),
            None => self.put_buf(msg),
        }
    }

    /// An ACK at the server INVITE transaction layer (§17.2.1): the ACK for
    /// a non-2xx final moves Completed to Confirmed, a retransmitted one is
    /// absorbed in Confirmed. Returns false when no transaction takes it:
    /// the ACK of a 2xx is a transaction of its own, for the dialog
    /// (§13.3.1.4).
    pub(super) fn server_txn_ack(&mut self, now: Instant, key: u64) -> bool {
        if self.absorbers.records.contains_key(&key) {
            // Confirmed (Timer I): retransmitted ACKs are absorbed.
            self.counters.duplicates += 1;
            return true;
        }
        if let Some(&ti) = self.server_txns.get(&key)
            && let Some(t) = self.txns.get(ti)
            && t.state == TxState::Completed
            && let Some(over) = t.dest
        {
            // §17.2.1: Confirmed; the state shrinks to an absorber record
            // for T4 (Timer I) instead of keeping the response buffer.
            self.txn_free(ti);
            self.absorb_add(now, key, 0, Life::I, over);
            return true;
        }
        false
    }
}

/// Whether `b` has the shape of a branch this engine generates
/// (`z9hG4bK` + 16 lowercase hex digits, see `build_req`): only such a
/// branch with our Via can be a late duplicate; any other is unexpected.
fn is_our_branch(b: &[u8]) -> bool {
    b.len() == 23
        && b.starts_with(b"z9hG4bK")
        && b[7..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}
