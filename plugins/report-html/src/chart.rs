//! Line charts as inline SVG: no script, no fonts, no network needed to view.

use std::fmt::Write as _;

use report_common::html_escape;

/// Colors of successive series.
pub const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
];

/// One line. `None` values break it (a second without samples).
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, Option<f64>)>,
    /// Draw a dot at each point (few points: a load curve).
    pub markers: bool,
}

/// A chart's text and axes.
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label of the x axis.
    pub x_label: &'a str,
    /// Label of the y axis.
    pub y_label: &'a str,
    /// Vertical marks (stage boundaries): (x, label).
    pub marks: Vec<(f64, String)>,
}

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 78.0;
/// Legend entries per row.
const LEGEND_COLUMNS: usize = 3;

/// A "nice" tick step giving about `target` ticks over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Render the chart; `None` when no series has a point.
pub fn line_chart(chart: &Chart<'_>, series: &[Series]) -> Option<String> {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| p.1.is_some()).map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let y1 = ys.fold(f64::NEG_INFINITY, f64::max);
    if !x0.is_finite() || !y1.is_finite() {
        return None;
    }
    for (x, _) in &chart.marks {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.05 };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - y / y1 * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}">"#,
        t = html_escape(chart.title)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        html_escape(chart.title)
    );
    // Grid and ticks.
    let ystep = tick_step(y1, 5.0);
    let mut y = 0.0;
    while y <= y1 + 1e-9 {
        let py = sy(y);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            label(y)
        );
        y += ystep;
    }
    let xstep = tick_step(x1 - x0, 6.0);
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 + 1e-9 {
        let px = sx(x);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{px:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 16.0,
            label(x)
        );
        x += xstep;
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text><text transform="translate(14 {}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
        LEFT + pw / 2.0,
        TOP + ph + 32.0,
        html_escape(chart.x_label),
        TOP + ph / 2.0,
        html_escape(chart.y_label)
    );
    for (x, text) in &chart.marks {
        let px = sx(*x);
        let _ = write!(
            svg,
            r##"<line class="mark" x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" fill="#555">{}</text>"##,
            TOP + ph,
            px + 3.0,
            TOP + 10.0,
            html_escape(text)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // Contiguous runs of points become one polyline each.
        let mut run: Vec<String> = Vec::new();
        let flush = |run: &mut Vec<String>, svg: &mut String| {
            if run.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
                    run.join(" ")
                );
            }
            run.clear();
        };
        for (x, y) in &s.points {
            match y {
                Some(y) => {
                    run.push(format!("{:.1},{:.1}", sx(*x), sy(*y)));
                    if s.markers || s.points.len() == 1 {
                        let _ = write!(
                            svg,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                            sx(*x),
                            sy(*y)
                        );
                    }
                }
                None => flush(&mut run, &mut svg),
            }
        }
        flush(&mut run, &mut svg);
        // Legend under the axis label.
        let lx = LEFT + (i % LEGEND_COLUMNS) as f64 * (pw / LEGEND_COLUMNS as f64);
        let ly = H - 26.0 + (i / LEGEND_COLUMNS) as f64 * 14.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            ly - 9.0,
            lx + 14.0,
            html_escape(&s.name.chars().take(30).collect::<String>())
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(7.0, 5.0), 1.0);
        assert_eq!(tick_step(0.3, 6.0), 0.05);
    }

    #[test]
    fn a_chart_has_one_polyline_per_unbroken_run() {
        let chart = Chart {
            title: "t <x>",
            x_label: "s",
            y_label: "ms",
            marks: vec![(1.0, "stage 1".into())],
        };
        let s = Series {
            name: "a".into(),
            points: vec![
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(1.0)),
                (4.0, Some(3.0)),
            ],
            markers: false,
        };
        let svg = line_chart(&chart, &[s]).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;x&gt;"));
        assert!(svg.contains(r#"class="mark""#));
        assert!(line_chart(&chart, &[]).is_none());
    }
}
