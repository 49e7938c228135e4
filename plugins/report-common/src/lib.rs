//! Reading a Barrage run summary (`summary.json`, schema in `docs/metrics.md`),
//! shared by the first-party reporters so they name and format every
//! quantity the same way.

use serde_json::Value;

/// The summary schema version these reporters understand.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency distributions of a stage: (summary key, name in reports).
pub const LATENCIES: &[(&str, &str)] = &[
    ("ttft_ms", "TTFT"),
    ("ttfb_ms", "Time to first byte"),
    ("ttfa_ms", "Time to first answer token"),
    ("inter_chunk_ms", "Inter-chunk latency"),
    ("inter_token_ms", "Inter-token latency"),
    ("tpot_ms", "TPOT"),
    ("e2e_ms", "End-to-end (last token)"),
    ("e2e_stream_ms", "End-to-end (stream end)"),
    ("normalized_ms_per_token", "Normalized latency (ms/token)"),
    ("send_lag_ms", "Send lag"),
    ("queue_wait_ms", "Queue wait"),
];

/// Refuse a summary of a schema this reporter does not know.
pub fn check_schema(version: u32) -> Result<(), String> {
    if version == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(format!(
            "summary schema version {version} is not supported by this reporter (it reads version {SCHEMA_VERSION})"
        ))
    }
}

/// The percentile keys of the summary (`p50`, `p99.9`, …), in order.
pub fn percentile_keys(summary: &Value) -> Vec<String> {
    summary["percentiles"]
        .as_array()
        .map(|ps| ps.iter().filter_map(Value::as_f64).map(|p| format!("p{p}")).collect())
        .unwrap_or_default()
}

/// Every stage, then the whole run (when there is more than one stage).
pub fn sections(summary: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = summary["stages"]
        .as_array()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if out.len() != 1 {
        out.push(&summary["total"]);
    }
    out
}

/// `stage 0: poisson 5/s for 10s`, or `all stages`.
pub fn section_name(stage: &Value) -> String {
    let label = stage["label"].as_str().unwrap_or("");
    match stage["stage"].as_u64() {
        Some(i) if label.is_empty() => format!("stage {i}"),
        Some(i) => format!("stage {i}: {label}"),
        None => "all stages".to_string(),
    }
}

/// A number, if present.
pub fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// A number with `decimals`, or `-`.
pub fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "-".to_string(),
    }
}

/// The run's headline figures of one section: (name, value).
pub fn headline(stage: &Value) -> Vec<(&'static str, String)> {
    let n = |k: &str| num(&stage[k]);
    let mut rows = vec![
        ("scheduled", fmt(n("scheduled"), 0)),
        ("sent", fmt(n("sent"), 0)),
        ("succeeded", fmt(n("succeeded"), 0)),
        ("failed", fmt(n("failed"), 0)),
        ("cancelled", fmt(n("cancelled"), 0)),
        ("dropped at cap", fmt(n("dropped"), 0)),
        ("missed (client behind)", fmt(n("missed"), 0)),
        ("not sent (stopped)", fmt(n("not_sent"), 0)),
        ("requested rate (req/s)", fmt(n("requested_rate"), 2)),
        ("achieved send rate (req/s)", fmt(n("achieved_rate"), 2)),
        ("throughput (req/s)", fmt(n("requests_per_s"), 2)),
        ("input tokens/s", fmt(n("input_tokens_per_s"), 1)),
    ];
    // A run of embeddings, rankings, images or audio counts items, and
    // generates no tokens to count.
    if n("items").is_some_and(|i| i > 0.0) {
        rows.push(("items/s", fmt(n("items_per_s"), 1)));
    }
    if n("output_tokens").is_some_and(|t| t > 0.0) || n("items").is_none_or(|i| i == 0.0) {
        rows.push(("output tokens/s", fmt(n("output_tokens_per_s"), 1)));
        rows.push(("total tokens/s", fmt(n("total_tokens_per_s"), 1)));
    }
    if stage["goodput"].is_object() {
        let g = &stage["goodput"];
        rows.push(("goodput (req/s)", fmt(num(&g["requests_per_s"]), 2)));
        rows.push(("goodput share", fmt(num(&g["share"]).map(|s| s * 100.0), 1) + " %"));
    }
    rows.extend(server_rows(&stage["server"]));
    rows
}

/// The server's own figures over the section (its `server`, when its
/// metrics were scraped or queried): (name, value), those it has.
pub fn server_rows(server: &Value) -> Vec<(&'static str, String)> {
    let mean_most = |g: &Value, scale: f64| {
        num(&g["mean"]).map(|mean| {
            format!(
                "{} / {}",
                fmt(Some(mean * scale), 1),
                fmt(num(&g["max"]).map(|v| v * scale), 1)
            )
        })
    };
    let latency = |l: &Value| num(&l["p50"]).map(|p50| format!("{} / {}", fmt(Some(p50), 1), fmt(num(&l["p99"]), 1)));
    [
        (
            "server: requests completed",
            num(&server["requests"]).map(|n| fmt(Some(n), 0)),
        ),
        ("server: waiting (mean / most)", mean_most(&server["waiting"], 1.0)),
        ("server: running (mean / most)", mean_most(&server["running"], 1.0)),
        ("server: replicas (mean / most)", mean_most(&server["replicas"], 1.0)),
        (
            "server: KV-cache use (mean / most, %)",
            mean_most(&server["kv_cache_usage"], 100.0),
        ),
        (
            "server: prefix-cache hits (%)",
            num(&server["prefix_cache_hit_rate"]).map(|r| fmt(Some(r * 100.0), 1)),
        ),
        ("server: TTFT p50 / p99 (ms)", latency(&server["ttft_ms"])),
        ("server: inter-token p50 / p99 (ms)", latency(&server["itl_ms"])),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some((name, v?)))
    .collect()
}

/// The warning for a section whose client was saturated: Barrage itself
/// was a bottleneck, so its figures describe the client as much as the
/// server. Every report shows it.
pub fn client_warning(stage: &Value) -> Option<String> {
    if !stage["client"]["saturated"].as_bool().unwrap_or(false) {
        return None;
    }
    Some(format!(
        "Client saturated: Barrage itself was a bottleneck, so these figures describe the client as much as the server ({}).",
        client_reasons(stage)
    ))
}

/// Why the section's client was saturated, one reason after another (empty when it was not).
pub fn client_reasons(stage: &Value) -> String {
    let reasons: Vec<&str> = stage["client"]["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    reasons.join("; ")
}

/// The latency table of one section: a header (`count`, `mean`, the
/// percentiles, `max`) and, per distribution present, its name and cells.
pub fn latency_rows(stage: &Value, percentile_keys: &[String]) -> (Vec<String>, Vec<(&'static str, Vec<String>)>) {
    let mut header = vec!["count".to_string(), "mean".to_string()];
    header.extend(percentile_keys.iter().cloned());
    header.push("max".into());
    let rows = LATENCIES
        .iter()
        .filter(|(key, _)| stage[*key].is_object())
        .map(|(key, name)| {
            let d = &stage[*key];
            let cells = header
                .iter()
                .map(|h| fmt(num(&d[h.as_str()]), if h == "count" { 0 } else { 2 }))
                .collect();
            (*name, cells)
        })
        .collect();
    (header, rows)
}

/// Escape text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_rows_show_what_the_server_reported() {
        let server = serde_json::json!({
            "requests": 40.0, "waiting": {"mean": 1.5, "max": 3.0},
            "kv_cache_usage": {"mean": 0.5, "max": 0.75}, "ttft_ms": {"p50": 50.0, "p99": 59.6},
        });
        let rows = server_rows(&server);
        assert_eq!(
            rows,
            [
                ("server: requests completed", "40".to_string()),
                ("server: waiting (mean / most)", "1.5 / 3.0".to_string()),
                ("server: KV-cache use (mean / most, %)", "50.0 / 75.0".to_string()),
                ("server: TTFT p50 / p99 (ms)", "50.0 / 59.6".to_string()),
            ]
        );
        assert!(server_rows(&Value::Null).is_empty());
    }

    #[test]
    fn reads_percentiles_and_sections() {
        let s = serde_json::json!({
            "percentiles": [50.0, 99.9],
            "stages": [{"stage": 0, "label": "constant 5/s"}, {"stage": 1, "label": ""}],
            "total": {"stage": null, "label": "all stages"},
        });
        assert_eq!(percentile_keys(&s), ["p50", "p99.9"]);
        let names: Vec<String> = sections(&s).into_iter().map(section_name).collect();
        assert_eq!(names, ["stage 0: constant 5/s", "stage 1", "all stages"]);
        assert_eq!(fmt(Some(1.234), 1), "1.2");
        assert_eq!(fmt(None, 1), "-");
        assert!(check_schema(2).is_err());
    }

    #[test]
    fn a_saturated_client_is_named_with_its_reasons() {
        let calm = serde_json::json!({"client": {"saturated": false, "reasons": []}});
        assert_eq!(client_warning(&calm), None);
        assert_eq!(client_warning(&serde_json::json!({})), None);
        let busy = serde_json::json!({"client": {"saturated": true, "reasons": ["7 arrivals were missed", "lag"]}});
        let w = client_warning(&busy).unwrap();
        assert!(
            w.starts_with("Client saturated") && w.contains("7 arrivals were missed; lag"),
            "{w}"
        );
    }
}
