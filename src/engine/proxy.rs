//! A transaction-stateless proxy in the built-in target (RFC 3261 §16.11),
//! so `mixed` mode has a registrar + proxy to go through with no external
//! server: a request whose Request-URI user has a registered binding is
//! forwarded to the bound Contact with our Via on top (its branch derived
//! from the incoming one, so retransmissions, ACK for a non-2xx and CANCEL
//! take the same branch) and Max-Forwards decremented; a response whose top
//! Via is ours loses it and goes to the next Via. No Record-Route is added,
//! so in-dialog requests go end to end.

use std::net::{IpAddr, SocketAddr};

use super::endpoint::Endpoint;
use super::util::{hex16, mix};
use super::wire::hop_of;
use crate::flow::{Flow, TransportKind};
use crate::sip::{self, Builder, Message};

fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Endpoint {
    /// Where to forward `msg`, if it is for a user bound here and the
    /// binding is not this endpoint itself.
    pub(super) fn proxy_target(&self, msg: &Message<'_>) -> Option<(Vec<u8>, Flow)> {
        if self.aor_map.is_empty() || !self.role.server().is_some_and(|s| s.proxy) {
            return None;
        }
        let uri = msg.uri()?;
        let u = sip::parse_uri(uri)?;
        let &ai = self.aor_map.get(&self.aor_key(u.user?, u.host)?)?;
        let a = self.aors.get(ai)?;
        let &(s, l, _) = a.contacts.first()?;
        let contact = a.buf.get(s as usize..s as usize + l as usize)?;
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

    /// Forward a request (§16.6 steps 1, 3, 8; §16.11 branch).
    pub(super) fn proxy_request(&mut self, msg: &Message<'_>, contact: &[u8], hop: Flow) {
        let Some(method) = msg.method() else { return };
        let mf = msg.max_forwards().unwrap_or(70);
        let inbound = msg.top_via().and_then(|v| v.branch).unwrap_or(b"");
        let branch = hex16(mix(self.hash(inbound), 0x9e0c));
        let mut out = self.take_buf();
        let Endpoint { wire, .. } = self;
        let mut b = Builder::request(&mut out, &method, contact);
        let [sip_version, transport, sent_by] = wire.via_prefix(hop.transport);
        b.header_parts(b"Via", &[sip_version, transport, sent_by, b"p", &branch]);
        let mut ctype = None;
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
            b.header(name, value);
        }
        b.header_u32(b"Max-Forwards", mf.saturating_sub(1));
        b.finish(ctype, msg.body());
        self.counters.proxied += 1;
        self.send(hop, out);
    }

    /// A response to a request we forwarded: pop our Via, send it on.
    pub(super) fn proxy_response(&mut self, msg: &Message<'_>) -> bool {
        let mut vias = msg.vias();
        let Some(top) = vias.next() else { return false };
        let local = &self.wire.hostport;
        let host = &local[..local.len() - port_len(local)];
        let port = self.role.server().map(|s| s.local.port());
        let ours = top.branch.is_some_and(|b| b.starts_with(b"z9hG4bKp"))
            && top.host == host
            && top.port.or(Some(5060)) == port;
        if !ours {
            return false;
        }
        let Some(next) = vias.next() else { return true };
        let host = next.received.unwrap_or(next.host);
        let host = host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(host);
        let ip: Option<IpAddr> = std::str::from_utf8(host).ok().and_then(|h| h.parse().ok());
        let port = match next.rport {
            Some(Some(p)) => p,
            _ => next.port.unwrap_or(5060),
        };
        let Some(ip) = ip else { return true };
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
        self.send(Flow::udp(SocketAddr::new(ip, port)), out);
        true
    }
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
