//! Write Barrage reporter plugins in plain Rust.
//!
//! A reporter turns a run's summary (and, if it asks, every per-request
//! record) into files: HTML, CSV, a dashboard's JSON. It is a WebAssembly
//! component implementing the `reporter` world of `barrage:plugin@0.1.0`.
//! Implement [`Reporter`], call [`export_reporter!`] once, and build the
//! crate as a `cdylib` for `wasm32-wasip2`.
//!
//! This crate is separate from `barrage-sdk` (codecs) because a component
//! implements exactly one world, and the bindings of each world are carried
//! by the crate that generates them.
//!
//! ```
//! use barrage_reporter_sdk::{OutputFile, PluginInfo, ReportInput, Reporter};
//!
//! pub struct Count;
//!
//! impl Reporter for Count {
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "count".into(), version: "0.1.0".into(), description: "requests sent".into() }
//!     }
//!
//!     fn render(input: ReportInput) -> Result<Vec<OutputFile>, String> {
//!         let sent = input.summary["total"]["sent"].as_u64().unwrap_or(0);
//!         Ok(vec![OutputFile::text("count.txt", format!("{sent}\n"))])
//!     }
//! }
//!
//! barrage_reporter_sdk::export_reporter!(Count);
//!
//! // Natively, the same code runs under the test harness:
//! let files = barrage_reporter_sdk::testing::render::<Count>(
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

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Generated bindings. Not part of the stable surface.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        world: "reporter",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_reporter_world",
        default_bindings_module: "barrage_reporter_sdk::wit",
    });
}

pub use wit::barrage::plugin::types::{ConfigError, PluginInfo};
use wit::exports::barrage::plugin::{meta, report_renderer};

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

/// The configuration table the user gave this reporter.
pub mod config {
    /// The configuration as a JSON value (`{}` when none was given).
    pub fn value() -> serde_json::Value {
        #[cfg(target_arch = "wasm32")]
        let raw = crate::wit::barrage::plugin::config::get();
        #[cfg(not(target_arch = "wasm32"))]
        let raw = crate::testing::STATE.with(|s| s.borrow().config.to_string());
        serde_json::from_str(&raw).unwrap_or(serde_json::Value::Object(Default::default()))
    }
}

/// Log a line to the run's log, tagged with the plugin's name.
pub fn log_info(message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit::barrage::plugin::log::log(wit::barrage::plugin::log::Level::Info, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
}

/// The run's per-request records, for reporters whose
/// [`wants_records`](Reporter::wants_records) is true.
pub mod records {
    /// How many records the run has.
    pub fn count() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::records::count();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::STATE.with(|s| s.borrow().records.len() as u64);
    }

    /// Visit every record (one JSON object each) in order, in batches so
    /// that memory stays small whatever the run's length.
    pub fn for_each(mut f: impl FnMut(serde_json::Value)) -> Result<(), String> {
        loop {
            #[cfg(target_arch = "wasm32")]
            let batch = crate::wit::barrage::plugin::records::next_batch(512);
            #[cfg(not(target_arch = "wasm32"))]
            let batch: Vec<String> = crate::testing::STATE.with(|s| {
                let mut s = s.borrow_mut();
                let n = s.records.len().min(512);
                s.records.drain(..n).collect()
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
        R::info()
    }

    fn check_config() -> Result<(), ConfigError> {
        R::check_config(&config::value())
    }
}

impl<R: Reporter> report_renderer::Guest for ReporterExports<R> {
    fn wants_records() -> bool {
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
            type __BarrageReporterExports = $crate::ReporterExports<$reporter>;
            $crate::wit::__export_reporter_world!(__BarrageReporterExports with_types_in $crate::wit);
        }
    };
}

/// A native stand-in for the host, so reporters run under `cargo test`.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;

    use super::{OutputFile, ReportInput, Reporter};

    #[derive(Default)]
    pub(crate) struct State {
        pub(crate) config: serde_json::Value,
        pub(crate) records: Vec<String>,
    }

    thread_local! {
        pub(crate) static STATE: RefCell<State> = RefCell::new(State::default());
    }

    /// Set the configuration the reporter sees.
    pub fn set_config(config: serde_json::Value) {
        STATE.with(|s| s.borrow_mut().config = config);
    }

    /// Render `summary` (with these records) as the host would.
    pub fn render<R: Reporter>(
        summary: serde_json::Value,
        records: Vec<serde_json::Value>,
    ) -> Result<Vec<OutputFile>, String> {
        STATE.with(|s| s.borrow_mut().records = records.iter().map(ToString::to_string).collect());
        let schema_version = summary["schema_version"].as_u64().unwrap_or(0) as u32;
        R::render(ReportInput {
            schema_version,
            summary,
        })
    }
}
