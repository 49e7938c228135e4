//! {{name}}: a Barrage reporter: `{{name}}.txt`, a line per stage (requests
//! sent, succeeded and failed, TTFT p50) and the requests by status, counted
//! from the per-request records.

use std::collections::BTreeMap;

use barrage_sdk::reporter::{OutputFile, PluginInfo, ReportInput, Reporter, records};

pub struct Plugin;

impl Reporter for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "stages and statuses as text".into(),
            secrets: Vec::new(),
        }
    }

    fn wants_records() -> bool {
        true
    }

    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
        let mut out = String::new();
        for stage in input.summary["stages"].as_array().into_iter().flatten() {
            let ttft = match stage["ttft_ms"]["p50"].as_f64() {
                Some(ms) => format!("{ms:.3} ms"),
                None => "-".into(),
            };
            out += &format!(
                "stage {}: {} sent, {} succeeded, {} failed, TTFT p50 {ttft}\n",
                stage["label"].as_str().unwrap_or("?"),
                stage["sent"].as_u64().unwrap_or(0),
                stage["succeeded"].as_u64().unwrap_or(0),
                stage["failed"].as_u64().unwrap_or(0),
            );
        }
        let mut by_status = BTreeMap::new();
        records::for_each(|record| {
            let status = record["status"].as_str().unwrap_or("?").to_string();
            *by_status.entry(status).or_insert(0u64) += 1;
        })?;
        for (status, n) in by_status {
            out += &format!("{status}: {n}\n");
        }
        Ok(vec![OutputFile::text("{{name}}.txt", out)])
    }
}

barrage_sdk::export_reporter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_per_stage_and_the_statuses() {
        let summary = json!({"schema_version": 1, "stages": [
            {"label": "constant 5/s", "sent": 3, "succeeded": 2, "failed": 1, "ttft_ms": {"p50": 12.34}}
        ]});
        let records = vec![json!({"status": "ok"}), json!({"status": "ok"}), json!({"status": "http_error"})];
        let files = barrage_sdk::testing::render::<Plugin>(summary, records).unwrap();
        assert_eq!(files[0].path, "{{name}}.txt");
        assert_eq!(
            String::from_utf8(files[0].contents.clone()).unwrap(),
            "stage constant 5/s: 3 sent, 2 succeeded, 1 failed, TTFT p50 12.340 ms\nhttp_error: 1\nok: 2\n"
        );
    }
}
