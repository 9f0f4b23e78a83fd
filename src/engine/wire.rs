//! What this endpoint writes on the wire that never changes (header
//! fragments built once from its address and configuration), and reading
//! addresses and methods off the wire.

use std::net::{IpAddr, SocketAddr};

use super::config::ClientConfig;
use super::event::MethodKind;
use super::template::MEDIA_PORT;
use super::util::hex16;
use crate::flow::{ConnId, Flow, TransportKind};
use crate::sip::{self, Method};

/// Per-endpoint constant header fragments, built once.
#[derive(Debug, Default)]
pub(super) struct Wire {
    /// ` host:port;rport;branch=z9hG4bK`: our Via after its sent-protocol,
    /// up to the branch's 16 hex digits (see [`Wire::via_prefix`]).
    pub via_sent_by: Vec<u8>,
    /// Our `host:port` (IPv6 in brackets): Contact URIs, our Via's sent-by.
    pub hostport: Vec<u8>,
    /// Our host as written in Via (IPv6 in brackets) and our port, to
    /// recognise our own Via in a response.
    pub via_host: Vec<u8>,
    pub via_port: u16,
    /// Our address (IPv6 in brackets), `{local_ip}` of templates: the
    /// socket's, whatever Via and Contact say.
    pub local_ip: Vec<u8>,
    /// A WebSocket client's Via and Contact name no address of ours but a
    /// random `.invalid` host (RFC 7118 §5.2, §8): its Contact is then
    /// `sip:` with `;transport=ws` over WS and WSS alike.
    pub ws_invalid_host: bool,
    /// `via_port` in decimal (`{local_port}`).
    pub port_text: Vec<u8>,
    /// Our address as SDP writes it: IPv6 without brackets (RFC 4566 §5.7).
    pub media_ip: Vec<u8>,
    /// `4` or `6`.
    pub media_ip_type: &'static [u8],
    /// The offer's media port in decimal.
    pub media_port: Vec<u8>,
    /// Host of AORs and Request-URIs (`--domain`, default the target).
    pub domain: Vec<u8>,
    /// `sip:` + domain: REGISTER and OPTIONS Request-URI.
    pub domain_uri: Vec<u8>,
    /// `<sip:host:port>`: the UAS Contact.
    pub contact_self: Vec<u8>,
    /// The start of our From value up to the user: `<sip:`, or
    /// `"Display" <sip:` with `--from-display`.
    pub from_prefix: Vec<u8>,
    /// The preloaded Route set as one header value (`<uri>, <uri>`); empty
    /// when there is none.
    pub route_set: Vec<u8>,
    /// Write our `User-Agent` (false when an extra header sets one).
    pub user_agent: bool,
    /// The UAS Contact per transport token of the request's Via (`TCP`:
    /// `<sip:host:port;transport=tcp>`, `TLS`: `<sips:host:port>`), for a
    /// server listening on several transports; see [`Wire::contact_for`].
    pub contacts: Vec<(TransportKind, Vec<u8>)>,
    pub sdp_offer: Vec<u8>,
    pub sdp_answer: Vec<u8>,
}

impl Wire {
    /// The fragments of an endpoint at `local` serving `domain`; an empty
    /// `sdp` means the built-in offer and answer.
    pub(super) fn new(local: SocketAddr, domain: Vec<u8>, sdp: &[u8]) -> Wire {
        let hostport = hostport(&local);
        let mut via_sent_by = b" ".to_vec();
        via_sent_by.extend_from_slice(&hostport);
        via_sent_by.extend_from_slice(b";rport;branch=z9hG4bK");
        let mut contact_self = b"<sip:".to_vec();
        contact_self.extend_from_slice(&hostport);
        contact_self.push(b'>');
        let mut domain_uri = b"sip:".to_vec();
        domain_uri.extend_from_slice(&domain);
        let body = |offer| {
            if sdp.is_empty() {
                default_sdp(&local, offer)
            } else {
                sdp.to_vec()
            }
        };
        let via_host = match local {
            SocketAddr::V4(v) => v.ip().to_string().into_bytes(),
            SocketAddr::V6(v) => format!("[{}]", v.ip()).into_bytes(),
        };
        Wire {
            via_sent_by,
            local_ip: via_host.clone(),
            ws_invalid_host: false,
            via_host,
            via_port: local.port(),
            port_text: local.port().to_string().into_bytes(),
            media_ip: local.ip().to_string().into_bytes(),
            media_ip_type: if local.is_ipv4() { b"4" } else { b"6" },
            media_port: MEDIA_PORT.to_string().into_bytes(),
            hostport,
            domain,
            domain_uri,
            contact_self,
            from_prefix: b"<sip:".to_vec(),
            route_set: Vec::new(),
            user_agent: true,
            contacts: Vec::new(),
            sdp_offer: body(true),
            sdp_answer: body(false),
        }
    }

    /// The fragments a load generator's settings add: the From display
    /// name (a quoted-string, RFC 3261 §25.1, with `"` and `\` escaped),
    /// the preloaded Route set (§8.1.2) and whether an extra header
    /// replaces our User-Agent.
    pub(super) fn with_client(mut self, cfg: &ClientConfig) -> Wire {
        if !cfg.from_display.is_empty() {
            let mut p = b"\"".to_vec();
            for c in cfg.from_display.bytes() {
                if c == b'"' || c == b'\\' {
                    p.push(b'\\');
                }
                p.push(c);
            }
            p.extend_from_slice(b"\" <sip:");
            self.from_prefix = p;
        }
        for (i, r) in cfg.routes.iter().enumerate() {
            if i > 0 {
                self.route_set.extend_from_slice(b", ");
            }
            self.route_set.push(b'<');
            self.route_set.extend_from_slice(r.as_bytes());
            self.route_set.push(b'>');
        }
        self.user_agent = !cfg
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(b"User-Agent"));
        if matches!(cfg.transport, TransportKind::Ws | TransportKind::Wss) {
            self.set_invalid_host(cfg.seed);
        }
        self
    }

    /// Write Via and Contact as a browser's SIP WebSocket client does (RFC
    /// 7118 §5.2 and its §8 examples, `Via: SIP/2.0/WSS df7jal23ls0d.invalid`,
    /// `Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>`): a client
    /// that cannot know the address the server sees uses a random host
    /// under `.invalid` (RFC 2606 §2), without a port; the server answers
    /// on the connection (`rport` and the connection itself, RFC 7118
    /// §5.3). The name is drawn from `seed`: one per endpoint.
    pub(super) fn set_invalid_host(&mut self, seed: u64) {
        const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut x = seed;
        let mut host = Vec::with_capacity(20);
        for _ in 0..12 {
            // splitmix64 steps: a well-spread name from any seed.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            host.push(ALPHABET[(z % 36) as usize]);
        }
        host.extend_from_slice(b".invalid");
        let mut via = b" ".to_vec();
        via.extend_from_slice(&host);
        via.extend_from_slice(b";rport;branch=z9hG4bK");
        self.via_sent_by = via;
        self.via_host = host.clone();
        // No port in Via: a response's sent-by defaults to 5060 (§18.2.2).
        self.via_port = 5060;
        self.hostport = host;
        self.ws_invalid_host = true;
    }

    /// A server's Contacts: `addr` for requests that came over `kind`.
    pub(super) fn set_listen(&mut self, listen: &[(TransportKind, SocketAddr)]) {
        self.contacts = listen
            .iter()
            .map(|&(kind, addr)| {
                let (open, params) = contact_scheme(kind);
                let mut c = open.to_vec();
                c.extend_from_slice(&hostport(&addr));
                c.extend_from_slice(params);
                c.push(b'>');
                (kind, c)
            })
            .collect();
    }

    /// The Contact of a response to a request whose top Via names
    /// `via_transport` (its sent-protocol token): the address listening on
    /// that transport, else [`Wire::contact_self`].
    pub(super) fn contact_for(&self, via_transport: &[u8]) -> &[u8] {
        self.contacts
            .iter()
            .find(|(k, _)| k.via_token().as_bytes().eq_ignore_ascii_case(via_transport))
            .map_or(&self.contact_self, |(_, c)| c)
    }

    /// Our Via up to the branch's 16 hex digits, for a request that goes
    /// over `transport`: the sent-protocol names the transport the message
    /// is sent on (RFC 3261 §18.1.1, §20.42; `WS`/`WSS` from RFC 7118 §5.1),
    /// e.g. `SIP/2.0/TCP host:port;rport;branch=z9hG4bK`.
    #[inline]
    pub(super) fn via_prefix(&self, transport: TransportKind) -> [&[u8]; 3] {
        [
            b"SIP/2.0/",
            transport.via_token().as_bytes(),
            &self.via_sent_by,
        ]
    }

    /// Our Contact for `user` over `over` (RFC 3261 §8.1.1.8):
    /// `<sip:user@host:port>` (with `;transport=tcp`, or `sips:`, see
    /// [`contact_scheme`]), where requests of the dialog or registration
    /// reach us. Every Contact a UAC writes comes from here.
    #[inline]
    pub(super) fn contact_parts<'a>(
        &'a self,
        user: &'a [u8],
        over: TransportKind,
    ) -> [&'a [u8]; 6] {
        let (open, params) = if self.ws_invalid_host {
            (&b"<sip:"[..], &b";transport=ws"[..])
        } else {
            contact_scheme(over)
        };
        [open, user, b"@", &self.hostport, params, b">"]
    }
}

/// How a Contact URI opens and which parameters follow its host:port for a
/// UA reached over `t`: `sip:...;transport=tcp` for TCP (RFC 3261
/// §19.1.1: without it a `sip:` URI means UDP to a numeric host, RFC 3263
/// §4.1), `sips:` for TLS (RFC 5630 §3.1.3: `transport=tls` is deprecated;
/// a SIPS URI means TLS), `;transport=ws` for WebSocket (RFC 7118 §5.2).
pub(super) fn contact_scheme(t: TransportKind) -> (&'static [u8], &'static [u8]) {
    match t {
        TransportKind::Udp => (b"<sip:", b""),
        TransportKind::Tcp => (b"<sip:", b";transport=tcp"),
        TransportKind::Tls => (b"<sips:", b""),
        TransportKind::Ws => (b"<sip:", b";transport=ws"),
        TransportKind::Wss => (b"<sips:", b";transport=ws"),
    }
}

/// Built-in SDP bodies: one PCMU audio stream (RFC 4566, RFC 3264).
fn default_sdp(local: &SocketAddr, offer: bool) -> Vec<u8> {
    let ip = local.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let id = if offer { 1001 } else { 2002 };
    let port = if offer { MEDIA_PORT } else { 50000 };
    format!(
        "v=0\r\no=sipstorm {id} {id} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

/// `ip:port`, or `[ip]:port` for IPv6.
pub(super) fn hostport(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()).into_bytes(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()).into_bytes(),
    }
}

/// IndexByKey a codec method to the engine's compact kind.
pub(super) fn method_kind(m: &Method<'_>) -> MethodKind {
    match m {
        Method::Invite => MethodKind::Invite,
        Method::Ack => MethodKind::Ack,
        Method::Bye => MethodKind::Bye,
        Method::Cancel => MethodKind::Cancel,
        Method::Register => MethodKind::Register,
        Method::Options => MethodKind::Options,
        _ => MethodKind::Other,
    }
}

/// `z9hG4bK` + 16 hex digits.
#[inline]
pub(super) fn branch_text(id: u64) -> [u8; 23] {
    let mut b = [0u8; 23];
    b[..7].copy_from_slice(b"z9hG4bK");
    b[7..].copy_from_slice(&hex16(id));
    b
}

/// Next hop for a SIP URI whose host is an IP literal (the engine does no
/// DNS); the port defaults to 5060. The hop goes over `transport`, the
/// one the dialog or request it serves already uses: an endpoint runs one
/// transport, so a Contact, Record-Route or 3xx target keeps it (the URI's
/// `transport` parameter and RFC 3263's UDP default for numeric hosts are
/// not applied, so a TCP run's BYE does not silently move to UDP).
pub(super) fn hop_of(uri: &[u8], transport: TransportKind) -> Option<Flow> {
    let u = sip::parse_uri(strip_angle(uri))?;
    let host = u.host;
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    let peer = SocketAddr::new(ip, u.port.unwrap_or(5060));
    Some(Flow::new(transport, peer, ConnId::ANY))
}

/// The URI inside `<...>` (name-addr form), or the input.
pub(super) fn strip_angle(v: &[u8]) -> &[u8] {
    match (memchr::memchr(b'<', v), memchr::memchr(b'>', v)) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    }
}
