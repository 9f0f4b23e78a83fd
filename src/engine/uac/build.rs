//! Writing UAC requests (RFC 3261 §8.1.1) with `sip::Builder` into pooled
//! buffers, from the endpoint's constant fragments and the compact session
//! state, with digest credentials when a challenge is kept (§22.2); the ACKs
//! of §17.1.1.3 for non-2xx finals; starting a request's client transaction.

use std::time::Instant;

use crate::auth;
use crate::engine::endpoint::{Endpoint, Scratch};
use crate::engine::event::MethodKind;
use crate::engine::state::TxKind;
use crate::engine::util::{dec, hex16};
use crate::engine::wire::{branch_text, contact_scheme};
use crate::flow::{Flow, TransportKind};
use crate::sip::{self, Builder, Message, Method};

/// Which request `build_req` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Req {
    Invite,
    Cancel,
    Ack2xx,
    Bye,
    Register(u32),
    Options,
}

impl Endpoint {
    /// Write request `req` of session `si` into a pooled buffer; `over` is
    /// the transport it goes on (the Via's sent-protocol).
    pub(super) fn build_req(
        &mut self,
        si: u32,
        req: Req,
        branch: u64,
        cseq: u32,
        over: TransportKind,
    ) -> Vec<u8> {
        let mut out = self.take_buf();
        let needs_auth = self
            .sessions
            .get(si)
            .is_some_and(|s| !s.challenge.is_empty());
        let cnonce = if needs_auth {
            hex16(self.new_id())
        } else {
            [b'0'; 16]
        };
        let Endpoint {
            sessions,
            role,
            wire,
            scratch,
            ..
        } = self;
        let Scratch {
            name,
            password,
            header,
        } = scratch;
        let (Some(s), Some(cfg)) = (sessions.get(si), role.client()) else {
            return out;
        };
        // Our user's name.
        name.clear();
        cfg.users.write_name(s.user as usize, name);
        let (method, mname): (Method<'_>, &[u8]) = match req {
            Req::Invite => (Method::Invite, b"INVITE"),
            Req::Cancel => (Method::Cancel, b"CANCEL"),
            Req::Ack2xx => (Method::Ack, b"ACK"),
            Req::Bye => (Method::Bye, b"BYE"),
            Req::Register(_) => (Method::Register, b"REGISTER"),
            Req::Options => (Method::Options, b"OPTIONS"),
        };
        let ruri: &[u8] = match req {
            Req::Invite | Req::Cancel => s.get(s.request_uri),
            Req::Ack2xx | Req::Bye => s.get(s.target),
            Req::Register(_) | Req::Options => &wire.domain_uri,
        };
        let bh = hex16(branch);
        let th = hex16(s.tag);
        let ch = hex16(s.call_id);
        let mut nb = [0u8; 20];
        let cs = dec(u64::from(cseq), &mut nb);
        let mut b = Builder::request(&mut out, &method, ruri);
        let [sip_version, transport, sent_by] = wire.via_prefix(over);
        b.header_parts(b"Via", &[sip_version, transport, sent_by, &bh]);
        b.header(b"Max-Forwards", b"70");
        if matches!(req, Req::Ack2xx | Req::Bye) && s.routes.1 > 0 {
            b.header(b"Route", s.get(s.routes));
        }
        b.header_parts(
            b"From",
            &[b"<sip:", name, b"@", &wire.domain, b">;tag=", &th],
        );
        match req {
            Req::Invite | Req::Cancel => {
                b.header_parts(b"To", &[b"<", s.get(s.to_uri), b">"]);
            }
            Req::Ack2xx | Req::Bye => {
                b.header_parts(
                    b"To",
                    &[b"<", s.get(s.to_uri), b">;tag=", s.get(s.remote_tag)],
                );
            }
            Req::Register(_) => {
                b.header_parts(b"To", &[b"<sip:", name, b"@", &wire.domain, b">"]);
            }
            Req::Options => {
                b.header_parts(b"To", &[b"<", &wire.domain_uri, b">"]);
            }
        }
        b.header(b"Call-ID", &ch);
        b.header_parts(b"CSeq", &[cs, b" ", mname]);
        if matches!(req, Req::Invite | Req::Register(_)) {
            let (open, params) = contact_scheme(over);
            b.header_parts(
                b"Contact",
                &[open, name, b"@", &wire.hostport, params, b">"],
            );
        }
        if let Req::Register(e) = req {
            b.header_u32(b"Expires", e);
        }
        if matches!(req, Req::Invite | Req::Register(_))
            && !s.challenge.is_empty()
            && let Ok(mut chal) = auth::parse_challenge(&s.challenge)
        {
            // `chosen_qop` prefers auth; a client configured for auth-int
            // answers with it whenever it is offered.
            if cfg.digest_qop == auth::Qop::AuthInt && chal.qop_auth_int {
                chal.qop_auth = false;
            }
            password.clear();
            cfg.users.write_password(s.user as usize, password);
            let ha1 = auth::Ha1::from_challenge(&chal, name, password);
            header.clear();
            let body: &[u8] = if req == Req::Invite {
                &wire.sdp_offer
            } else {
                b""
            };
            if auth::write_authorization(
                header,
                &chal,
                name,
                &ha1,
                mname,
                ruri,
                body,
                s.nonce_count,
                &cnonce,
            )
            .is_ok()
            {
                let name: &[u8] = if s.challenge_is_proxy {
                    b"Proxy-Authorization"
                } else {
                    b"Authorization"
                };
                b.header(name, header);
            }
        }
        b.header(b"User-Agent", b"sipstorm");
        if req == Req::Invite {
            b.finish(Some(b"application/sdp"), &wire.sdp_offer);
        } else {
            b.finish(None, b"");
        }
        out
    }

    /// §17.1.1.3: the ACK for a non-2xx final response, built from the
    /// INVITE kept in the transaction (Request-URI, top Via, From, Call-ID,
    /// CSeq number, Route) and the response's To.
    pub(in crate::engine) fn build_ack_failure(
        &mut self,
        ti: u32,
        _owner: u32,
        resp: &Message<'_>,
    ) -> Vec<u8> {
        let mut out = self.take_buf();
        let Some(t) = self.txns.get_mut(ti) else {
            return out;
        };
        let inv = std::mem::take(&mut t.msg);
        if let Ok(req) = sip::parse(&inv) {
            let mut nb = [0u8; 20];
            let seq = req.cseq().map_or(1, |c| c.seq);
            let cs = dec(u64::from(seq), &mut nb);
            let mut b =
                Builder::request(&mut out, &Method::Ack, req.uri().unwrap_or(b"sip:invalid"));
            if let Some(v) = req.top_via() {
                b.header(b"Via", v.raw);
            }
            b.header(b"Max-Forwards", b"70");
            for r in req.headers(b"Route") {
                b.header(b"Route", r);
            }
            b.header(b"From", req.header(b"From").unwrap_or(b""));
            b.header(b"To", resp.header(b"To").unwrap_or(b""));
            b.header(b"Call-ID", req.call_id().unwrap_or(b""));
            b.header_parts(b"CSeq", &[cs, b" ACK"]);
            b.finish(None, b"");
        }
        if let Some(t) = self.txns.get_mut(ti) {
            t.msg = inv;
        }
        out
    }

    /// The ACK for a retransmitted non-2xx final response whose transaction
    /// is already an absorber record (Timer D): built from the response
    /// (its Via is our top Via with the INVITE's branch), with the To URI as
    /// Request-URI; the server matches it by branch (§17.2.3).
    pub(in crate::engine) fn build_ack_from_response(&mut self, resp: &Message<'_>) -> Vec<u8> {
        let mut out = self.take_buf();
        let ruri = resp.to().map_or(&b"sip:invalid"[..], |t| t.uri);
        let mut nb = [0u8; 20];
        let seq = resp.cseq().map_or(1, |c| c.seq);
        let cs = dec(u64::from(seq), &mut nb);
        let mut b = Builder::request(&mut out, &Method::Ack, ruri);
        if let Some(v) = resp.top_via() {
            b.header(b"Via", v.raw);
        }
        b.header(b"Max-Forwards", b"70");
        b.header(b"From", resp.header(b"From").unwrap_or(b""));
        b.header(b"To", resp.header(b"To").unwrap_or(b""));
        b.header(b"Call-ID", resp.call_id().unwrap_or(b""));
        b.header_parts(b"CSeq", &[cs, b" ACK"]);
        b.finish(None, b"");
        out
    }

    /// Build request `req` of session `si` and start its client transaction
    /// (§17.1: INVITE or non-INVITE by method); returns the transaction and
    /// its generation.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        si: u32,
        req: Req,
        method: MethodKind,
        branch: u64,
        cseq: u32,
        dest: Flow,
    ) -> (u32, u32) {
        let msg = self.build_req(si, req, branch, cseq, dest.transport);
        let key = self.client_txn_key(&branch_text(branch), method);
        let kind = if method == MethodKind::Invite {
            TxKind::ClientInvite
        } else {
            TxKind::ClientNonInvite
        };
        self.client_txn(now, kind, method, key, dest, si, msg)
    }
}
