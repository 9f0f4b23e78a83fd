//! What this endpoint writes on the wire that never changes (header
//! fragments built once from its address and configuration), and reading
//! addresses and methods off the wire.

use std::net::{IpAddr, SocketAddr};

use super::event::MethodKind;
use super::util::hex16;
use crate::flow::Flow;
use crate::sip::{self, Method};

/// Per-endpoint constant header fragments, built once.
#[derive(Debug, Default)]
pub(super) struct Consts {
    /// `SIP/2.0/UDP host:port;branch=z9hG4bK`
    pub via_pre: Vec<u8>,
    /// `;rport`
    pub local: Vec<u8>,
    pub domain: Vec<u8>,
    /// `<sip:host:port>` (UAS Contact)
    pub contact_self: Vec<u8>,
    pub sdp_offer: Vec<u8>,
    pub sdp_answer: Vec<u8>,
    pub domain_uri: Vec<u8>,
    /// Our host as written in Via (IPv6 in brackets) and port.
    pub local_host: Vec<u8>,
    pub local_port: u16,
}

/// Built-in SDP bodies: one PCMU audio stream (RFC 4566, RFC 3264).
pub(super) fn default_sdp(local: &SocketAddr, offer: bool) -> Vec<u8> {
    let ip = local.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let id = if offer { 1001 } else { 2002 };
    let port = if offer { 40000 } else { 50000 };
    format!(
        "v=0\r\no=sipstorm {id} {id} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

pub(super) fn hostport(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()).into_bytes(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()).into_bytes(),
    }
}

/// Map a codec method to the engine's compact kind.
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
/// DNS); the port defaults to 5060.
pub(super) fn hop_of(uri: &[u8]) -> Option<Flow> {
    let u = sip::parse_uri(strip_angle(uri))?;
    let host = u.host;
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    Some(Flow::udp(SocketAddr::new(ip, u.port.unwrap_or(5060))))
}

/// The URI inside `<...>` (name-addr form), or the input.
pub(super) fn strip_angle(v: &[u8]) -> &[u8] {
    match (memchr::memchr(b'<', v), memchr::memchr(b'>', v)) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    }
}
