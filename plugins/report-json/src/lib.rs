//! Barrage reporter `json`: `report.json`, the run summary in its
//! versioned schema (`docs/metrics.md`), for dashboards and scripts.

use barrage_sdk::reporter::{OutputFile, PluginInfo, ReportInput, Reporter};

/// The `json` reporter.
pub struct Json;

impl Reporter for Json {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "the run summary as report.json (versioned schema)".into(),
            secrets: Vec::new(),
        }
    }

    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
        report_common::check_schema(input.schema_version)?;
        let text = serde_json::to_string_pretty(&input.summary).map_err(|e| e.to_string())?;
        Ok(vec![OutputFile::text("report.json", text + "\n")])
    }
}

barrage_sdk::export_reporter!(Json);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_summary() {
        let summary = serde_json::json!({"schema_version": 1, "total": {"sent": 2}});
        let files = barrage_sdk::testing::render::<Json>(summary.clone(), vec![]).unwrap();
        assert_eq!(files[0].path, "report.json");
        let back: serde_json::Value = serde_json::from_slice(&files[0].contents).unwrap();
        assert_eq!(back, summary);
        let old = serde_json::json!({"schema_version": 7});
        assert!(barrage_sdk::testing::render::<Json>(old, vec![]).is_err());
    }
}
