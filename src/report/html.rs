//! `report.html`: one self-contained page (no scripts, no network) with the
//! summary and plots drawn by `plotters` into inline SVG.

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReportError;
use super::model::{Report, decode_histograms};
use super::summary::render_summary;
use crate::stats::{Metric, Slot};

const W: u32 = 1100;
const H: u32 = 380;

/// Distinct, colour-blind-friendly-ish line colours.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One named line, possibly broken into segments where data is missing.
struct Line {
    name: String,
    segments: Vec<Vec<(f64, f64)>>,
    color: RGBColor,
}

impl Line {
    fn from_options(name: String, color: RGBColor, ys: &[Option<f64>]) -> Line {
        let mut segments = Vec::new();
        let mut cur = Vec::new();
        for (i, y) in ys.iter().enumerate() {
            match y {
                Some(y) => cur.push((i as f64, *y)),
                None => {
                    if !cur.is_empty() {
                        segments.push(std::mem::take(&mut cur));
                    }
                }
            }
        }
        if !cur.is_empty() {
            segments.push(cur);
        }
        Line {
            name,
            segments,
            color,
        }
    }

    fn max_y(&self) -> f64 {
        self.segments
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(0.0, f64::max)
    }
}

fn plot_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Plot(e.to_string())
}

fn svg<F>(draw: F) -> Result<String, ReportError>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), ReportError>,
{
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// A chart over seconds since the start (linear x).
fn time_chart(title: &str, y_desc: &str, n: usize, lines: &[Line]) -> Result<String, ReportError> {
    let y_max = lines.iter().map(Line::max_y).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let x_max = (n.max(2) - 1) as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(plot_err)?;
        draw_lines(&mut chart, lines)?;
        Ok(())
    })
}

fn draw_lines<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    lines: &[Line],
) -> Result<(), ReportError>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
    <DB as DrawingBackend>::ErrorType: 'static,
{
    if lines.is_empty() {
        return Ok(());
    }
    for line in lines {
        let color = line.color;
        let mut first = true;
        for seg in &line.segments {
            let series = chart
                .draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?;
            if first {
                series.label(line.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                first = false;
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Percentile label for an x of 1/(1-q): 1 -> 0%, 10 -> 90%, 1000 -> 99.9%.
fn percentile_label(x: &f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / x.max(1.0));
    if q < 99.0 {
        format!("{q:.0}%")
    } else {
        let digits = ((x.log10()).round() as usize).saturating_sub(2).min(6);
        format!("{q:.digits$}%")
    }
}

/// The latency percentile spectrum of one metric, service time and
/// corrected, on HdrHistogram's classic 1/(1-q) log axis.
fn spectrum_chart(
    metric: Metric,
    service: Option<&hdrhistogram::Histogram<u64>>,
    corrected: Option<&hdrhistogram::Histogram<u64>>,
) -> Result<String, ReportError> {
    let mut lines = Vec::new();
    let mut x_max: f64 = 1000.0;
    for (h, name, color) in [
        (service, format!("{} (service)", metric.label()), COLORS[0]),
        (
            corrected,
            format!("{} (from intended start)", metric.label()),
            COLORS[1],
        ),
    ] {
        let Some(h) = h.filter(|h| !h.is_empty()) else {
            continue;
        };
        // Up to 99.9999% or the resolution the sample count supports.
        let cap = (h.len() as f64).clamp(1000.0, 1e6);
        x_max = x_max.max(cap);
        let mut pts = Vec::new();
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let x: f64 = if q >= 1.0 {
                cap
            } else {
                (1.0 / (1.0 - q)).min(cap)
            };
            pts.push((x, v.value_iterated_to() as f64 / 1000.0));
        }
        lines.push(Line {
            name,
            segments: vec![pts],
            color,
        });
    }
    let y_max = lines.iter().map(Line::max_y).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{} latency by percentile", metric.label()),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_label_formatter(&percentile_label)
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(plot_err)?;
        draw_lines(&mut chart, &lines)?;
        Ok(())
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Render the HTML page of a report.
pub fn render_html(r: &Report) -> Result<String, ReportError> {
    let hist = decode_histograms(r).map_err(ReportError::Plot)?;
    let ts = &r.timeseries;
    let n = ts.t_s.len();
    let mut figures: Vec<(String, String)> = Vec::new();

    for m in Metric::ALL {
        let s = hist.get(&Slot {
            metric: m,
            corrected: false,
        });
        let c = hist.get(&Slot {
            metric: m,
            corrected: true,
        });
        if s.is_some() || c.is_some() {
            figures.push((
                format!("{} percentile spectrum", m.label()),
                spectrum_chart(m, s, c)?,
            ));
        }
    }

    if n > 0 {
        let as_opt = |v: &[u64]| v.iter().map(|&x| Some(x as f64)).collect::<Vec<_>>();
        let lines = vec![
            Line::from_options("attempted/s".into(), COLORS[0], &as_opt(&ts.attempted)),
            Line::from_options("succeeded/s".into(), COLORS[2], &as_opt(&ts.succeeded)),
            Line::from_options("failed/s".into(), COLORS[1], &as_opt(&ts.failed)),
            Line::from_options(
                "retransmitted/s".into(),
                COLORS[3],
                &as_opt(&ts.retransmitted),
            ),
        ];
        figures.push((
            "Throughput over time".into(),
            time_chart("Throughput over time", "per second", n, &lines)?,
        ));
        if ts.connections_opened.iter().any(|&x| x > 0) {
            let lines = vec![
                Line::from_options("open".into(), COLORS[0], &as_opt(&ts.connections_open)),
                Line::from_options(
                    "opened/s".into(),
                    COLORS[2],
                    &as_opt(&ts.connections_opened),
                ),
            ];
            figures.push((
                "Connections over time".into(),
                time_chart("Connections over time", "connections", n, &lines)?,
            ));
        }

        let mut lines = Vec::new();
        // Session duration is the hold time, not a delay: it would squash
        // every other line.
        for (i, slot) in Slot::all()
            .filter(|s| s.metric != Metric::SessionDuration)
            .filter(|s| ts.latency_ms.contains_key(s.name()))
            .enumerate()
        {
            if let Some(series) = ts.latency_ms.get(slot.name()) {
                lines.push(Line::from_options(
                    format!("{} p99", slot.name()),
                    COLORS[i % COLORS.len()],
                    &series.p99,
                ));
            }
        }
        if !lines.is_empty() {
            figures.push((
                "p99 latency over time".into(),
                time_chart("p99 latency over time", "ms", n, &lines)?,
            ));
        }

        let mut codes: Vec<(&String, u64)> = ts
            .responses
            .iter()
            .map(|(c, v)| (c, v.iter().sum::<u64>()))
            .collect();
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let lines: Vec<Line> = codes
            .iter()
            .take(COLORS.len())
            .enumerate()
            .filter_map(|(i, (code, _))| {
                ts.responses
                    .get(*code)
                    .map(|v| Line::from_options(format!("{code}/s"), COLORS[i], &as_opt(v)))
            })
            .collect();
        if !lines.is_empty() {
            figures.push((
                "Final responses over time".into(),
                time_chart("Final responses over time", "per second", n, &lines)?,
            ));
        }
    }

    let mut html = String::new();
    let title = format!(
        "sipstorm report: {} at {}",
        escape(&r.scenario),
        escape(&r.started_at)
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n\
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1160px; }}\n\
pre {{ background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 13px; }}\n\
figure {{ margin: 18px 0; }}\nfigcaption {{ font-weight: bold; margin-bottom: 4px; }}\n\
.warn {{ color: #a33; }}\ntable.steps {{ border-collapse: collapse; font-size: 13px; }}\n\
table.steps td, table.steps th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    if !r.warnings.is_empty() {
        html.push_str("<ul class=\"warn\">\n");
        for w in &r.warnings {
            let _ = writeln!(html, "<li>{}</li>", escape(w));
        }
        html.push_str("</ul>\n");
    }
    let _ = writeln!(html, "<pre>{}</pre>", escape(&render_summary(r)));
    if let Some(sf) = &r.scenario_file {
        let _ = writeln!(
            html,
            "<h2>Scenario {}: messages per step</h2>\n{}",
            escape(&sf.name),
            sf.html_table()
        );
    }
    for (caption, svg) in &figures {
        let _ = writeln!(
            html,
            "<figure class=\"plot\">\n<figcaption>{}</figcaption>\n{svg}\n</figure>",
            escape(caption)
        );
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&10000.0), "99.99%");
    }
}
