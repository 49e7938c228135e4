//! Barrage reporter `csv`: `stages.csv`, one row per stage (and one for the
//! whole run); with `per_request = true` in its configuration, also
//! `requests.csv`, one row per request.

use barrage_sdk::reporter::{ConfigError, OutputFile, PluginInfo, ReportInput, Reporter, config, records};
use report_common::{LATENCIES, client_reasons, num, percentile_keys, sections};
use serde_json::Value;

/// The `csv` reporter.
pub struct Csv;

fn per_request() -> bool {
    config::value()["per_request"].as_bool().unwrap_or(false)
}

/// One CSV field: quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => field(s),
        other => other.to_string(),
    }
}

const STAGE_COLUMNS: &[&str] = &[
    "stage",
    "label",
    "requested_rate",
    "requested_concurrency",
    "scheduled",
    "sent",
    "dropped",
    "missed",
    "not_sent",
    "succeeded",
    "failed",
    "cancelled",
    "achieved_rate",
    "requests_per_s",
    "input_tokens_per_s",
    "output_tokens_per_s",
    "total_tokens_per_s",
    "items_per_s",
    "window_s",
];

/// The server's figures over each section, where its metrics were read.
const SERVER_COLUMNS: &[(&str, &[&str])] = &[
    ("server_requests", &["requests"]),
    ("server_waiting_mean", &["waiting", "mean"]),
    ("server_waiting_max", &["waiting", "max"]),
    ("server_running_mean", &["running", "mean"]),
    ("server_running_max", &["running", "max"]),
    ("server_replicas_mean", &["replicas", "mean"]),
    ("server_replicas_max", &["replicas", "max"]),
    ("server_kv_cache_usage_mean", &["kv_cache_usage", "mean"]),
    ("server_prefix_cache_hit_rate", &["prefix_cache_hit_rate"]),
    ("server_ttft_p50_ms", &["ttft_ms", "p50"]),
    ("server_ttft_p99_ms", &["ttft_ms", "p99"]),
    ("server_itl_p50_ms", &["itl_ms", "p50"]),
    ("server_itl_p99_ms", &["itl_ms", "p99"]),
];

fn stages_csv(summary: &Value) -> String {
    let pkeys = percentile_keys(summary);
    let mut header: Vec<String> = STAGE_COLUMNS.iter().map(|c| c.to_string()).collect();
    header.extend(
        [
            "goodput_requests_per_s",
            "goodput_share",
            "client_saturated",
            "client_reasons",
        ]
        .map(String::from),
    );
    header.extend(SERVER_COLUMNS.iter().map(|(name, _)| name.to_string()));
    for (key, _) in LATENCIES {
        let base = key.trim_end_matches("_ms");
        for stat in ["count", "mean"]
            .iter()
            .map(|s| s.to_string())
            .chain(pkeys.iter().cloned())
            .chain(["max".into()])
        {
            header.push(format!(
                "{base}_{stat}{}",
                if key.ends_with("_ms") { "_ms" } else { "" }
            ));
        }
    }
    let mut out = header.join(",") + "\n";
    for stage in sections(summary) {
        let mut row: Vec<String> = STAGE_COLUMNS
            .iter()
            .map(|c| match (*c, &stage[*c]) {
                ("stage", Value::Null) => "total".to_string(),
                (_, v) => value(v),
            })
            .collect();
        row.push(value(&stage["goodput"]["requests_per_s"]));
        row.push(value(&stage["goodput"]["share"]));
        row.push(value(&stage["client"]["saturated"]));
        row.push(field(&client_reasons(stage)));
        for (_, path) in SERVER_COLUMNS {
            let v = path.iter().fold(&stage["server"], |v, k| &v[*k]);
            row.push(num(v).map(|x| x.to_string()).unwrap_or_default());
        }
        for (key, _) in LATENCIES {
            let d = &stage[*key];
            for stat in ["count", "mean"]
                .iter()
                .map(|s| s.to_string())
                .chain(pkeys.iter().cloned())
                .chain(["max".into()])
            {
                row.push(num(&d[stat.as_str()]).map(|x| x.to_string()).unwrap_or_default());
            }
        }
        out += &(row.join(",") + "\n");
    }
    out
}

fn opt_sub(a: &Value, b: &Value) -> String {
    match (num(a), num(b)) {
        (Some(a), Some(b)) => format!("{:.3}", a - b),
        _ => String::new(),
    }
}

fn requests_csv() -> Result<String, String> {
    let mut out = String::from(
        "id,stage,status,scheduled_ms,sent_ms,ttft_ms,e2e_ms,e2e_stream_ms,tpot_ms,prompt_tokens,output_tokens,\
         output_tokens_source,http_status,bytes_received,error\n",
    );
    records::for_each(|r| {
        let tpot = match (
            num(&r["first_token_ms"]),
            num(&r["last_token_ms"]),
            r["output_tokens"].as_u64(),
        ) {
            (Some(f), Some(l), Some(n)) if n > 1 => format!("{:.3}", (l - f) / (n - 1) as f64),
            _ => String::new(),
        };
        let row = [
            value(&r["id"]),
            value(&r["stage"]),
            value(&r["status"]),
            value(&r["scheduled_ms"]),
            value(&r["sent_ms"]),
            opt_sub(&r["first_token_ms"], &r["sent_ms"]),
            opt_sub(&r["last_token_ms"], &r["sent_ms"]),
            opt_sub(&r["end_ms"], &r["sent_ms"]),
            tpot,
            value(&r["prompt_tokens"]),
            value(&r["output_tokens"]),
            value(&r["output_tokens_source"]),
            value(&r["http_status"]),
            value(&r["bytes_received"]),
            value(&r["error"]),
        ];
        out += &(row.join(",") + "\n");
    })?;
    Ok(out)
}

impl Reporter for Csv {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "csv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "stages.csv (one row per stage); requests.csv with per_request = true".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        for (k, v) in config.as_object().into_iter().flatten() {
            match (k.as_str(), v) {
                ("per_request", Value::Bool(_)) => {}
                ("per_request", _) => {
                    return Err(ConfigError {
                        field: Some("per_request".into()),
                        message: "must be true or false".into(),
                    });
                }
                _ => {
                    return Err(ConfigError {
                        field: Some(k.clone()),
                        message: "unknown key; the csv reporter takes `per_request` (true or false)".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn wants_records() -> bool {
        per_request()
    }

    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
        report_common::check_schema(input.schema_version)?;
        let mut files = vec![OutputFile::text("stages.csv", stages_csv(&input.summary))];
        if per_request() {
            files.push(OutputFile::text("requests.csv", requests_csv()?));
        }
        Ok(files)
    }
}

barrage_sdk::export_reporter!(Csv);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing;

    fn summary() -> Value {
        serde_json::json!({
            "schema_version": 1,
            "percentiles": [50.0, 99.0],
            "stages": [{"stage": 0, "label": "poisson 5/s, then more", "sent": 3,
                        "ttft_ms": {"count": 3, "mean": 10.5, "p50": 10.0, "p99": 12.0, "max": 12.0}}],
            "total": {"stage": null, "sent": 3},
        })
    }

    #[test]
    fn one_row_per_stage_with_quoted_labels() {
        let files = testing::render::<Csv>(summary(), vec![]).unwrap();
        assert_eq!(files.len(), 1);
        let text = String::from_utf8(files[0].contents.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "header and the one stage: {text}");
        let header: Vec<&str> = lines[0].split(',').collect();
        let at = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert!(lines[1].contains("\"poisson 5/s, then more\""));
        // The label holds a comma inside quotes: split after it.
        let after_label: Vec<&str> = lines[1].split("\",").nth(1).unwrap().split(',').collect();
        let col = |name: &str| after_label[at(name) - 2];
        assert_eq!(col("sent"), "3");
        assert_eq!(col("ttft_p99_ms"), "12");
    }

    #[test]
    fn per_request_rows_come_from_the_records() {
        testing::set_config(serde_json::json!({"per_request": true}));
        let records = vec![
            serde_json::json!({"id": 1, "stage": 0, "status": "ok", "sent_ms": 1.0, "first_token_ms": 11.0,
                               "last_token_ms": 31.0, "end_ms": 32.0, "output_tokens": 3}),
            serde_json::json!({"id": 2, "stage": 0, "status": "http_error", "sent_ms": 2.0, "end_ms": 3.0,
                               "output_tokens": 0, "error": "HTTP 500"}),
        ];
        let files = testing::render::<Csv>(summary(), records).unwrap();
        let text = String::from_utf8(files[1].contents.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("1,0,ok,,1.0,10.000,30.000,31.000,10.000,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with("HTTP 500"));
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn configuration_is_checked() {
        assert!(Csv::check_config(&serde_json::json!({"per_request": "yes"})).is_err());
        assert!(Csv::check_config(&serde_json::json!({"rows": 1})).is_err());
        assert!(Csv::check_config(&serde_json::json!({"per_request": true})).is_ok());
    }
}
