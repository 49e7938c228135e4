//! Reporter plugins (feature `reporter`).
//!
//! A reporter turns a run's summary (and, if it asks, every per-request
//! record) into files: HTML, CSV, a dashboard's JSON. It is a WebAssembly
//! component implementing the `reporter` world of `barrage:plugin@0.1.0`.
//! Implement [`Reporter`], call [`export_reporter!`](crate::export_reporter)
//! once, and build the crate as a `cdylib` for `wasm32-wasip2`.
//!
//! ```
//! use barrage_sdk::reporter::{OutputFile, PluginInfo, ReportInput, Reporter};
//!
//! pub struct Count;
//!
//! impl Reporter for Count {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("count", "0.1.0", "requests sent")
//!     }
//!
//!     fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
//!         let sent = input.summary["total"]["sent"].as_u64().unwrap_or(0);
//!         Ok(vec![OutputFile::text("count.txt", format!("{sent}\n"))])
//!     }
//! }
//!
//! barrage_sdk::export_reporter!(Count);
//!
//! // Natively, the same code runs under the test harness:
//! let files = barrage_sdk::testing::render::<Count>(
//!     serde_json::json!({"schema_version": 1, "total": {"sent": 3}}),
//!     vec![],
//! )
//! .unwrap();
//! assert_eq!(files[0].contents, b"3\n");
//! ```
//!
//! The summary's schema is documented in `docs/metrics.md` (its version is
//! [`ReportInput::schema_version`]); records follow the same document.

use std::marker::PhantomData;

use crate::wit::reporter::exports::barrage::plugin::{meta, report_renderer};

// What a reporter author needs, in one module.
pub use crate::{ConfigError, PluginInfo, config, log, random, tokenizer};

/// What a reporter renders.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// Version of the summary schema.
    pub schema_version: u32,
    /// The run summary (`summary.json`).
    pub summary: serde_json::Value,
}

/// A file for the host to write into the report directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative path, e.g. `report.html`; no `..`, not absolute.
    pub path: String,
    /// The bytes.
    pub contents: Vec<u8>,
}

impl OutputFile {
    /// A text file.
    pub fn text(path: &str, contents: String) -> OutputFile {
        OutputFile {
            path: path.to_string(),
            contents: contents.into_bytes(),
        }
    }
}

/// A report format.
pub trait Reporter: 'static {
    /// The plugin's name, version and description.
    fn info() -> PluginInfo;

    /// Check the configuration (`{}` when none was given). The default accepts anything.
    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Whether [`render`](Reporter::render) reads the per-request records
    /// through [`records`]. The default reads the summary only.
    fn wants_records() -> bool {
        false
    }

    /// Render the report.
    fn render(input: ReportInput) -> Result<Vec<OutputFile>, String>;
}

/// The run's per-request records, for reporters whose
/// [`wants_records`](Reporter::wants_records) is true.
pub mod records {
    /// How many records the run has.
    pub fn count() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::reporter::barrage::plugin::records::count();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.records.len() as u64);
    }

    /// Visit every record (one JSON object each) in order, in batches so
    /// that memory stays small whatever the run's length.
    pub fn for_each(mut f: impl FnMut(serde_json::Value)) -> Result<(), String> {
        loop {
            #[cfg(target_arch = "wasm32")]
            let batch = crate::wit::reporter::barrage::plugin::records::next_batch(512);
            #[cfg(not(target_arch = "wasm32"))]
            let batch: Vec<String> = crate::testing::with_host(|h| {
                let n = h.records.len().min(512);
                h.records.drain(..n).collect()
            });
            if batch.is_empty() {
                return Ok(());
            }
            for line in batch {
                f(serde_json::from_str(&line).map_err(|e| format!("a record is not JSON: {e}"))?);
            }
        }
    }
}

/// Adapts a [`Reporter`] to the generated export traits; used by [`export_reporter!`].
#[doc(hidden)]
pub struct ReporterExports<R>(PhantomData<R>);

impl<R: Reporter> meta::Guest for ReporterExports<R> {
    fn info() -> PluginInfo {
        crate::__init();
        R::info()
    }

    fn check_config() -> Result<(), ConfigError> {
        crate::__init();
        R::check_config(&crate::__config_for_check()?)
    }
}

impl<R: Reporter> report_renderer::Guest for ReporterExports<R> {
    fn wants_records() -> bool {
        crate::__init();
        R::wants_records()
    }

    fn render(input: report_renderer::ReportInput) -> Result<Vec<report_renderer::OutputFile>, String> {
        let summary = serde_json::from_str(&input.summary).map_err(|e| format!("the summary is not JSON: {e}"))?;
        let files = R::render(ReportInput {
            schema_version: input.schema_version,
            summary,
        })?;
        Ok(files
            .into_iter()
            .map(|f| report_renderer::OutputFile {
                path: f.path,
                contents: f.contents,
            })
            .collect())
    }
}

/// Export a [`Reporter`] as this component's `reporter` world. Call it once,
/// at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_reporter {
    ($reporter:ty) => {
        // Exports only exist in the wasm build; native builds are for tests.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __barrage_reporter_export {
            use super::*;
            type __BarrageReporterExports = $crate::reporter::ReporterExports<$reporter>;
            $crate::wit::reporter::__export_reporter_world!(__BarrageReporterExports with_types_in $crate::wit::reporter);
        }
    };
}
