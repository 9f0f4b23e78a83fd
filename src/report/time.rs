//! RFC 3339 timestamps without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Format a wall-clock time as RFC 3339 UTC with milliseconds,
/// e.g. `2026-11-22T00:15:02.125Z`. Times before 1970 print as the epoch.
pub fn format_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let cases = [
            (0u64, 0u32, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000, 5_000_000, "2023-11-14T22:13:20.005Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000Z"),
            (1_795_305_600, 999_999_999, "2026-11-22T00:00:00.999Z"),
        ];
        for (s, ns, want) in cases {
            let t = UNIX_EPOCH + Duration::new(s, ns);
            assert_eq!(format_rfc3339(t), want);
        }
    }
}
