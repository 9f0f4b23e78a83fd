//! Where a message came from or goes to, as the engine and the transport
//! both name it: a transport kind, the peer's address and, for stream
//! transports, which connection of the worker's connection table.
//!
//! RFC 3261 §18.2.2: a response goes back on the connection its request
//! came in on, so the engine keys transactions and answers on the whole
//! [`Flow`], never on a bare socket address. A leaf module: no I/O, no
//! protocol knowledge, usable from every layer.

use std::fmt;
use std::net::SocketAddr;

/// How bytes travel to a peer: RFC 3261 §18 (UDP, TCP), §26.2 (TLS),
/// RFC 7118 (WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransportKind {
    #[default]
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl TransportKind {
    /// Every kind, in the order the command line lists them.
    pub const ALL: [TransportKind; 5] = [
        TransportKind::Udp,
        TransportKind::Tcp,
        TransportKind::Tls,
        TransportKind::Ws,
        TransportKind::Wss,
    ];

    /// Reliable transports carry no SIP retransmissions and zero the
    /// absorbing timers (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
    pub const fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// TLS underneath (`sips:` URIs, RFC 5630).
    pub const fn is_secure(self) -> bool {
        matches!(self, TransportKind::Tls | TransportKind::Wss)
    }

    /// Stream transports frame messages themselves (Content-Length, or one
    /// WebSocket message per SIP message).
    pub const fn is_stream(self) -> bool {
        self.is_reliable()
    }

    /// The transport token of a Via header (RFC 3261 §20.42, RFC 7118 §5.1).
    pub const fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    /// The lower-case name used by flags, `;transport=` parameters and
    /// reports.
    pub const fn name(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Ws => "ws",
            TransportKind::Wss => "wss",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown transport '{s}' (expected udp, tcp, tls, ws or wss)"))
    }
}

/// A connection in one worker's connection table, or a connection key.
///
/// On a received message it names the connection the bytes came in on, so
/// the answer can go back on it (§18.2.2). On a message to send it is one
/// of:
///
/// - that same connection (an id the transport issued, top bit clear);
/// - a *key* ([`ConnId::key`], top bit set): "the connection this key
///   stands for, to this peer, opened if need be". The engine of a load
///   generator names the connection a request needs this way: one key per
///   user, per call, or per slot of a shared pool (see
///   [`ConnectionMode`]). The transport keeps one connection per (kind,
///   peer, key) and reports its closing with the key, so transactions
///   waiting on it fail together (RFC 3261 §18.4);
/// - [`ConnId::ANY`]: any open connection to the peer, opened if need be.
///
/// Datagram flows always carry [`ConnId::ANY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl ConnId {
    /// No particular connection.
    pub const ANY: ConnId = ConnId(0);
    /// The bit that marks a key; connection ids never have it.
    const KEY_BIT: u32 = 1 << 31;

    pub const fn is_any(self) -> bool {
        self.0 == 0
    }

    /// The key `k` (its low 31 bits).
    pub const fn key(k: u32) -> ConnId {
        ConnId(Self::KEY_BIT | (k & !Self::KEY_BIT))
    }

    /// Whether this is a key rather than a connection id.
    pub const fn is_key(self) -> bool {
        self.0 & Self::KEY_BIT != 0
    }
}

/// How a load generator's requests share stream connections (SIPp's `-t
/// t1`/`-t tn`, `-t l1`/`-t ln`): the engine turns it into the key of each
/// request's [`Flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionMode {
    /// A pool of this many connections per worker, kept open for the whole
    /// run; each attempt takes one (`-t t1` is a pool of one).
    Shared(u32),
    /// One connection per user, kept open for the whole run: a phone that
    /// stays connected to its registrar.
    User,
    /// One connection per attempt (`-t tn`): opened by its first request,
    /// closed when the attempt ends.
    Call,
}

impl Default for ConnectionMode {
    fn default() -> Self {
        ConnectionMode::Shared(1)
    }
}

impl fmt::Display for ConnectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionMode::Shared(n) => write!(f, "shared({n})"),
            ConnectionMode::User => f.write_str("user"),
            ConnectionMode::Call => f.write_str("call"),
        }
    }
}

/// Transport kind, peer address and connection: everything the engine needs
/// to answer where a message came from, and the transport needs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: TransportKind,
    pub peer: SocketAddr,
    pub conn: ConnId,
}

impl Flow {
    pub const fn new(transport: TransportKind, peer: SocketAddr, conn: ConnId) -> Flow {
        Flow {
            transport,
            peer,
            conn,
        }
    }

    /// A UDP datagram flow to or from `peer`.
    pub const fn udp(peer: SocketAddr) -> Flow {
        Flow::new(TransportKind::Udp, peer, ConnId::ANY)
    }

    /// See [`TransportKind::is_reliable`].
    pub const fn is_reliable(&self) -> bool {
        self.transport.is_reliable()
    }

    /// The same peer and transport on any connection: where a new request
    /// to this peer may go.
    pub const fn any_conn(self) -> Flow {
        Flow::new(self.transport, self.peer, ConnId::ANY)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.peer)?;
        if !self.conn.is_any() {
            write!(f, "#{}", self.conn.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for k in TransportKind::ALL {
            assert_eq!(k.name().parse::<TransportKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
            assert_eq!(k.via_token().to_ascii_lowercase(), k.name());
        }
        assert_eq!("TLS".parse::<TransportKind>(), Ok(TransportKind::Tls));
        let e = "sctp".parse::<TransportKind>().unwrap_err();
        assert!(e.contains("sctp") && e.contains("udp"), "{e}");
    }

    #[test]
    fn reliability_table() {
        let cases = [
            (TransportKind::Udp, false, false),
            (TransportKind::Tcp, true, false),
            (TransportKind::Tls, true, true),
            (TransportKind::Ws, true, false),
            (TransportKind::Wss, true, true),
        ];
        for (k, reliable, secure) in cases {
            assert_eq!(k.is_reliable(), reliable, "{k}");
            assert_eq!(k.is_secure(), secure, "{k}");
        }
    }

    #[test]
    fn flow_display_and_any() {
        let peer: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(Flow::udp(peer).to_string(), "udp:127.0.0.1:5060");
        let f = Flow::new(TransportKind::Tcp, peer, ConnId(7));
        assert_eq!(f.to_string(), "tcp:127.0.0.1:5060#7");
        assert_eq!(f.any_conn().conn, ConnId::ANY);
        assert!(f.is_reliable() && !Flow::udp(peer).is_reliable());
    }

    #[test]
    fn keys_are_not_ids() {
        for (k, raw) in [(0, 1 << 31), (5, (1 << 31) | 5), (u32::MAX, u32::MAX)] {
            let id = ConnId::key(k);
            assert_eq!(id.0, raw);
            assert!(id.is_key() && !id.is_any());
        }
        assert!(!ConnId(7).is_key() && !ConnId::ANY.is_key());
        assert_eq!(ConnectionMode::default(), ConnectionMode::Shared(1));
        assert_eq!(ConnectionMode::Shared(4).to_string(), "shared(4)");
    }
}
