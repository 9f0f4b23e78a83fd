//! Writing UAC requests (RFC 3261 §8.1.1) with `sip::Builder` into pooled
//! buffers, from the endpoint's constant fragments, the compact session
//! state and the compiled templates of `--header` and `--sdp`, with digest
//! credentials when a challenge is kept (§22.2); the ACKs of §17.1.1.3 for
//! non-2xx finals; starting a request's client transaction.

use std::time::Instant;

use crate::auth;
use crate::engine::endpoint::{Endpoint, Scratch};
use crate::engine::event::MethodKind;
use crate::engine::state::TxKind;
use crate::engine::template::Values;
use crate::engine::util::{dec, hex16};
use crate::engine::wire::branch_text;
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

impl Req {
    /// An out-of-dialog request that starts something (RFC 3261 §8.1.1):
    /// the requests `--header` lines go into. CANCEL (§9.1: it must match
    /// the INVITE, and proxies answer it hop by hop), the ACK of a 2xx and
    /// BYE (in the dialog, §12.2) carry none.
    fn is_initial(self) -> bool {
        matches!(self, Req::Invite | Req::Register(_) | Req::Options)
    }
}

/// The user part of a `sip:user@domain` URI this endpoint wrote (a call's
/// To URI); empty when there is none.
fn user_of(uri: &[u8]) -> &[u8] {
    let rest = uri.strip_prefix(b"sip:").unwrap_or(uri);
    memchr::memrchr(b'@', rest).map_or(&[][..], |at| &rest[..at])
}

impl Endpoint {
    /// Write request `req` of session `si` into a pooled buffer; `over` is
    /// the transport it goes on (the Via's sent-protocol).
    ///
    /// Out-of-dialog requests carry the preloaded Route set (§8.1.2) and
    /// go to the target; in-dialog ones the dialog's (§12.2.1.1). The From
    /// user is `--caller` (default the user), the digest username the
    /// users file's (default the user), the extra header lines and the
    /// offer are the compiled templates with this request's values.
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
            caller,
            auth_name,
            extra,
            body,
        } = scratch;
        let (Some(s), Some(cfg)) = (sessions.get(si), role.client()) else {
            return out;
        };
        let user = s.user as usize;
        // Our user's name (the AOR user) and the From user.
        name.clear();
        cfg.users.write_name(user, name);
        let name: &[u8] = name;
        caller.clear();
        let from_user: &[u8] = if cfg.caller.write(&cfg.users, user, user as u64, caller) {
            caller
        } else {
            name
        };
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
        // Templates are rendered before the message starts: the body's
        // length goes ahead of it, and auth-int hashes it.
        let initial = req.is_initial();
        extra.clear();
        let mut offer: &[u8] = b"";
        let mut content_type: &[u8] = b"application/sdp";
        if initial {
            let v = Values {
                user: name,
                callee: if req == Req::Invite {
                    user_of(s.get(s.to_uri))
                } else {
                    b""
                },
                domain: &wire.domain,
                call_id: &ch,
                seq: cs,
                local_ip: &wire.local_ip,
                local_port: &wire.port_text,
                media_ip: &wire.media_ip,
                media_ip_type: wire.media_ip_type,
                media_port: &wire.media_port,
                users: &cfg.users,
                index: user,
            };
            for h in cfg.headers.iter() {
                h.render_line(extra, &v);
            }
            if req == Req::Invite {
                offer = match &cfg.offer {
                    None => &wire.sdp_offer,
                    Some(o) => {
                        content_type = &o.content_type;
                        match o.body.as_literal() {
                            Some(l) => l,
                            None => {
                                body.clear();
                                o.body.render(body, &v);
                                body
                            }
                        }
                    }
                };
            }
        }
        let mut b = Builder::request(&mut out, &method, ruri);
        let [sip_version, transport, sent_by] = wire.via_prefix(over);
        b.header_parts(b"Via", &[sip_version, transport, sent_by, &bh]);
        b.header(b"Max-Forwards", b"70");
        match req {
            Req::Ack2xx | Req::Bye if s.routes.1 > 0 => {
                b.header(b"Route", s.get(s.routes));
            }
            Req::Invite | Req::Cancel | Req::Register(_) | Req::Options
                if !wire.route_set.is_empty() =>
            {
                b.header(b"Route", &wire.route_set);
            }
            _ => {}
        }
        b.header_parts(
            b"From",
            &[
                &wire.from_prefix,
                from_user,
                b"@",
                &wire.domain,
                b">;tag=",
                &th,
            ],
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
            b.header_parts(b"Contact", &wire.contact_parts(name, over));
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
            cfg.users.write_password(user, password);
            auth_name.clear();
            cfg.users.write_auth_name(user, auth_name);
            let ha1 = auth::Ha1::from_challenge(&chal, auth_name, password);
            header.clear();
            if auth::write_authorization(
                header,
                &chal,
                auth_name,
                &ha1,
                mname,
                ruri,
                offer,
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
        b.raw(extra);
        if wire.user_agent {
            b.header(b"User-Agent", b"sipstorm");
        }
        if req == Req::Invite {
            b.finish(Some(content_type), offer);
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
