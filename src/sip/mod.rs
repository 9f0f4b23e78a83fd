//! SIP message codec (RFC 3261 §7, §25).
