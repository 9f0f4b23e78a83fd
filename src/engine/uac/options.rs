//! OPTIONS ping (RFC 3261 §11) out of dialog: the lightest health probe.

use std::time::Instant;

use super::Req;
use crate::engine::endpoint::Endpoint;
use crate::engine::event::{Event, MethodKind, Outcome};
use crate::engine::state::{SessKind, SessState};

impl Endpoint {
    pub(super) fn start_options(&mut self, now: Instant, intended: Instant, user: u32) {
        let si = self.uac_session(
            SessKind::UacOptions,
            SessState::Pinging,
            user,
            now,
            intended,
        );
        let Some(dest) = self.attempt_flow(si) else {
            return;
        };
        let branch = self.new_id();
        self.live_attempts += 1;
        self.send_request(now, si, Req::Options, MethodKind::Options, branch, 1, dest);
    }

    pub(super) fn options_done(&mut self, now: Instant, si: u32, outcome: Outcome) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let (i, st) = (s.intended_ns, s.started_ns);
        self.emit(Event::OptionsDone {
            intended: self.to_instant(i),
            started: self.to_instant(st),
            finished: now,
            outcome,
        });
        self.sess_free(si);
        self.live_attempts = self.live_attempts.saturating_sub(1);
    }

    /// Final response to the ping: any 2xx is a success.
    pub(super) fn options_final(&mut self, now: Instant, si: u32, code: u16) {
        let outcome = if (200..300).contains(&code) {
            Outcome::Success
        } else {
            Outcome::Failed(code)
        };
        self.options_done(now, si, outcome);
    }
}
