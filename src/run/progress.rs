//! The aggregator thread: merge every worker's interval snapshots into the
//! run's [`Aggregate`], and print one progress line per second of the run
//! once every worker has reported that second (rewritten in place on a
//! terminal, plain lines otherwise).
//!
//! Lines follow the workers' snapshots, not the aggregator's own clock: the
//! line for second `k` (labelled `k+1`) appears when the last worker's
//! snapshot for it arrives, so the first line is "1.0s" with the first
//! second's achieved rate, and no second is skipped or shown twice.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;

use super::worker::WorkerMsg;
use crate::stats::{Aggregate, Counter, Counters, Metric, SecondPeek, Slot, second_of};
use crate::transport::IoCounters;

/// What the aggregator hands back at the end.
#[derive(Debug)]
pub struct Collected {
    pub aggregate: Aggregate,
    /// Final loop counters per worker.
    pub io: Vec<IoCounters>,
}

/// What a progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// A load generator: offered against achieved rate, attempts in
    /// flight, the main latency, outcomes so far.
    Client { offered: Option<f64> },
    /// The built-in target: messages in and out.
    Server,
}

/// A worker silent this many seconds behind the newest report no longer
/// holds the progress lines back.
const LAG_SECONDS: u64 = 2;

/// Merge snapshots until every worker has sent its last one (or every
/// sender is gone); print progress when `print`.
pub fn collect(
    rx: Receiver<WorkerMsg>,
    workers: usize,
    start: SystemTime,
    view: View,
    print: bool,
) -> Collected {
    let mut agg = Aggregate::new(start);
    let mut in_flight = vec![0u64; workers];
    let mut io = vec![IoCounters::default(); workers];
    // Newest second each worker has reported (None: nothing yet), and
    // whether it sent its last snapshot.
    let mut reported: Vec<Option<u64>> = vec![None; workers];
    let mut finished = vec![false; workers];
    let mut next_line = 0u64;
    let mut out = Printer::new(print);
    while finished.iter().any(|f| !f) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => {
                let w = m.worker;
                if let Some(slot) = in_flight.get_mut(w) {
                    *slot = m.in_flight;
                }
                if let Some(slot) = io.get_mut(w) {
                    *slot = m.io;
                }
                if let Some(r) = reported.get_mut(w) {
                    *r = Some(r.map_or(second_of(m.t), |s| s.max(second_of(m.t))));
                }
                if m.last
                    && let Some(f) = finished.get_mut(w)
                {
                    *f = true;
                }
                agg.add(w, m.snapshot, m.t);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        while second_complete(&reported, &finished, next_line) {
            if let Some(peek) = agg.peek_second(next_line) {
                let conns = io.iter().map(|i| i.conns_open).sum::<u64>();
                let mut line = match view {
                    View::Client { offered } => client_line(
                        next_line,
                        &peek,
                        offered,
                        in_flight.iter().sum(),
                        agg.counters(),
                    ),
                    View::Server => server_line(next_line, &peek),
                };
                line.push_str(&conns_text(conns, agg.counters()));
                out.line(&line);
            }
            next_line += 1;
        }
    }
    out.end();
    Collected { aggregate: agg, io }
}

/// Whether second `k` is complete: every worker still running reported it
/// (or lags more than [`LAG_SECONDS`] behind the newest report), and some
/// worker reported it at all.
fn second_complete(reported: &[Option<u64>], finished: &[bool], k: u64) -> bool {
    let Some(newest) = reported.iter().flatten().max().copied() else {
        return false;
    };
    if k > newest {
        return false;
    }
    reported
        .iter()
        .zip(finished)
        .all(|(r, done)| *done || r.is_some_and(|s| s >= k) || newest >= k + LAG_SECONDS)
}

fn rate_text(per_s: Option<f64>) -> String {
    match per_s {
        Some(r) if r > 0.0 => format!("{r:>9.1}/s"),
        _ => "closed loop".to_string(),
    }
}

/// The latency a progress line shows: the first of these with samples.
const MAIN_METRICS: [Metric; 6] = [
    Metric::Srd,
    Metric::Rrd,
    Metric::OptionsRtt,
    Metric::Answer,
    Metric::RegisterRtt,
    Metric::InviteRtt,
];

/// A load generator's line for second `k`: elapsed time, offered against
/// achieved rate, attempts in flight, p50/p99 of the main latency in that
/// second, outcomes and retransmissions so far.
pub fn client_line(
    k: u64,
    sec: &SecondPeek,
    offered: Option<f64>,
    in_flight: u64,
    totals: &Counters,
) -> String {
    let mut line = format!(
        "{:>6.1}s  offered {}  achieved {:>9.1}/s  in flight {in_flight:>7}",
        (k + 1) as f64,
        rate_text(offered),
        sec.counters.attempts() as f64
    );
    let main = MAIN_METRICS.into_iter().find_map(|m| {
        sec.latency
            .get(&Slot::service(m))
            .filter(|l| l.count > 0)
            .map(|l| (m, l))
    });
    if let Some((m, l)) = main {
        line.push_str(&format!(
            "  {} p50 {:.2}ms p99 {:.2}ms",
            m.name(),
            l.p50_us as f64 / 1000.0,
            l.p99_us as f64 / 1000.0
        ));
    }
    line.push_str(&format!(
        "  ok {}  failed {} (timeouts {})  retrans {}",
        totals.successes(),
        totals.failures(),
        totals.timeouts(),
        totals.get(Counter::Retransmitted)
    ));
    line
}

/// The stream connections part of a progress line: open now, and failed
/// opens so far; empty when the run has no stream connections.
pub fn conns_text(open: u64, totals: &Counters) -> String {
    let failed = totals.get(Counter::ConnFailed);
    if open == 0 && failed == 0 && totals.get(Counter::ConnOpened) == 0 {
        return String::new();
    }
    let mut s = format!("  conns {open}");
    if failed > 0 {
        s.push_str(&format!(" (failed {failed})"));
    }
    s
}

/// The built-in target's line for second `k`: messages in and out.
pub fn server_line(k: u64, sec: &SecondPeek) -> String {
    let c = &sec.counters;
    format!(
        "{:>6.1}s  received {:>9}/s  sent {:>9}/s  retransmitted {}  unparseable {}",
        (k + 1) as f64,
        c.get(Counter::MsgReceived),
        c.get(Counter::MsgSent),
        c.get(Counter::Retransmitted),
        c.get(Counter::Unparseable),
    )
}

/// The built-in target's last line on its stream connections, said when
/// `serve` stops (it writes no report): opened, closed, closed for
/// misbehaving (a bound passed, bytes that do not frame), WebSocket
/// Upgrades, and each failed open and each WebSocket error by reason
/// (`transport.connect_failures.*`, `transport.ws_errors.*`), so every bad
/// peer it survived is counted somewhere. `None` without connections.
pub fn server_connections(c: &Counters) -> Option<String> {
    let opened = c.get(Counter::ConnOpened);
    let failed = c.get(Counter::ConnFailed);
    if opened == 0 && failed == 0 {
        return None;
    }
    let mut s = format!(
        "connections opened {opened}  closed {} (by peer {}, bad peer {})  failed {failed}",
        c.get(Counter::ConnClosed),
        c.get(Counter::ConnClosedByPeer),
        c.get(Counter::ConnClosedBadPeer),
    );
    let upgrades = c.get(Counter::WsUpgrades);
    if upgrades > 0 {
        s.push_str(&format!("  ws upgrades {upgrades}"));
    }
    for (group, label) in [
        ("transport.connect_failures.", "failed"),
        ("transport.ws_errors.", "ws errors"),
    ] {
        let found: Vec<String> = Counter::ALL
            .iter()
            .filter(|&&k| c.get(k) > 0)
            .filter_map(|&k| Some(format!("{} {}", k.name().strip_prefix(group)?, c.get(k))))
            .collect();
        if !found.is_empty() {
            s.push_str(&format!("  {label}: {}", found.join(", ")));
        }
    }
    Some(s)
}

/// Progress output on stderr: a line rewritten in place on a terminal,
/// plain lines otherwise; nothing when quiet. Write errors are ignored (a
/// closed stderr must not stop a run).
struct Printer {
    print: bool,
    tty: bool,
    printed: bool,
}

impl Printer {
    fn new(print: bool) -> Printer {
        Printer {
            print,
            tty: std::io::stderr().is_terminal(),
            printed: false,
        }
    }

    fn line(&mut self, line: &str) {
        if !self.print {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.printed = true;
    }

    fn end(&mut self) {
        if self.printed && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::WorkerStats;

    fn msg(worker: usize, secs: f64, attempts: u64, last: bool) -> WorkerMsg {
        let mut w = WorkerStats::new();
        w.count(Counter::CallAttempted, attempts);
        w.record(
            Metric::Srd,
            Duration::from_millis(2),
            Duration::from_millis(2),
        );
        WorkerMsg {
            worker,
            snapshot: w.take_interval(),
            t: Duration::from_secs_f64(secs),
            in_flight: 3,
            io: IoCounters::default(),
            last,
        }
    }

    /// Issue 13: the first line is for 1.0 s with that second's rate, and
    /// every second gets exactly one line, also when workers report out of
    /// step.
    #[test]
    fn one_line_per_second_once_every_worker_reported_it() {
        // (name, reports as (worker, seconds, last), lines printed)
        type Case<'a> = (&'a str, &'a [(usize, f64, bool)], &'a [u64]);
        let cases: &[Case<'_>] = &[
            ("nothing yet", &[], &[]),
            ("one of two", &[(0, 1.0, false)], &[]),
            (
                "both for second 0",
                &[(0, 1.0, false), (1, 1.01, false)],
                &[0],
            ),
            (
                "one runs ahead",
                &[(0, 1.0, false), (0, 2.0, false), (1, 1.0, false)],
                &[0],
            ),
            (
                "a finished worker holds nothing back",
                &[(0, 0.4, true), (1, 1.0, false), (1, 2.0, false)],
                &[0, 1],
            ),
            (
                "a silent worker holds back two seconds at most",
                &[
                    (0, 1.0, false),
                    (0, 2.0, false),
                    (0, 3.0, false),
                    (1, 1.0, false),
                ],
                &[0],
            ),
        ];
        for (name, msgs, want) in cases {
            let mut reported = vec![None; 2];
            let mut finished = vec![false; 2];
            let mut lines = Vec::new();
            let mut next = 0;
            for &(w, t, last) in *msgs {
                let s = second_of(Duration::from_secs_f64(t));
                reported[w] = Some(reported[w].map_or(s, |r: u64| r.max(s)));
                finished[w] |= last;
                while second_complete(&reported, &finished, next) {
                    lines.push(next);
                    next += 1;
                }
            }
            assert_eq!(&lines[..], *want, "{name}");
        }
    }

    #[test]
    fn collect_merges_and_labels_seconds_from_one() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        for m in [
            msg(0, 1.0, 10, false),
            msg(1, 1.0, 5, false),
            msg(0, 1.4, 2, true),
            msg(1, 1.5, 1, true),
        ] {
            tx.send(m).unwrap();
        }
        let c = collect(
            rx,
            2,
            SystemTime::UNIX_EPOCH,
            View::Client {
                offered: Some(20.0),
            },
            false,
        );
        assert_eq!(
            c.aggregate.counters().get(Counter::CallAttempted),
            18,
            "every snapshot merged"
        );
        let peek = c.aggregate.peek_second(0).unwrap();
        let line = client_line(0, &peek, Some(20.0), 6, c.aggregate.counters());
        assert!(line.trim_start().starts_with("1.0s"), "{line}");
        // The snapshot taken at 1.5 s belongs to the second second.
        assert!(line.contains("achieved      17.0/s"), "{line}");
        assert!(line.contains("srd p50 2.00ms"), "{line}");
        assert!(
            client_line(0, &peek, None, 0, &Counters::default()).contains("closed loop"),
            "closed loop shows no offered rate"
        );
        assert_eq!(conns_text(0, &Counters::default()), "");
        let mut c2 = Counters::default();
        c2.add(Counter::ConnOpened, 5);
        c2.add(Counter::ConnFailed, 2);
        assert_eq!(conns_text(3, &c2), "  conns 3 (failed 2)");
        let s = server_line(0, &peek);
        assert!(s.trim_start().starts_with("1.0s  received"), "{s}");
    }
}
