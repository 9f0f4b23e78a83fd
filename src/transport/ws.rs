//! WebSocket (RFC 6455) as one more layer of bytes over a stream
//! connection, for SIP over WebSocket (RFC 7118). Knows nothing about SIP
//! except the subprotocol token `sip` it negotiates.
//!
//! The layer is driven sans-IO inside the worker, like rustls beneath it:
//!
//! - the opening handshake (RFC 6455 §4) is an HTTP/1.1 Upgrade parsed
//!   with `httparse` from the connection's bounded read buffer; the client
//!   offers `Sec-WebSocket-Protocol: sip` and fails the connection unless
//!   the 101 names `sip` (RFC 7118 §4.1); the server answers 101 only to a
//!   request offering `sip`, else 400 with the subprotocol it speaks, and
//!   426 to a version other than 13 (RFC 6455 §4.2.2, §4.4), as Kamailio
//!   does;
//! - after it, frames are tungstenite's `WebSocketContext`, the protocol
//!   state without a socket: each call gets a borrowed adapter ([`Io`])
//!   whose reads come from the bytes the ring just received and whose
//!   writes land in a buffer bound for the connection's write queue (or
//!   for rustls). It masks what the client sends (§5.3), refuses a masked
//!   frame from the server, reassembles fragmented messages (§5.4),
//!   answers pings with pongs (§5.5.2) and runs the close handshake
//!   (§5.5.1, §7.1.2);
//! - before tungstenite buffers a frame, [`Scan`] reads its header (with
//!   tungstenite's own `FrameHeader::parse`) and fails the connection on
//!   a frame or message past the bound, a message in too many fragments,
//!   or (server side) an unmasked client frame (§5.1: "a server MUST close
//!   the connection upon receiving a frame that is not masked"), so a bad
//!   peer costs at most one bounded frame of memory and each of these is
//!   counted by its own reason ([`WsFailure`]).
//!
//! Each SIP message is one WebSocket message (RFC 7118 §5): sent as a text
//! frame when it is UTF-8 (every message sipstorm builds is), else as a
//! binary frame (§5.2 of RFC 7118: a body that is not UTF-8 goes in a
//! binary message); both are accepted.

use std::io::{self, Cursor, Read, Write};
use std::time::Instant;

use sha1::{Digest, Sha1};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Bytes, Message, Utf8Bytes};

/// The subprotocol of SIP over WebSocket (RFC 7118 §4.1, IANA's
/// WebSocket Subprotocol Name Registry).
pub const SUBPROTOCOL: &str = "sip";

/// RFC 6455 §1.3: the GUID appended to `Sec-WebSocket-Key`.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most fragments one message may come in. Browsers and SIP stacks send
/// each SIP message in one frame; a peer that splits one into more than
/// this is failed ([`WsFailure::TooManyFragments`]) rather than allowed to
/// keep a message open with empty continuation frames.
pub const MAX_FRAGMENTS: u32 = 128;

/// The longest frame header (RFC 6455 §5.2: 2 + 8 length + 4 mask).
const HEADER_MAX: usize = 14;

/// Most header lines of an Upgrade request or response.
const MAX_HEADERS: usize = 32;

/// Bytes tungstenite's read buffer starts with on an open connection
/// (grown to a frame's length while one is read, bounded by the frame
/// limit): small, so idle connections stay cheap.
const READ_BUFFER: usize = 2048;

/// What a client puts in its Upgrade request (`--ws-path`, `--ws-origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClientSetup {
    /// The resource name of the request line (RFC 6455 §3), `/` by default.
    pub path: String,
    /// `Origin` (RFC 6454), as a browser sends it; `None`: not sent (a
    /// non-browser client MAY omit it, RFC 6455 §4.1).
    pub origin: Option<String>,
    /// `Host`: the target as the user named it; `None`: the peer's
    /// `ip:port`.
    pub host: Option<String>,
}

impl Default for WsClientSetup {
    fn default() -> Self {
        WsClientSetup {
            path: "/".into(),
            origin: None,
            host: None,
        }
    }
}

/// Why a WebSocket opening handshake or connection failed, as counted in
/// reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsFailure {
    /// No agreement on the `sip` subprotocol: a server's 101 without it
    /// (the client fails the connection, RFC 6455 §4.1 point 6), or a
    /// client's Upgrade not offering it (the server answers 400).
    NoSip,
    /// The server answered the Upgrade with this status instead of 101.
    Rejected(u16),
    /// A malformed, incomplete or inconsistent Upgrade: not HTTP/1.1 GET,
    /// missing `Upgrade`/`Connection`/`Sec-WebSocket-Key`, a version other
    /// than 13, a wrong `Sec-WebSocket-Accept`, an unrequested extension,
    /// or the connection ended before the handshake did.
    Handshake,
    /// A frame longer than the bound (the connection's read buffer).
    FrameTooLarge,
    /// A fragmented message longer than the bound.
    MessageTooLarge,
    /// A message in more than [`MAX_FRAGMENTS`] fragments.
    TooManyFragments,
    /// An unmasked frame from a client, or a masked one from a server
    /// (RFC 6455 §5.1).
    Masking,
    /// Any other violation of RFC 6455 framing: reserved bits or opcodes,
    /// a fragmented or oversized control frame, a continuation without a
    /// start, a text message that is not UTF-8.
    Protocol,
    /// The peer closed the TCP connection without the closing handshake
    /// (RFC 6455 §7.1.5: "abnormal closure", 1006).
    NoCloseFrame,
}

impl WsFailure {
    /// The key of this failure in reports (`ws_no_sip`, `frame_too_large`,
    /// ...): handshake failures under `transport.connect_failures`, the
    /// others under `transport.ws_errors`.
    pub fn name(self) -> &'static str {
        match self {
            WsFailure::NoSip => "ws_no_sip",
            WsFailure::Rejected(_) => "ws_rejected",
            WsFailure::Handshake => "ws_handshake",
            WsFailure::FrameTooLarge => "frame_too_large",
            WsFailure::MessageTooLarge => "message_too_large",
            WsFailure::TooManyFragments => "too_many_fragments",
            WsFailure::Masking => "masking",
            WsFailure::Protocol => "protocol",
            WsFailure::NoCloseFrame => "no_close_frame",
        }
    }

    /// The close status a failed connection is closed with (RFC 6455
    /// §7.4.1): 1009 for what is too big, 1002 for protocol errors.
    fn close_code(self) -> Option<CloseCode> {
        match self {
            WsFailure::FrameTooLarge | WsFailure::MessageTooLarge | WsFailure::TooManyFragments => {
                Some(CloseCode::Size)
            }
            WsFailure::Masking | WsFailure::Protocol => Some(CloseCode::Protocol),
            _ => None,
        }
    }
}

impl std::fmt::Display for WsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WsFailure::NoSip => f.write_str(
                "no agreement on the 'sip' WebSocket subprotocol (RFC 7118 §4.1: \
                 Sec-WebSocket-Protocol: sip in the Upgrade and in its 101)",
            ),
            WsFailure::Rejected(code) => {
                write!(f, "the server answered the WebSocket Upgrade with {code}")
            }
            WsFailure::Handshake => f.write_str("malformed or incomplete WebSocket Upgrade"),
            WsFailure::FrameTooLarge => f.write_str("WebSocket frame larger than the bound"),
            WsFailure::MessageTooLarge => {
                f.write_str("fragmented WebSocket message larger than the bound")
            }
            WsFailure::TooManyFragments => write!(
                f,
                "WebSocket message in more than {MAX_FRAGMENTS} fragments"
            ),
            WsFailure::Masking => {
                f.write_str("WebSocket frame masked the wrong way (RFC 6455 §5.1)")
            }
            WsFailure::Protocol => f.write_str("WebSocket protocol violation"),
            WsFailure::NoCloseFrame => {
                f.write_str("closed without the WebSocket closing handshake")
            }
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2
/// point 5.4): base64 of the SHA-1 of the key and the GUID.
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1
/// point 7).
fn new_key() -> String {
    use base64::Engine as _;
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        // The key only proves the server read the request: unique is
        // enough when the OS has no randomness to give.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        nonce = t.to_le_bytes();
    }
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// The client's Upgrade request (RFC 6455 §4.1, RFC 7118 §4.1).
pub fn upgrade_request(setup: &WsClientSetup, host: &str, key: &str) -> Vec<u8> {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n",
        setup.path
    );
    if let Some(o) = &setup.origin {
        r.push_str("Origin: ");
        r.push_str(o);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Whether a comma-separated header value lists `token` (case-insensitive,
/// RFC 7230 §7 list syntax).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Check the server's answer to our Upgrade (RFC 6455 §4.1, the client's
/// checks 1-6). `Ok(None)`: the head is not complete yet; `Ok(Some(n))`:
/// accepted, the first `n` bytes were the response.
pub fn check_response(buf: &[u8], accept: &str) -> Result<Option<usize>, WsFailure> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut hs);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(WsFailure::Handshake),
    };
    match resp.code {
        Some(101) => {}
        Some(code) => return Err(WsFailure::Rejected(code)),
        None => return Err(WsFailure::Handshake),
    }
    let h = resp.headers;
    let ok = header(h, "Upgrade").is_some_and(|v| has_token(v, "websocket"))
        && header(h, "Connection").is_some_and(|v| has_token(v, "upgrade"))
        && header(h, "Sec-WebSocket-Accept").is_some_and(|v| v.trim_ascii() == accept.as_bytes())
        && header(h, "Sec-WebSocket-Extensions").is_none();
    if !ok {
        return Err(WsFailure::Handshake);
    }
    match header(h, "Sec-WebSocket-Protocol") {
        Some(p) if p.trim_ascii().eq_ignore_ascii_case(SUBPROTOCOL.as_bytes()) => Ok(Some(n)),
        _ => Err(WsFailure::NoSip),
    }
}

/// The server's decision on an Upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// The request head is not complete yet.
    Partial,
    /// Accepted: the first `len` bytes were the request; `response` is the
    /// 101.
    Accept { len: usize, response: Vec<u8> },
    /// Refused: send `response`, then close.
    Reject {
        failure: WsFailure,
        response: Vec<u8>,
    },
}

fn reject(failure: WsFailure, status: &str, extra: &str) -> Upgrade {
    Upgrade::Reject {
        failure,
        response: format!(
            "HTTP/1.1 {status}\r\n{extra}Connection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    }
}

/// Answer a client's Upgrade request (RFC 6455 §4.2, RFC 7118 §4.1).
pub fn answer_request(buf: &[u8]) -> Upgrade {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Upgrade::Partial,
        Err(_) => return reject(WsFailure::Handshake, "400 Bad Request", ""),
    };
    let h = req.headers;
    let key = header(h, "Sec-WebSocket-Key").map(<[u8]>::trim_ascii);
    let key_ok = key.is_some_and(|k| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(k)
            .is_ok_and(|d| d.len() == 16)
    });
    if req.method != Some("GET")
        || req.version != Some(1)
        || !header(h, "Upgrade").is_some_and(|v| has_token(v, "websocket"))
        || !header(h, "Connection").is_some_and(|v| has_token(v, "upgrade"))
        || !key_ok
    {
        return reject(WsFailure::Handshake, "400 Bad Request", "");
    }
    if header(h, "Sec-WebSocket-Version").map(<[u8]>::trim_ascii) != Some(b"13") {
        // RFC 6455 §4.4: the versions this server speaks.
        return reject(
            WsFailure::Handshake,
            "426 Upgrade Required",
            "Sec-WebSocket-Version: 13\r\n",
        );
    }
    if !header(h, "Sec-WebSocket-Protocol").is_some_and(|v| has_token(v, SUBPROTOCOL)) {
        // A SIP-only server cannot speak what else the client offers: it
        // says which subprotocol it has (as Kamailio does).
        return reject(
            WsFailure::NoSip,
            "400 Bad Request",
            "Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n",
        );
    }
    let accept = accept_key(key.unwrap_or_default());
    Upgrade::Accept {
        len,
        response: format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        .into_bytes(),
    }
}

/// The adapter tungstenite reads from and writes to: the bytes just
/// received, and the buffer bound for the wire. Reading past the bytes
/// given says `WouldBlock`, never end of stream: the connection's end is
/// the stream layer's to report.
struct Io<'a> {
    rx: &'a [u8],
    tx: &'a mut Vec<u8>,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rx.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.rx.len());
        buf[..n].copy_from_slice(&self.rx[..n]);
        self.rx = &self.rx[n..];
        Ok(n)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Frame headers seen on the way in, checked before tungstenite buffers
/// the frame (see the module's doc).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Header bytes of a frame whose header is split across reads.
    head: [u8; HEADER_MAX],
    head_len: usize,
    /// Payload bytes of the current frame still to pass over.
    skip: u64,
    /// A fragmented message is open: its fragments and bytes so far.
    open: Option<(u32, u64)>,
}

impl Scan {
    /// Pass over `bytes`, checking each frame header against the bounds:
    /// `max` bytes per frame and per message; `server`: frames must be
    /// masked.
    pub(crate) fn scan(
        &mut self,
        mut bytes: &[u8],
        max: usize,
        server: bool,
    ) -> Result<(), WsFailure> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let take = (HEADER_MAX - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
            let mut cur = Cursor::new(&self.head[..self.head_len + take]);
            match FrameHeader::parse(&mut cur) {
                Ok(None) => {
                    self.head_len += take;
                    bytes = &bytes[take..];
                }
                Ok(Some((h, len))) => {
                    let used = cur.position() as usize - self.head_len;
                    bytes = &bytes[used..];
                    self.head_len = 0;
                    self.frame(&h, len, max, server)?;
                    self.skip = len;
                }
                Err(_) => return Err(WsFailure::Protocol),
            }
        }
        Ok(())
    }

    fn frame(
        &mut self,
        h: &FrameHeader,
        len: u64,
        max: usize,
        server: bool,
    ) -> Result<(), WsFailure> {
        if server != h.mask.is_some() {
            return Err(WsFailure::Masking);
        }
        if len > max as u64 {
            return Err(WsFailure::FrameTooLarge);
        }
        match (h.opcode, self.open) {
            (OpCode::Data(Data::Text | Data::Binary), None) if !h.is_final => {
                self.open = Some((1, len));
            }
            (OpCode::Data(Data::Continue), Some((n, total))) => {
                let (n, total) = (n + 1, total + len);
                if n > MAX_FRAGMENTS {
                    return Err(WsFailure::TooManyFragments);
                }
                if total > max as u64 {
                    return Err(WsFailure::MessageTooLarge);
                }
                self.open = (!h.is_final).then_some((n, total));
            }
            (OpCode::Data(_), _) | (OpCode::Control(Control::Reserved(_)), _) => {
                // Out of order or reserved: tungstenite fails it (or, for
                // a whole data frame, takes it as it is).
            }
            (OpCode::Control(_), _) => {}
        }
        Ok(())
    }
}

/// What [`Ws::feed`] found in the bytes it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Pings answered.
    pub pings: u64,
    /// The peer's Close came (and ours went back, if it was theirs to
    /// start): the closing handshake is done on our side.
    pub closed: bool,
}

enum State {
    /// Client: the Upgrade is not sent yet (TCP or TLS not up).
    ClientIdle,
    /// Client: the Upgrade went out; waiting for the 101.
    ClientWait { accept: String },
    /// Server: waiting for the Upgrade request.
    ServerWait,
    /// The handshake is done: frames.
    Open(Box<WebSocketContext>),
}

/// One connection's WebSocket layer.
pub(crate) struct Ws {
    state: State,
    /// The server's end (frames from the peer must be masked).
    server: bool,
    scan: Scan,
    /// Most bytes of a frame and of a message.
    max: usize,
    /// Messages the worker sent before the handshake was done (RFC 6455
    /// §4.1: no data before the server's 101), and their bytes.
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    held_limit: usize,
    /// When the Upgrade request went out (client).
    pub upgrade_sent: Option<Instant>,
    /// We sent a Close and wait for the peer's.
    pub closing: bool,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws")
            .field("open", &self.is_open())
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Ws {
    /// A client's layer; `max` bounds frames and messages, `held_limit`
    /// what may wait for the handshake.
    pub(crate) fn client(max: usize, held_limit: usize) -> Ws {
        Ws::new(State::ClientIdle, max, held_limit)
    }

    /// A server's layer, waiting for the Upgrade.
    pub(crate) fn server(max: usize, held_limit: usize) -> Ws {
        Ws::new(State::ServerWait, max, held_limit)
    }

    fn new(state: State, max: usize, held_limit: usize) -> Ws {
        Ws {
            server: matches!(state, State::ServerWait),
            state,
            scan: Scan::default(),
            max,
            held: Vec::new(),
            held_bytes: 0,
            held_limit,
            upgrade_sent: None,
            closing: false,
        }
    }

    /// The handshake is done.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Client: the Upgrade request to send now that TCP (and TLS) is up.
    pub(crate) fn start(&mut self, now: Instant, setup: &WsClientSetup, host: &str) -> Vec<u8> {
        let key = new_key();
        self.state = State::ClientWait {
            accept: accept_key(key.as_bytes()),
        };
        self.upgrade_sent = Some(now);
        upgrade_request(setup, host, &key)
    }

    /// The handshake bytes received so far (`buf`, the connection's read
    /// buffer). `Ok(None)`: not complete; `Ok(Some((n, reply)))`: done, the
    /// first `n` bytes were the handshake, `reply` (the server's 101) goes
    /// out first; `Err((failure, reply))`: failed, send `reply` (a
    /// server's refusal) and close.
    #[allow(clippy::type_complexity)]
    pub(crate) fn handshake(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(usize, Vec<u8>)>, (WsFailure, Vec<u8>)> {
        let (n, reply, role) = match &self.state {
            State::ClientWait { accept } => match check_response(buf, accept) {
                Ok(None) => return Ok(None),
                Ok(Some(n)) => (n, Vec::new(), Role::Client),
                Err(f) => return Err((f, Vec::new())),
            },
            State::ServerWait => match answer_request(buf) {
                Upgrade::Partial => return Ok(None),
                Upgrade::Accept { len, response } => (len, response, Role::Server),
                Upgrade::Reject { failure, response } => return Err((failure, response)),
            },
            // Bytes before the request went out, or after the handshake.
            State::ClientIdle | State::Open(_) => return Err((WsFailure::Handshake, Vec::new())),
        };
        let cfg = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(self.held_limit.max(1))
            .max_frame_size(Some(self.max))
            .max_message_size(Some(self.max));
        self.state = State::Open(Box::new(WebSocketContext::new(role, Some(cfg))));
        Ok(Some((n, reply)))
    }

    /// The messages held for the handshake, framed, into `out`.
    pub(crate) fn release_held(&mut self, out: &mut Vec<u8>) -> Result<(), WsFailure> {
        self.held_bytes = 0;
        for m in std::mem::take(&mut self.held) {
            self.frame(&m, out)?;
        }
        Ok(())
    }

    /// Send one message: framed into `out` when the connection is open,
    /// held until the handshake is done otherwise. `Err`: past the bound
    /// of what may wait, or the connection is closing.
    pub(crate) fn send(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), WsFailure> {
        if self.is_open() {
            return self.frame(msg, out);
        }
        if self.held_bytes + msg.len() > self.held_limit {
            return Err(WsFailure::MessageTooLarge);
        }
        self.held_bytes += msg.len();
        self.held.push(msg.to_vec());
        Ok(())
    }

    /// One message as one frame: text when it is UTF-8, else binary.
    fn frame(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), WsFailure> {
        let State::Open(ctx) = &mut self.state else {
            return Err(WsFailure::Protocol);
        };
        let payload = Bytes::copy_from_slice(msg);
        let m = match Utf8Bytes::try_from(payload.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(payload),
        };
        let mut io = Io { rx: &[], tx: out };
        ctx.write(&mut io, m).map_err(|_| WsFailure::Protocol)?;
        ctx.flush(&mut io).map_err(|_| WsFailure::Protocol)
    }

    /// Bytes received on an open connection: each whole message goes to
    /// `on_message`; pongs and Close replies go into `out`.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_message: impl FnMut(&[u8]),
    ) -> Result<Fed, WsFailure> {
        let State::Open(ctx) = &mut self.state else {
            return Err(WsFailure::Protocol);
        };
        self.scan.scan(bytes, self.max, self.server)?;
        let mut io = Io { rx: bytes, tx: out };
        let mut fed = Fed::default();
        loop {
            match ctx.read(&mut io) {
                Ok(Message::Text(t)) => on_message(t.as_bytes()),
                Ok(Message::Binary(b)) => on_message(&b),
                Ok(Message::Ping(_)) => fed.pings += 1,
                Ok(Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => fed.closed = true,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    fed.closed = true;
                    break;
                }
                Err(tungstenite::Error::Capacity(_)) => return Err(WsFailure::FrameTooLarge),
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::UnmaskedFrameFromClient
                    | tungstenite::error::ProtocolError::MaskedFrameFromServer,
                )) => return Err(WsFailure::Masking),
                Err(_) => return Err(WsFailure::Protocol),
            }
        }
        Ok(fed)
    }

    /// Start the closing handshake (RFC 6455 §5.5.1): our Close into
    /// `out`. True if one was sent (the connection was open and not
    /// closing already).
    pub(crate) fn close(&mut self, out: &mut Vec<u8>) -> bool {
        let State::Open(ctx) = &mut self.state else {
            return false;
        };
        if !ctx.can_write() {
            return false;
        }
        let mut io = Io { rx: &[], tx: out };
        let sent = ctx
            .close(
                &mut io,
                Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: Utf8Bytes::from_static(""),
                }),
            )
            .is_ok();
        self.closing |= sent;
        sent
    }

    /// Fail the connection for `f` (RFC 6455 §7.1.7): a Close with the
    /// status that says why, into `out`, when the connection is open.
    pub(crate) fn fail(&mut self, f: WsFailure, out: &mut Vec<u8>) {
        let (State::Open(ctx), Some(code)) = (&mut self.state, f.close_code()) else {
            return;
        };
        if ctx.can_write() {
            let mut io = Io { rx: &[], tx: out };
            let _ = ctx.close(
                &mut io,
                Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(""),
                }),
            );
        }
    }

    /// The closing handshake went both ways, or was never needed (the
    /// connection never opened).
    pub(crate) fn close_done(&self) -> bool {
        match &self.state {
            State::Open(ctx) => !ctx.can_read(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests;
