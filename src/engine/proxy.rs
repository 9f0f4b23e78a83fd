//! A transaction-stateless proxy in the built-in target (RFC 3261 §16.11),
//! so `mixed` mode has a registrar + proxy to go through with no external
//! server: a request whose Request-URI user has a registered binding is
//! forwarded to the bound Contact with our Via on top and Max-Forwards
//! decremented; a response whose top Via is ours loses it and goes to the
//! next Via. No Record-Route is added, so in-dialog requests go end to end.
//!
//! It is no open relay and no reflector (issue 13):
//! - requests go only to a binding whose Contact is the address its
//!   REGISTER came from (`Binding::own_address`): a user cannot point the
//!   proxy at a third party, a loopback service or any IP literal it likes;
//! - the forwarded request's copy of the sender's Via gets `received` and
//!   `rport` (RFC 3261 §18.2.1, RFC 3581): the response goes back to where
//!   the request came from, not to an address the sender wrote;
//! - our branch is a MAC, keyed by the server secret, of the incoming
//!   branch and that return address (§16.11 derives the branch from the
//!   incoming one, so retransmissions, the ACK of a non-2xx and CANCEL get
//!   the same branch). A response is forwarded only if its top Via carries
//!   the MAC of its second Via: only responses to requests this proxy
//!   forwarded, and only to the address each came from.

use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

use super::endpoint::Endpoint;
use super::util::hex16;
use super::wire::hop_of;
use crate::flow::{Flow, TransportKind};
use crate::sip::{Builder, Message};

fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `z9hG4bK` + the `p` that marks the proxy's branches.
const PROXY_BRANCH: &[u8] = b"z9hG4bKp";

impl Endpoint {
    /// Where to forward `msg`, if it is for a user bound here at the
    /// address that registered it, and that is not this endpoint itself.
    pub(super) fn proxy_target(&mut self, msg: &Message<'_>) -> Option<(Vec<u8>, Flow)> {
        if self.aor_map.is_empty() || !self.role.server().is_some_and(|s| s.proxy) {
            return None;
        }
        let uri = msg.uri()?;
        let mut user = std::mem::take(&mut self.aor_user);
        let akey = self.aor_key(uri, &mut user);
        self.aor_user = user;
        let &ai = self.aor_map.get(&akey?)?;
        let a = self.aors.get(ai)?;
        let b = a.contacts.iter().find(|b| b.own_address)?;
        let contact = a.uri(b);
        if contact == uri {
            // Already rewritten (an in-dialog request aimed at the contact).
            return None;
        }
        // Forwarded over UDP: the response path (`proxy_response`, back
        // along the Via) is datagram-only too.
        let hop = hop_of(contact, TransportKind::Udp)?;
        let local = self.role.server()?.local;
        if hop.peer == local {
            return None;
        }
        Some((contact.to_vec(), hop))
    }

    /// The 16 hex digits after [`PROXY_BRANCH`] of the branch for a request
    /// that came with branch `inbound` from `back` (where its responses go).
    fn branch_mac(&self, inbound: &[u8], back: SocketAddr) -> [u8; 16] {
        let ip = match back.ip() {
            IpAddr::V4(v) => v.to_ipv6_mapped(),
            IpAddr::V6(v) => v,
        };
        let mut h = Sha256::new();
        h.update(self.branch_key);
        h.update(ip.octets());
        h.update(back.port().to_be_bytes());
        h.update((inbound.len() as u64).to_be_bytes());
        h.update(inbound);
        let d = h.finalize();
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[..8]);
        hex16(u64::from_be_bytes(w))
    }

    /// Forward a request that came from `from` (§16.6 steps 1, 3, 8;
    /// §16.11 branch; §18.2.1 `received`, RFC 3581 `rport`).
    pub(super) fn proxy_request(
        &mut self,
        from: Flow,
        msg: &Message<'_>,
        contact: &[u8],
        hop: Flow,
    ) {
        let Some(method) = msg.method() else { return };
        let Some(top) = msg.top_via() else { return };
        let mf = msg.max_forwards().unwrap_or(70);
        let branch = self.branch_mac(top.branch.unwrap_or(b""), from.peer);
        let mut out = self.take_buf();
        let Endpoint { wire, .. } = self;
        let mut b = Builder::request(&mut out, &method, contact);
        let [sip_version, transport, sent_by] = wire.via_prefix(hop.transport);
        b.header_parts(b"Via", &[sip_version, transport, sent_by, b"p", &branch]);
        let mut ctype = None;
        let mut first_via = true;
        let mut via_buf = Vec::new();
        for (name, value) in msg.all_headers() {
            if eq_ic(name, b"max-forwards") {
                continue;
            }
            if eq_ic(name, b"content-length") || eq_ic(name, b"l") {
                continue;
            }
            if eq_ic(name, b"content-type") || eq_ic(name, b"c") {
                ctype = Some(value);
                continue;
            }
            if first_via && (eq_ic(name, b"via") || eq_ic(name, b"v")) {
                first_via = false;
                let rest = value.strip_prefix(top.raw).unwrap_or(b"");
                write_via_with_source(&mut via_buf, top.raw, from.peer);
                via_buf.extend_from_slice(rest);
                b.header(b"Via", &via_buf);
                continue;
            }
            b.header(name, value);
        }
        b.header_u32(b"Max-Forwards", mf.saturating_sub(1));
        b.finish(ctype, msg.body());
        self.counters.proxied += 1;
        self.send(hop, out);
    }

    /// A response whose top Via is ours: if that Via carries the MAC of the
    /// next one (a request we forwarded), pop it and send the response to
    /// the address the request came from; otherwise drop it as unexpected.
    /// Returns false for a response not addressed to the proxy at all.
    pub(super) fn proxy_response(&mut self, msg: &Message<'_>) -> bool {
        let mut vias = msg.vias();
        let Some(top) = vias.next() else { return false };
        let local = &self.wire.hostport;
        let host = &local[..local.len() - port_len(local)];
        let port = self.role.server().map(|s| s.local.port());
        let Some(mac) = top.branch.and_then(|b| b.strip_prefix(PROXY_BRANCH)) else {
            return false;
        };
        if top.host != host || top.port.or(Some(5060)) != port {
            return false;
        }
        let back = vias.next().and_then(|next| {
            let host = next.received.unwrap_or(next.host);
            let host = host
                .strip_prefix(b"[")
                .and_then(|h| h.strip_suffix(b"]"))
                .unwrap_or(host);
            let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
            let port = match next.rport {
                Some(Some(p)) => p,
                _ => next.port.unwrap_or(5060),
            };
            let back = SocketAddr::new(ip, port);
            (self.branch_mac(next.branch.unwrap_or(b""), back) == mac).then_some(back)
        });
        let Some(back) = back else {
            // Not a response to a request this proxy forwarded (or mangled):
            // never sent on to whatever the second Via names.
            self.counters.unexpected += 1;
            return true;
        };
        let mut out = self.take_buf();
        let line_end = memchr::memmem::find(msg.as_bytes(), b"\r\n").unwrap_or(0);
        out.extend_from_slice(&msg.as_bytes()[..line_end]);
        out.extend_from_slice(b"\r\n");
        let mut popped = false;
        let mut ctype = None;
        for (name, value) in msg.all_headers() {
            if !popped && (eq_ic(name, b"via") || eq_ic(name, b"v")) {
                popped = true;
                // Drop the first via-parm of this line; keep the rest.
                let rest = value
                    .strip_prefix(top.raw)
                    .map(|r| {
                        r.trim_ascii_start()
                            .strip_prefix(b",")
                            .unwrap_or(r)
                            .trim_ascii()
                    })
                    .unwrap_or(b"");
                if !rest.is_empty() {
                    push_header(&mut out, name, rest);
                }
                continue;
            }
            if eq_ic(name, b"content-length") || eq_ic(name, b"l") {
                continue;
            }
            if eq_ic(name, b"content-type") || eq_ic(name, b"c") {
                ctype = Some(value);
                continue;
            }
            push_header(&mut out, name, value);
        }
        let body = msg.body();
        if let Some(ct) = ctype.filter(|_| !body.is_empty()) {
            push_header(&mut out, b"Content-Type", ct);
        }
        let mut nb = [0u8; 20];
        push_header(
            &mut out,
            b"Content-Length",
            super::util::dec(body.len() as u64, &mut nb),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        self.counters.proxied += 1;
        self.send(Flow::udp(back), out);
        true
    }
}

/// `via` (one via-parm as received) with any `received` and `rport` it had
/// replaced by the address it actually came from.
fn write_via_with_source(out: &mut Vec<u8>, via: &[u8], src: SocketAddr) {
    out.clear();
    for (i, part) in via.split(|c| *c == b';').enumerate() {
        let name = part
            .split(|c| *c == b'=')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        if i > 0 && (eq_ic(name, b"received") || eq_ic(name, b"rport")) {
            continue;
        }
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(part);
    }
    out.extend_from_slice(format!(";received={};rport={}", src.ip(), src.port()).as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Length of `:port` at the end of a `host:port` string.
fn port_len(hp: &[u8]) -> usize {
    match hp.iter().rposition(|c| *c == b':') {
        Some(i) if !hp[i..].contains(&b']') => hp.len() - i,
        _ => 0,
    }
}
