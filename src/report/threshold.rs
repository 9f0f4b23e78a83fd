//! The threshold language shared by `run --threshold` and `compare
//! --threshold`.
//!
//! ```text
//! threshold := metric op limit
//! op        := "==" | "!=" | "<" | "<=" | ">" | ">="      ("=" means "==")
//! limit     := number unit?            absolute
//!            | ("+"|"-") number "%"     relative to BASE: base * (1 ± n/100)
//!            | ("+"|"-") number unit?   relative to BASE: base ± n
//! unit      := "ms" | "s" | "us"        (latency metrics only; default ms)
//!            | "%"                      (on *_pct ratios, absolute)
//! ```
//!
//! Metric names are paths into `report.json` with shortcuts:
//! `call.failed` = `totals.call.failed`, `srd.p99` = `latency_ms.srd.p99`,
//! `srd_co.p99` for the corrected twin, `ser_pct` or `ser` =
//! `rfc6076.ser_pct`, `rate.achieved` = `rate.achieved_per_s`,
//! `duration` = `duration_s`, `responses.503` (0 when absent). A name that
//! resolves to nothing is an error, never a silent pass; a metric with no
//! value (no samples, a ratio with a zero denominator) fails its threshold.

use serde_json::Value;

use super::ReportError;
use super::model::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        let eq = (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        match self {
            Op::Eq => eq,
            Op::Ne => !eq,
            Op::Lt => a < b,
            Op::Le => a <= b || eq,
            Op::Gt => a > b,
            Op::Ge => a >= b || eq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    Absolute(f64),
    RelativePct(f64),
    RelativeDelta(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LatencyMs,
    Percent,
    Plain,
}

/// A parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    expr: String,
    metric: String,
    op: Op,
    /// The limit as written: number, unit and whether it is relative.
    number: f64,
    unit: String,
    relative: bool,
}

impl Threshold {
    /// Parse `metric op limit`. Metric names are checked against a report
    /// later, by [`Threshold::evaluate`].
    pub fn parse(expr: &str) -> Result<Threshold, ReportError> {
        let bad = |reason: &str| ReportError::BadThreshold {
            expr: expr.to_string(),
            reason: reason.to_string(),
        };
        let e = expr.trim();
        let op_at = e
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| bad("no comparison operator (one of == != < <= > >=)"))?;
        let metric = e[..op_at].trim();
        let rest = &e[op_at..];
        let (op, len) = if rest.starts_with("==") {
            (Op::Eq, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if rest.starts_with("<=") {
            (Op::Le, 2)
        } else if rest.starts_with(">=") {
            (Op::Ge, 2)
        } else if rest.starts_with('<') {
            (Op::Lt, 1)
        } else if rest.starts_with('>') {
            (Op::Gt, 1)
        } else if rest.starts_with('=') {
            (Op::Eq, 1)
        } else {
            return Err(bad("`!` must be followed by `=`"));
        };
        if metric.is_empty() {
            return Err(bad("no metric name before the operator"));
        }
        if !metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(bad("metric names use only letters, digits, `_` and `.`"));
        }
        let limit = rest[len..].trim();
        let (relative, unsigned) = match limit.strip_prefix('+') {
            Some(r) => (true, r),
            None => match limit.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, limit),
            },
        };
        let sign = if limit.starts_with('-') { -1.0 } else { 1.0 };
        let num_end = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (num, unit) = unsigned.split_at(num_end);
        let number: f64 = num
            .parse()
            .map_err(|_| bad("the limit must be a number, e.g. 50ms, 0, 99.5%, +10%"))?;
        if !number.is_finite() {
            return Err(bad("the limit must be finite"));
        }
        let unit = unit.trim();
        if !matches!(unit, "" | "ms" | "s" | "us" | "µs" | "%") {
            return Err(bad("unknown unit (use ms, s, us or %)"));
        }
        Ok(Threshold {
            expr: expr.to_string(),
            metric: metric.to_string(),
            op,
            number: sign * number,
            unit: unit.to_string(),
            relative,
        })
    }

    /// Whether the limit is relative to a base report.
    pub fn is_relative(&self) -> bool {
        self.relative
    }

    /// The metric name as written.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    fn bad(&self, reason: String) -> ReportError {
        ReportError::BadThreshold {
            expr: self.expr.clone(),
            reason,
        }
    }

    /// The limit in the metric's unit (ms for latencies).
    fn limit(&self, kind: Kind) -> Result<Limit, ReportError> {
        let n = self.number;
        let scaled = match (self.unit.as_str(), kind) {
            ("", _) => n,
            ("%", _) if self.relative => return Ok(Limit::RelativePct(n)),
            ("%", Kind::Percent) => n,
            ("%", _) => {
                return Err(self.bad(
                    "`%` without a sign is only for *_pct ratios; write +N% or -N% for a limit relative to BASE"
                        .to_string(),
                ));
            }
            ("ms", Kind::LatencyMs) => n,
            ("s", Kind::LatencyMs) => n * 1000.0,
            ("us" | "µs", Kind::LatencyMs) => n / 1000.0,
            (u, _) => {
                return Err(self.bad(format!(
                    "`{}` is not a latency, so the unit `{u}` does not apply",
                    self.metric
                )));
            }
        };
        Ok(if self.relative {
            Limit::RelativeDelta(scaled)
        } else {
            Limit::Absolute(scaled)
        })
    }

    /// Check this threshold on `new` (and `base`, for relative limits).
    /// `Ok(None)` if it holds, `Ok(Some(message))` if it fails; `Err` for an
    /// unknown metric or a relative limit without a base.
    pub fn evaluate(
        &self,
        new: &Report,
        base: Option<&Report>,
    ) -> Result<Option<String>, ReportError> {
        let new_v = serde_json::to_value(new)?;
        let base_v = base.map(serde_json::to_value).transpose()?;
        self.evaluate_values(&new_v, base_v.as_ref())
    }

    fn evaluate_values(
        &self,
        new: &Value,
        base: Option<&Value>,
    ) -> Result<Option<String>, ReportError> {
        let (path, kind, value) = resolve(new, &self.metric).map_err(|e| match e {
            Resolve::Unknown => ReportError::UnknownMetric {
                expr: self.expr.clone(),
                metric: self.metric.clone(),
            },
            Resolve::NotNumber(what) => self.bad(what),
        })?;
        let limit = self.limit(kind)?;
        let unit = if kind == Kind::LatencyMs { " ms" } else { "" };
        let Some(value) = value else {
            return Ok(Some(format!(
                "`{}` failed: {path} has no value (no samples)",
                self.expr
            )));
        };
        let (bound, context) = match limit {
            Limit::Absolute(b) => (b, String::new()),
            Limit::RelativePct(_) | Limit::RelativeDelta(_) => {
                let Some(base) = base else {
                    return Err(ReportError::RelativeWithoutBase {
                        expr: self.expr.clone(),
                    });
                };
                let base_value = resolve(base, &self.metric).ok().and_then(|(_, _, v)| v);
                let Some(b) = base_value else {
                    return Ok(Some(format!(
                        "`{}` failed: {path} has no value in BASE",
                        self.expr
                    )));
                };
                let bound = match limit {
                    Limit::RelativePct(p) => b * (1.0 + p / 100.0),
                    Limit::RelativeDelta(d) => b + d,
                    Limit::Absolute(a) => a,
                };
                let change = if b != 0.0 {
                    format!(" ({:+.1}%)", (value - b) * 100.0 / b)
                } else {
                    String::new()
                };
                (bound, format!(", BASE {}{unit}{change}", fmt_num(b)))
            }
        };
        if self.op.holds(value, bound) {
            Ok(None)
        } else {
            Ok(Some(format!(
                "`{}` failed: {path} is {}{unit}{context}, limit {}{unit}",
                self.expr,
                fmt_num(value),
                fmt_num(bound)
            )))
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

enum Resolve {
    Unknown,
    NotNumber(String),
}

/// Roots a threshold may not reach into.
const HIDDEN: &[&str] = &[
    "histograms",
    "timeseries",
    "config",
    "tool",
    "warnings",
    "schema",
    "started_at",
    "scenario",
];

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// Resolve a metric name to (canonical path, kind, value).
fn resolve(report: &Value, name: &str) -> Result<(String, Kind, Option<f64>), Resolve> {
    let root = name.split('.').next().unwrap_or("");
    if HIDDEN.contains(&root) {
        return Err(Resolve::Unknown);
    }
    if let Some(code) = name.strip_prefix("responses.") {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
            let n = lookup(report, name).and_then(Value::as_f64).unwrap_or(0.0);
            return Ok((name.to_string(), Kind::Plain, Some(n)));
        }
        return Err(Resolve::Unknown);
    }
    let candidates = [
        name.to_string(),
        format!("totals.{name}"),
        format!("latency_ms.{name}"),
        format!("rfc6076.{name}"),
        format!("rfc6076.{name}_pct"),
        format!("{name}_per_s"),
        format!("{name}_s"),
    ];
    for path in candidates {
        let Some(v) = lookup(report, &path) else {
            continue;
        };
        let kind = if path.starts_with("latency_ms.")
            || (path.starts_with("rfc6076.") && path.contains("_ms."))
        {
            Kind::LatencyMs
        } else if path.ends_with("_pct") {
            Kind::Percent
        } else {
            Kind::Plain
        };
        return match v {
            Value::Number(n) => Ok((path, kind, n.as_f64())),
            Value::Null => Ok((path, kind, None)),
            Value::Object(map) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
                Err(Resolve::NotNumber(format!(
                    "`{name}` is a group, not a number; name one of its fields: {}",
                    keys.join(", ")
                )))
            }
            _ => Err(Resolve::NotNumber(format!("`{name}` is not a number"))),
        };
    }
    Err(Resolve::Unknown)
}

fn check(
    new: &Report,
    base: Option<&Report>,
    thresholds: &[String],
) -> Result<Vec<String>, ReportError> {
    let parsed: Vec<Threshold> = thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<_, _>>()?;
    let new_v = serde_json::to_value(new)?;
    let base_v = base.map(serde_json::to_value).transpose()?;
    // Check every expression for usage errors before reporting failures, so
    // a typo is never hidden behind a failed threshold.
    for t in &parsed {
        if t.relative && base.is_none() {
            return Err(ReportError::RelativeWithoutBase {
                expr: t.expr.clone(),
            });
        }
    }
    let mut failed = Vec::new();
    for t in &parsed {
        if let Some(msg) = t.evaluate_values(&new_v, base_v.as_ref())? {
            failed.push(msg);
        }
    }
    Ok(failed)
}

/// `run --threshold`: check thresholds on one report. Returns the failure
/// messages (empty = all held). Relative limits are an error here.
pub fn check_thresholds(
    report: &Report,
    thresholds: &[String],
) -> Result<Vec<String>, ReportError> {
    check(report, None, thresholds)
}

/// `compare --threshold`: check thresholds on `new`, relative limits
/// against `base`.
pub fn check_thresholds_against(
    base: &Report,
    new: &Report,
    thresholds: &[String],
) -> Result<Vec<String>, ReportError> {
    check(new, Some(base), thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report_value(p99: Option<f64>, failed: u64, achieved: f64, ser: Option<f64>) -> Value {
        json!({
            "schema": "sipstorm.report/v1",
            "duration_s": 30.0,
            "rate": {"offered_per_s": 1000.0, "achieved_per_s": achieved},
            "totals": {"call": {"attempted": 100, "failed": failed}},
            "latency_ms": {"srd": {"count": 10, "p99": p99}, "rrd": {"count": 0, "p99": null}},
            "rfc6076": {"srd_ms": {"p99": p99}, "ser_pct": ser},
            "responses": {"200": 97, "503": 3},
            "config": {"rate": 5}
        })
    }

    fn eval(expr: &str, new: &Value, base: Option<&Value>) -> Result<Option<String>, ReportError> {
        Threshold::parse(expr)?.evaluate_values(new, base)
    }

    #[test]
    fn absolute_thresholds_table() {
        let r = report_value(Some(40.0), 0, 990.0, Some(99.5));
        // (expression, holds?)
        let cases = [
            ("call.failed==0", true),
            ("call.failed = 0", true),
            ("call.failed!=0", false),
            ("totals.call.failed<1", true),
            ("srd.p99<50ms", true),
            ("srd.p99<50", true),
            ("srd.p99<0.05s", true),
            ("srd.p99<40000us", false),
            ("srd.p99<=40ms", true),
            ("rfc6076.srd_ms.p99>39.9", true),
            ("rate.achieved>=990", true),
            ("rate.achieved_per_s>990", false),
            ("ser_pct>=99.5%", true),
            ("ser>99.9", false),
            ("rfc6076.ser_pct>=99", true),
            ("responses.503==3", true),
            ("responses.486==0", true),
            ("duration>=30", true),
        ];
        for (expr, holds) in cases {
            let out = eval(expr, &r, None).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(out.is_none(), holds, "{expr}: {out:?}");
        }
    }

    #[test]
    fn relative_thresholds_against_base() {
        let base = report_value(Some(40.0), 0, 1000.0, Some(100.0));
        let new = report_value(Some(45.0), 2, 960.0, Some(98.0));
        let cases = [
            ("srd.p99<+10%", false),       // 45 > 44
            ("srd.p99<+15%", true),        // 45 < 46
            ("srd.p99<=+5ms", true),       // 45 <= 45
            ("rate.achieved>=-5%", true),  // 960 >= 950
            ("rate.achieved>=-3%", false), // 960 < 970
            ("call.failed<=+0", false),
            ("ser_pct>=-1%", true), // 98 >= 99? no -> 99*... see below
        ];
        for (expr, holds) in cases.iter().take(6) {
            let out = eval(expr, &new, Some(&base)).unwrap();
            assert_eq!(out.is_none(), *holds, "{expr}: {out:?}");
        }
        // 98 >= 100 * 0.99 = 99 fails.
        assert!(eval(cases[6].0, &new, Some(&base)).unwrap().is_some());
        let msg = eval("srd.p99<+10%", &new, Some(&base)).unwrap().unwrap();
        assert!(
            msg.contains("srd.p99<+10%") && msg.contains("+12.5%"),
            "{msg}"
        );
    }

    #[test]
    fn usage_errors() {
        let r = report_value(Some(40.0), 0, 990.0, None);
        for expr in [
            "srd.p99",
            "srd.p99<",
            "<5",
            "srd.p99<5 parsecs",
            "srd.p99!5",
            "a b<3",
        ] {
            let e = eval(expr, &r, None).unwrap_err();
            assert!(matches!(e, ReportError::BadThreshold { .. }), "{expr}: {e}");
            assert!(e.is_usage());
        }
        for expr in [
            "nosuch.p99<5",
            "srd.p98<5",
            "config.rate==5",
            "histograms.srd==1",
            "responses.2000==1",
        ] {
            let e = eval(expr, &r, None).unwrap_err();
            assert!(
                matches!(e, ReportError::UnknownMetric { .. }),
                "{expr}: {e}"
            );
            assert!(e.is_usage());
        }
        // A group, not a number.
        assert!(matches!(
            eval("srd<5ms", &r, None).unwrap_err(),
            ReportError::BadThreshold { .. }
        ));
        // Units that do not fit the metric.
        assert!(eval("call.failed<5ms", &r, None).is_err());
        assert!(eval("call.failed<5%", &r, None).is_err());
        // Relative without a base.
        assert!(matches!(
            eval("srd.p99<+10%", &r, None).unwrap_err(),
            ReportError::RelativeWithoutBase { .. }
        ));
    }

    proptest::proptest! {
        /// Arbitrary input never panics: it parses, or it is a usage error.
        #[test]
        fn arbitrary_expressions_never_panic(expr in ".{0,40}") {
            let r = report_value(Some(40.0), 0, 990.0, Some(99.0));
            match eval(&expr, &r, Some(&r)) {
                Ok(_) => {}
                Err(e) => proptest::prop_assert!(e.is_usage(), "{}", e),
            }
        }

        #[test]
        fn operator_shaped_expressions_never_panic(
            m in "[a-z_.0-9]{0,12}", op in "(==|!=|<=|>=|<|>|=|!)", v in "[-+]?[0-9.]{0,6}(ms|s|us|%|x)?"
        ) {
            let r = report_value(Some(40.0), 0, 990.0, Some(99.0));
            let _ = eval(&format!("{m}{op}{v}"), &r, Some(&r));
        }
    }

    #[test]
    fn missing_values_fail_not_pass() {
        let r = report_value(Some(40.0), 0, 990.0, None);
        assert!(eval("rrd.p99<50ms", &r, None).unwrap().is_some());
        assert!(eval("ser_pct>=99", &r, None).unwrap().is_some());
    }
}
