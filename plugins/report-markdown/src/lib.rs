//! Barrage reporter `markdown`: `report.md`, the headline figures and the
//! latency distributions of every stage as Markdown tables.

use barrage_sdk::reporter::{OutputFile, PluginInfo, ReportInput, Reporter};
use report_common::{client_warning, fmt, headline, latency_rows, num, percentile_keys, section_name, sections};
use serde_json::Value;

/// The `markdown` reporter.
pub struct Markdown;

/// The report as Markdown.
pub fn render_markdown(s: &Value) -> String {
    let mut out = String::from("# Barrage run\n\n");
    let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
    out += &format!(
        "- target: `{}`\n- codec: `{}`\n- seed: {}\n- duration: {} s\n",
        text("target"),
        text("codec"),
        s["seed"],
        fmt(num(&s["duration_s"]), 1)
    );
    if let Some(reason) = s["stop_reason"].as_str() {
        out += &format!("- stopped early: {reason}\n");
    }
    if !s["complete"].as_bool().unwrap_or(true) {
        out += "- the run did not finish: dropped and not-sent counts are unknown\n";
    }
    let slos: Vec<&str> = s["slos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !slos.is_empty() {
        out += &format!("- objectives: {}\n", slos.join(", "));
    }
    out += &format!("- precision: {}\n", text("precision"));
    if let Some(thresholds) = s["thresholds"].as_array().filter(|t| !t.is_empty()) {
        let failed = thresholds.iter().filter(|t| t["passed"] != true).count();
        out += &format!(
            "\n## Thresholds: {} of {} passed\n\n| | threshold | scope | value | limit |\n|---|---|---|---:|---:|\n",
            thresholds.len() - failed,
            thresholds.len()
        );
        for t in thresholds {
            let scope = t["stage"].as_u64().map_or("run".to_string(), |i| format!("stage {i}"));
            out += &format!(
                "| {} | `{}` | {scope} | {} | {} |\n",
                if t["passed"] == true { "pass" } else { "**FAIL**" },
                t["threshold"].as_str().unwrap_or("-").replace('|', "\\|"),
                fmt(num(&t["value"]), 3),
                fmt(num(&t["limit"]), 3)
            );
        }
    }
    let pkeys = percentile_keys(s);
    for stage in sections(s) {
        out += &format!("\n## {}\n\n", section_name(stage));
        if let Some(warning) = client_warning(stage) {
            out += &format!("> **{warning}**\n\n");
        }
        out += "| figure | value |\n|---|---:|\n";
        for (name, v) in headline(stage) {
            out += &format!("| {name} | {v} |\n");
        }
        let (header, rows) = latency_rows(stage, &pkeys);
        out += &format!(
            "\n| latency (ms) | {} |\n|---|{}\n",
            header.join(" | "),
            "---:|".repeat(header.len())
        );
        for (name, cells) in rows {
            out += &format!("| {name} | {} |\n", cells.join(" | "));
        }
        if let Some(errors) = stage["errors"].as_object().filter(|e| !e.is_empty()) {
            out += "\n| error | count |\n|---|---:|\n";
            for (msg, n) in errors {
                out += &format!("| {} | {n} |\n", msg.replace('|', "\\|"));
            }
        }
    }
    out
}

impl Reporter for Markdown {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "markdown".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "report.md: headline figures and latency tables per stage".into(),
            secrets: Vec::new(),
        }
    }

    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
        report_common::check_schema(input.schema_version)?;
        Ok(vec![OutputFile::text("report.md", render_markdown(&input.summary))])
    }
}

barrage_sdk::export_reporter!(Markdown);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hold_the_figures() {
        let s = serde_json::json!({
            "schema_version": 1, "target": "http://127.0.0.1:1", "codec": "openai-chat", "seed": 3,
            "percentiles": [50.0, 99.9], "slos": ["ttft < 200ms"],
            "stages": [{"stage": 0, "label": "constant 5/s", "sent": 10, "requests_per_s": 4.95,
                        "goodput": {"requests_per_s": 4.5, "share": 0.9},
                        "ttft_ms": {"count": 10, "mean": 20.0, "p50": 19.5, "p99.9": 30.25, "max": 31.0},
                        "errors": {"http_error: HTTP 500": 1}}],
            "total": {},
            "thresholds": [{"threshold": "ttft p99 < 1ms", "stage": null, "value": 30.25, "limit": 1.0, "passed": false},
                           {"threshold": "stages: sent > 5", "stage": 0, "value": 10.0, "limit": 5.0, "passed": true}],
        });
        let md = render_markdown(&s);
        assert!(md.contains("## Thresholds: 1 of 2 passed"), "{md}");
        assert!(
            md.contains("| **FAIL** | `ttft p99 < 1ms` | run | 30.250 | 1.000 |"),
            "{md}"
        );
        assert!(
            md.contains("| pass | `stages: sent > 5` | stage 0 | 10.000 | 5.000 |"),
            "{md}"
        );
        assert!(md.contains("| TTFT | 10 | 20.00 | 19.50 | 30.25 | 31.00 |"), "{md}");
        assert!(md.contains("| throughput (req/s) | 4.95 |"));
        assert!(md.contains("| goodput share | 90.0 % |"));
        assert!(md.contains("| http_error: HTTP 500 | 1 |"));
        assert!(md.contains("objectives: ttft < 200ms"));
        assert!(!md.contains("all stages"), "one stage: no separate total");
    }
}
