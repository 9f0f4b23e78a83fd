//! The domains a server is responsible for (`serve --domain`): which
//! out-of-dialog requests it takes, and the key of an address-of-record,
//! `user@domain` (RFC 3261 §10.3 steps 1 and 5).

use crate::engine::endpoint::Endpoint;
use crate::engine::event::MethodKind;
use crate::engine::util::mix;
use crate::sip::{self, Message};

impl Endpoint {
    /// Which served domain `host` is: `Some(1 + i)` for the i-th
    /// `--domain` (case-insensitive, RFC 3261 §19.1.4), `Some(0)` for this
    /// server's own address, `None` for any other host. Without `--domain`
    /// every host is `Some(0)`.
    fn domain_index(&self, host: &[u8]) -> Option<usize> {
        let Some(cfg) = self.role.server() else {
            return Some(0);
        };
        if cfg.domains.is_empty() || host.eq_ignore_ascii_case(&self.wire.via_host) {
            return Some(0);
        }
        cfg.domains
            .iter()
            .position(|d| d.as_bytes().eq_ignore_ascii_case(host))
            .map(|i| i + 1)
    }

    /// Whether a request is for a domain this server serves: the host of
    /// the Request-URI, and for REGISTER also of To (the AOR, §10.3 step 1
    /// and 5). In-dialog requests (To tag), ACK and CANCEL follow their
    /// dialog or INVITE and are not checked.
    pub(super) fn serves(&self, msg: &Message<'_>, mk: MethodKind) -> bool {
        if self.role.server().is_none_or(|c| c.domains.is_empty())
            || matches!(mk, MethodKind::Ack | MethodKind::Cancel)
            || msg.to().and_then(|t| t.tag).is_some()
        {
            return true;
        }
        let ours =
            |uri: &[u8]| sip::parse_uri(uri).is_some_and(|u| self.domain_index(u.host).is_some());
        msg.uri().is_some_and(ours)
            && (mk != MethodKind::Register || msg.to().is_some_and(|t| ours(t.uri)))
    }

    /// The registrar's key of the AOR `user@host` (the binding set, §10.3
    /// step 5), `user` already unescaped: the user alone without
    /// `--domain`, user and served domain with it; `None` for a host not
    /// served.
    pub(in crate::engine) fn user_key(&self, user: &[u8], host: &[u8]) -> Option<u64> {
        let d = self.domain_index(host)?;
        Some(mix(self.hash(user), d as u64))
    }
}
