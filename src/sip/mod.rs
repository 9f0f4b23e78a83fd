//! SIP message codec (RFC 3261 §7, §25).
//!
//! * [`parse`] reads one whole message (a UDP datagram) into a zero-copy
//!   [`Message`] that borrows the caller's buffer. The header index is built
//!   in one pass (memchr for line ends) into a fixed-capacity inline array:
//!   no heap allocation per parse. The mandatory headers (top Via, From,
//!   To, Call-ID, CSeq) and the scalar ones (Content-Length, Max-Forwards,
//!   Expires, Min-Expires) are parsed and validated during `parse`, so a
//!   message that parses is one an RFC 3261 element may process (§8.1.1,
//!   §8.2). The other typed views (lower Vias, Contact, Route,
//!   Record-Route) are parsed lazily by their accessors, which stop at a
//!   malformed element; [`Message::validate_all`] checks them all at once.
//! * [`frame`] finds where a message ends in a byte stream (TCP), returning
//!   [`Status::Complete`] or [`Status::Partial`] like `httparse`.
//! * [`Builder`] writes requests and responses into a reused `Vec<u8>`.
//!
//! Malformed input is a [`ParseError`] that says what is wrong; the codec
//! never panics on input and never allocates in proportion to it.

mod builder;
mod header;
mod lex;
mod method;
mod parse;
mod typed;

pub use builder::{Builder, reason_phrase};
pub use method::Method;
pub use parse::{Message, frame, parse};
pub use typed::{CSeq, Contact, NameAddr, Uri, Via, parse_uri};

/// Largest message accepted, in bytes (the largest UDP payload; RFC 3261
/// §18.1.1 keeps UDP messages far below it). Offsets in the header index are
/// `u16` because of this bound.
pub const MAX_MESSAGE: usize = 65_535;

/// Most header field lines accepted in one message (folded continuation lines
/// do not count). RFC 4475 "longreq" uses a few dozen.
pub const MAX_HEADERS: usize = 128;

/// Result of [`frame`]: whether the stream buffer holds one whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first message (with any CRLFs before it, RFC 3261 §7.5) ends after
    /// this many bytes of the buffer.
    Complete(usize),
    /// More bytes are needed.
    Partial,
}

/// Why a message was rejected. `Copy`, small, and specific enough for a
/// `400 Bad Request` reason or an "unparseable" counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but CRLFs (or nothing at all).
    #[error("empty message")]
    Empty,
    /// The message is larger than [`MAX_MESSAGE`].
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    /// More than [`MAX_HEADERS`] header field lines.
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// The input ends before the empty line that closes the headers.
    #[error("message ends before the end of the headers")]
    Truncated,
    /// The start line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    #[error("malformed start line")]
    BadStartLine,
    /// The SIP-Version is not `SIP/2.0` (RFC 4475 "badvers").
    #[error("unsupported SIP version")]
    BadVersion,
    /// The request method is not a token (RFC 3261 §25.1).
    #[error("malformed request method")]
    BadMethod,
    /// The Request-URI is malformed: whitespace, `<...>` (RFC 4475 "ltgtruri"),
    /// no scheme, or a `?headers` part in a SIP Request-URI ("escruri").
    #[error("malformed Request-URI")]
    BadUri,
    /// The Status-Code is not three digits in 100..=699 (RFC 4475 "bigcode").
    #[error("malformed status code")]
    BadStatus,
    /// A header line is not `name: value` (no colon, or a name that is not a token).
    #[error("malformed header line")]
    BadHeader,
    /// A mandatory header (RFC 3261 §8.1.1) is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header that may appear once appears more than once (RFC 4475 "multi01", "mcl01").
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// A header value does not follow its grammar (RFC 3261 §25), e.g. an
    /// unterminated quoted string ("quotbal"), empty parameters ("badinv01"),
    /// a CSeq number of 2**31 or more ("scalar02").
    #[error("malformed {0} header")]
    BadHeaderValue(&'static str),
    /// Content-Length is not a decimal number that fits in 32 bits (RFC 4475 "ncl").
    #[error("malformed Content-Length")]
    BadContentLength,
    /// Content-Length says more bytes than the datagram holds (RFC 3261 §18.3, RFC 4475 "clerr").
    #[error("Content-Length {declared} exceeds the {available} bytes after the headers")]
    BodyTruncated {
        /// The Content-Length value.
        declared: u32,
        /// Bytes present after the blank line.
        available: u32,
    },
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5, RFC 4475 "mismatch01").
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}
