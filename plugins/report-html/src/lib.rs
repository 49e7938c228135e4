//! Barrage reporter `html`: `report.html`, one self-contained file (inline
//! CSS and SVG, nothing fetched) with latency distributions, throughput,
//! latency and concurrency over time with stage boundaries, and for
//! multi-stage runs the load curve: achieved throughput and latency against
//! offered load, which shows where the server saturates.

mod chart;

use barrage_sdk::reporter::{OutputFile, PluginInfo, ReportInput, Reporter};
use chart::{Chart, Series, line_chart};
use report_common::{
    LATENCIES, client_warning, fmt, headline, html_escape, latency_rows, num, percentile_keys, section_name, sections,
};
use serde_json::Value;

/// The `html` reporter.
pub struct Html;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.charts{display:flex;flex-wrap:wrap;gap:12px}\
.meta{color:#555;font-size:13px}.warn{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px;font-size:13px}";

/// Marks the page once it is in the DOM: how many charts drew lines, and
/// any script error, so a headless browser can check the render.
const CHECK: &str = "<script>window.addEventListener('error',function(e){document.body.dataset.error=String(e.message)});\
window.addEventListener('load',function(){var n=0;document.querySelectorAll('svg.chart').forEach(function(s){\
if(s.querySelector('polyline,circle'))n++});document.body.dataset.charts=n;document.body.dataset.rendered='ok'});</script>";

fn stage_marks(s: &Value) -> Vec<(f64, String)> {
    let stages = s["stages"].as_array().cloned().unwrap_or_default();
    if stages.len() < 2 {
        return Vec::new();
    }
    stages
        .iter()
        .filter_map(|st| {
            Some((
                num(&st["start_ms"])? / 1000.0,
                format!("stage {}", st["stage"].as_u64()?),
            ))
        })
        .collect()
}

fn distribution_charts(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["ttft_ms", "inter_token_ms", "tpot_ms", "e2e_ms"] {
        let name = LATENCIES.iter().find(|(k, _)| *k == key).map_or(key, |(_, n)| n);
        let series: Vec<Series> = sections(s)
            .into_iter()
            .filter_map(|st| {
                let cdf = st[key]["cdf"].as_array()?;
                Some(Series {
                    name: section_name(st),
                    points: cdf
                        .iter()
                        .filter_map(|p| Some((num(&p[1])?, Some(num(&p[0])?))))
                        .collect(),
                    markers: false,
                })
            })
            .collect();
        let title = format!("{name}: distribution");
        if let Some(svg) = line_chart(
            &Chart {
                title: &title,
                x_label: "ms",
                y_label: "percentile",
                marks: Vec::new(),
            },
            &series,
        ) {
            out.push(svg);
        }
    }
    out
}

fn over_time_charts(s: &Value) -> Vec<String> {
    let points = s["timeseries"].as_array().cloned().unwrap_or_default();
    let series = |name: &str, key: &str| Series {
        name: name.to_string(),
        points: points
            .iter()
            .filter_map(|p| Some((num(&p["t_s"])?, num(&p[key]))))
            .collect(),
        markers: false,
    };
    let marks = stage_marks(s);
    let charts: [(&str, &str, Vec<Series>); 4] = [
        (
            "Throughput over time",
            "requests/s",
            vec![
                series("completed", "completed"),
                series("sent", "sent"),
                series("failed", "failed"),
            ],
        ),
        (
            "Output tokens over time",
            "tokens/s",
            vec![series("output tokens/s", "output_tokens")],
        ),
        (
            "Latency over time (by send second)",
            "ms",
            vec![
                series("TTFT p50", "ttft_p50_ms"),
                series("TTFT p99", "ttft_p99_ms"),
                series("TPOT p50", "tpot_p50_ms"),
            ],
        ),
        (
            "Concurrency over time",
            "requests in flight",
            vec![series("in flight", "concurrency")],
        ),
    ];
    // The server's own queue beside the client's requests in flight, on
    // the run's clock (scraped samples, or a Prometheus server's points).
    let samples = s["server"]["samples"].as_array().cloned().unwrap_or_default();
    let server = |name: &str, key: &str| Series {
        name: name.to_string(),
        points: samples
            .iter()
            .filter_map(|p| Some((num(&p["t_s"])?, Some(num(&p[key])?))))
            .collect(),
        markers: false,
    };
    let client_and_server = (
        "Client and server over time",
        "requests (replicas)",
        [
            series("client: in flight", "concurrency"),
            server("server: running", "running"),
            server("server: waiting", "waiting"),
            server("server: replicas", "replicas"),
        ]
        .into_iter()
        .filter(|s| s.points.iter().any(|p| p.1.is_some()))
        .collect(),
    );
    let with_server = (!samples.is_empty()).then_some(client_and_server);
    charts
        .into_iter()
        .chain(with_server)
        .filter_map(|(title, y_label, series)| {
            line_chart(
                &Chart {
                    title,
                    x_label: "seconds from start",
                    y_label,
                    marks: marks.clone(),
                },
                &series,
            )
        })
        .collect()
}

/// Achieved throughput and latency against offered load, one point per stage.
fn load_curve_charts(s: &Value) -> Vec<String> {
    let stages = s["stages"].as_array().cloned().unwrap_or_default();
    if stages.len() < 2 {
        return Vec::new();
    }
    let closed = stages.iter().all(|st| st["requested_rate"].is_null());
    let offered = |st: &Value| {
        if closed {
            num(&st["requested_concurrency"])
        } else {
            num(&st["requested_rate"]).or(num(&st["achieved_rate"]))
        }
    };
    let x_label = if closed {
        "virtual users"
    } else {
        "offered rate (req/s)"
    };
    let curve = |name: &str, f: &dyn Fn(&Value) -> Option<f64>| Series {
        name: name.to_string(),
        points: stages.iter().filter_map(|st| Some((offered(st)?, f(st)))).collect(),
        markers: true,
    };
    // A sweep's knee, a search's answer.
    let marks: Vec<(f64, String)> = s["load_marks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((num(&m["load"])?, m["label"].as_str()?.to_string())))
        .collect();
    let mut out = Vec::new();
    let throughput = [
        curve("achieved req/s", &|st| num(&st["requests_per_s"])),
        curve("goodput req/s", &|st| num(&st["goodput"]["requests_per_s"])),
    ];
    if let Some(svg) = line_chart(
        &Chart {
            title: "Load curve: throughput",
            x_label,
            y_label: "requests/s",
            marks: marks.clone(),
        },
        &throughput,
    ) {
        out.push(svg);
    }
    let latency = [
        curve("TTFT p50", &|st| num(&st["ttft_ms"]["p50"])),
        curve("TTFT p99", &|st| num(&st["ttft_ms"]["p99"])),
        curve("TPOT p50", &|st| num(&st["tpot_ms"]["p50"])),
        curve("TPOT p99", &|st| num(&st["tpot_ms"]["p99"])),
    ];
    if let Some(svg) = line_chart(
        &Chart {
            title: "Load curve: latency",
            x_label,
            y_label: "ms",
            marks,
        },
        &latency,
    ) {
        out.push(svg);
    }
    out
}

fn tables(s: &Value) -> String {
    let pkeys = percentile_keys(s);
    let mut out = String::new();
    for st in sections(s) {
        out += &format!("<h2>{}</h2>", html_escape(&section_name(st)));
        if let Some(warning) = client_warning(st) {
            out += &format!("<p class=warn>{}</p>", html_escape(&warning));
        }
        out += "<table>";
        for (name, v) in headline(st) {
            out += &format!("<tr><td>{name}</td><td class=n>{v}</td></tr>");
        }
        let (header, rows) = latency_rows(st, &pkeys);
        out += "</table><table><tr><th>latency (ms)</th>";
        for h in &header {
            out += &format!("<th>{h}</th>");
        }
        out += "</tr>";
        for (name, cells) in rows {
            out += &format!("<tr><td>{name}</td>");
            for c in cells {
                out += &format!("<td class=n>{c}</td>");
            }
            out += "</tr>";
        }
        out += "</table>";
        if let Some(errors) = st["errors"].as_object().filter(|e| !e.is_empty()) {
            out += "<table><tr><th>error</th><th>count</th></tr>";
            for (msg, n) in errors {
                out += &format!("<tr><td>{}</td><td class=n>{n}</td></tr>", html_escape(msg));
            }
            out += "</table>";
        }
    }
    out
}

/// The whole page.
pub fn render_html(s: &Value) -> String {
    let text = |k: &str| html_escape(s[k].as_str().unwrap_or("-"));
    let mut page = format!(
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Barrage run</title><style>{STYLE}</style></head><body>\
         <h1>Barrage run</h1><p class=meta>target <code>{}</code> · codec <code>{}</code> · seed {} · {} s{}</p>",
        text("target"),
        text("codec"),
        s["seed"],
        fmt(num(&s["duration_s"]), 1),
        s["stop_reason"]
            .as_str()
            .map(|r| format!(" · stopped early: {}", html_escape(r)))
            .unwrap_or_default()
    );
    let curve = load_curve_charts(s);
    if !curve.is_empty() {
        page += &format!("<h2>Load curve</h2><div class=charts>{}</div>", curve.join(""));
    }
    page += &format!(
        "<h2>Over time</h2><div class=charts>{}</div>",
        over_time_charts(s).join("")
    );
    page += &format!(
        "<h2>Latency distributions</h2><div class=charts>{}</div>",
        distribution_charts(s).join("")
    );
    page += &tables(s);
    page += &format!("<p class=meta>{}</p>{CHECK}</body></html>\n", text("precision"));
    page
}

impl Reporter for Html {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "html".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "report.html: one self-contained page with charts and tables".into(),
            secrets: Vec::new(),
        }
    }

    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
        report_common::check_schema(input.schema_version)?;
        Ok(vec![OutputFile::text("report.html", render_html(&input.summary))])
    }
}

barrage_sdk::export_reporter!(Html);

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(i: u64, rate: f64, rps: f64, ttft: f64) -> Value {
        serde_json::json!({
            "stage": i, "label": format!("constant {rate}/s"), "requested_rate": rate, "requests_per_s": rps,
            "start_ms": i as f64 * 10_000.0,
            "ttft_ms": {"count": 5, "mean": ttft, "p50": ttft, "p99": ttft * 2.0, "max": ttft * 2.0,
                        "cdf": [[0.0, ttft / 2.0], [50.0, ttft], [100.0, ttft * 2.0]]},
        })
    }

    #[test]
    fn multi_stage_pages_have_a_load_curve_and_stage_marks() {
        let s = serde_json::json!({
            "schema_version": 1, "percentiles": [50.0, 99.0], "target": "http://127.0.0.1:1",
            "stages": [stage(0, 10.0, 10.0, 20.0), stage(1, 20.0, 18.0, 90.0)],
            "total": {"stage": null},
            "timeseries": [{"t_s": 0.0, "output_tokens": 100, "completed": 10, "sent": 10, "concurrency": 1.0, "ttft_p50_ms": 20.0},
                           {"t_s": 1.0, "completed": 12, "sent": 12, "concurrency": 1.5, "ttft_p50_ms": null},
                           {"t_s": 12.0, "completed": 18, "sent": 20, "concurrency": 4.0, "ttft_p50_ms": 90.0}],
        });
        let page = render_html(&s);
        assert!(page.contains("Load curve: throughput") && page.contains("Load curve: latency"));
        assert!(page.contains("TTFT: distribution"));
        assert_eq!(
            page.matches(r#"class="mark""#).count(),
            2 * 4,
            "two stage marks on each over-time chart"
        );
        assert!(
            !page.contains(" src=") && !page.contains("href=") && !page.contains("<link"),
            "nothing fetched"
        );
    }

    #[test]
    fn a_sweeps_knee_is_marked_on_both_load_curves() {
        let s = serde_json::json!({
            "schema_version": 1, "percentiles": [50.0, 99.0],
            "stages": [stage(0, 40.0, 40.0, 20.0), stage(1, 90.0, 80.0, 300.0)],
            "total": {"stage": null}, "timeseries": [],
            "load_marks": [{"load": 80.0, "label": "knee 80.0 ± 0.4 req/s"}],
        });
        let page = render_html(&s);
        assert_eq!(page.matches("knee 80.0 ± 0.4 req/s").count(), 2, "{page}");
    }

    #[test]
    fn the_servers_queue_is_drawn_beside_the_clients_in_flight() {
        let mut s = serde_json::json!({
            "schema_version": 1, "percentiles": [50.0], "stages": [stage(0, 10.0, 10.0, 20.0)],
            "total": {"stage": null},
            "timeseries": [{"t_s": 0.0, "completed": 1, "sent": 1, "concurrency": 1.0},
                           {"t_s": 1.0, "completed": 1, "sent": 1, "concurrency": 3.0}],
        });
        assert!(
            !render_html(&s).contains("Client and server over time"),
            "no server: no chart"
        );
        s["server"] = serde_json::json!({"samples": [{"t_s": 0.5, "waiting": 2.0, "running": 4.0},
                                                     {"t_s": 1.5, "waiting": 0.0, "running": 1.0}]});
        let page = render_html(&s);
        assert!(page.contains("Client and server over time"));
        for legend in ["client: in flight", "server: running", "server: waiting"] {
            assert!(page.contains(legend), "{legend}");
        }
        assert!(
            !page.contains("server: replicas"),
            "a series without samples is left out"
        );
    }
}
