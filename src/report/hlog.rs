//! `intervals.hlog`: the HdrHistogram interval log, one tagged histogram per
//! metric slot per second, readable by HdrHistogram's `HistogramLogReader`
//! and `HistogramLogProcessor` (V2 + deflate, base64, `Tag=` prefix).

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry, Tag,
};

use super::ReportError;
use super::atomic::{self, Staged};
use crate::stats::{HistogramCodecError, Slot, decode_histogram};

/// One interval histogram: second `second` after the log's base time. Kept
/// encoded (V2 + deflate, typically a few hundred bytes) and decoded one at a
/// time, since a decoded one-hour-range histogram is ~190 KB and an hour-long
/// run has tens of thousands of intervals.
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    pub second: u64,
    pub slot: Slot,
    pub encoded: Vec<u8>,
}

impl Interval {
    pub(crate) fn decode(&self) -> Result<Histogram<u64>, ReportError> {
        Ok(decode_histogram(&self.encoded)?)
    }
}

/// A sink for interval histograms: (second since start, slot, histogram).
pub(crate) type Emit<'e> = dyn FnMut(u64, Slot, &Histogram<u64>) -> Result<(), ReportError> + 'e;

/// Stage the interval log (see [`super::atomic`]), streaming: `fill` is
/// handed an emitter and calls it once per interval histogram, in time
/// order, so callers decode one histogram at a time. StartTime and BaseTime
/// are the run start, so interval timestamps are seconds since the start.
pub(crate) fn stage_with<F>(
    path: &Path,
    start: SystemTime,
    version: &str,
    fill: F,
) -> Result<Staged, ReportError>
where
    F: FnOnce(&mut Emit<'_>) -> Result<(), ReportError>,
{
    let io_err = |e: std::io::Error| ReportError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    atomic::stage_with(path, |out| {
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!(
                "sipstorm {version} interval log: one histogram per metric per second, values in microseconds"
            ))
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start);
        let mut writer = builder
            .begin_log_with(out, &mut serializer)
            .map_err(io_err)?;
        writer
            .write_comment("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")
            .map_err(io_err)?;
        let mut emit = |second: u64, slot: Slot, hist: &Histogram<u64>| {
            writer
                .write_histogram(
                    hist,
                    Duration::from_secs(second),
                    Duration::from_secs(1),
                    Tag::new(slot.name()),
                )
                .map_err(|e| match e {
                    IntervalLogWriterError::IoError(e) => io_err(e),
                    IntervalLogWriterError::SerializeError(e) => ReportError::Histogram(
                        HistogramCodecError::Serialize(format!("interval log: {e:?}")),
                    ),
                })
        };
        fill(&mut emit)
    })
}

/// Stage the interval log from encoded intervals (decoded one at a time).
pub(crate) fn stage(
    path: &Path,
    start: SystemTime,
    version: &str,
    intervals: &[Interval],
) -> Result<Staged, ReportError> {
    stage_with(path, start, version, |emit| {
        for iv in intervals {
            emit(iv.second, iv.slot, &iv.decode()?)?;
        }
        Ok(())
    })
}

/// A parsed interval log: base time (Unix seconds) and the intervals,
/// seconds relative to it (rounded down to whole seconds).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub base_unix_s: Option<f64>,
    pub intervals: Vec<Interval>,
}

/// Read an interval log written by [`write`] (or any log whose tags are
/// sipstorm slot names; untagged or unknown tags are skipped).
pub(crate) fn read(path: &Path) -> Result<Parsed, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, e))?;
    let invalid = |reason: String| ReportError::InvalidReport {
        path: path.to_path_buf(),
        reason,
    };
    let mut base = None;
    let mut start = None;
    let mut intervals = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| invalid(format!("interval log: {e:?}")))?;
        match entry {
            LogEntry::BaseTime(t) => base = Some(t.as_secs_f64()),
            LogEntry::StartTime(t) => start = Some(t.as_secs_f64()),
            LogEntry::Interval(iv) => {
                let Some(slot) = iv.tag().and_then(|t| Slot::from_name(t.as_str())) else {
                    continue;
                };
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(iv.encoded_histogram())
                    .map_err(|e| invalid(format!("interval log: {e}")))?;
                intervals.push(Interval {
                    second: iv.start_timestamp().as_secs(),
                    slot,
                    encoded: raw,
                });
            }
        }
    }
    Ok(Parsed {
        base_unix_s: base.or(start),
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("sipstorm-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.hlog");
        let mut h = crate::stats::new_histogram();
        h.record(1500).unwrap();
        h.record(2500).unwrap();
        let slot = Slot::from_name("srd_co").unwrap();
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ivs = vec![
            Interval {
                second: 0,
                slot,
                encoded: crate::stats::encode_histogram(&h).unwrap(),
            },
            Interval {
                second: 3,
                slot,
                encoded: crate::stats::encode_histogram(&h).unwrap(),
            },
        ];
        atomic::commit_all(vec![stage(&path, start, "0.0.0", &ivs).unwrap()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("#[StartTime: 1800000000.000"), "{text}");
        assert!(text.contains("Tag=srd_co,3.000,1.000,"), "{text}");
        let parsed = read(&path).unwrap();
        assert_eq!(parsed.base_unix_s, Some(1_800_000_000.0));
        assert_eq!(parsed.intervals.len(), 2);
        assert_eq!(parsed.intervals[1].second, 3);
        assert_eq!(parsed.intervals[1].decode().unwrap(), h);
        std::fs::remove_dir_all(&dir).ok();
    }
}
