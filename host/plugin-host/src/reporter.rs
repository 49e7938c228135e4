//! A loaded reporter plugin: renders a run summary into files.
//!
//! Reporters run once per report, after the run, on the calling thread.
//! They get a longer deadline than codec calls (rendering a long run is real
//! work) and read per-request records through the `records` import, which
//! streams `records.jsonl` in batches so memory stays flat.

use std::io::{BufRead, BufReader};
use std::path::{Component as PathPart, Path};
use std::time::Duration;

use crate::bindings::{Pre, Reporter, ReporterPre};
use crate::component::{classify_error, new_store};
use crate::engine::PluginEngine;
use crate::registry::PluginSource;
use crate::state::{HostState, PluginContext};
use crate::{FailureKind, PluginError, PluginFailure, PluginInfo};

/// Longest a reporter's `render` may run.
pub const RENDER_DEADLINE: Duration = Duration::from_secs(120);

/// Records served to a reporter, read lazily from `records.jsonl`.
pub struct RecordFeed {
    reader: Option<BufReader<std::fs::File>>,
    count: u64,
}

impl RecordFeed {
    /// Serve the `count` records of `path`.
    pub fn open(path: &Path, count: u64) -> std::io::Result<RecordFeed> {
        Ok(RecordFeed {
            reader: Some(BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?)),
            count,
        })
    }
}

/// The host side of the `records` import.
impl HostState {
    pub(crate) fn record_count(&mut self) -> u64 {
        self.records.as_ref().map_or(0, |f| f.count)
    }

    pub(crate) fn record_batch(&mut self, max: u32) -> Vec<String> {
        let Some(feed) = self.records.as_mut() else {
            return Vec::new();
        };
        let Some(reader) = feed.reader.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut line = String::new();
        while out.len() < max.clamp(1, 4096) as usize {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    feed.reader = None;
                    break;
                }
                Ok(_) => {
                    let text = line.trim_end();
                    // A record cut short by a hard stop is not JSON: leave it out.
                    if !text.is_empty() && text.ends_with('}') {
                        out.push(text.to_string());
                    }
                }
            }
        }
        out
    }
}

/// A reporter ready to render.
pub struct ReporterPlugin {
    /// What the plugin says it is.
    pub info: PluginInfo,
    /// sha256 of the component.
    pub sha256: String,
    engine: PluginEngine,
    pre: ReporterPre,
    ctx: PluginContext,
    allowance: crate::component::Allowance,
}

/// A file a reporter made.
#[derive(Debug)]
pub struct ReportFile {
    /// Relative path, checked to stay inside the report directory.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
}

impl ReporterPlugin {
    /// Load a reporter: compile, check the contract, read its info and have it check its configuration.
    pub fn load(
        engine: &PluginEngine,
        source: &PluginSource,
        ctx: PluginContext,
    ) -> Result<ReporterPlugin, PluginError> {
        let loaded = crate::component::load::<ReporterPre>(engine, source, ctx)?;
        Ok(ReporterPlugin {
            info: loaded.info,
            sha256: loaded.sha256,
            engine: engine.clone(),
            pre: loaded.pre,
            ctx: loaded.ctx,
            allowance: loaded.allowance,
        })
    }

    /// Render `summary_json`. `records` serves the per-request records if the
    /// reporter asks for them. Files with unsafe paths are refused.
    pub fn render(
        &self,
        schema_version: u32,
        summary_json: String,
        records: impl FnOnce() -> std::io::Result<RecordFeed>,
    ) -> Result<Vec<ReportFile>, PluginFailure> {
        let fail = |kind: FailureKind, message: String| PluginFailure {
            plugin: self.ctx.name.to_string(),
            kind,
            message,
        };
        let mut store = new_store(&self.engine, self.ctx.clone(), &self.allowance);
        let reporter: Reporter = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail(FailureKind::Trap, format!("could not instantiate: {e:#}")))?;
        let wants = reporter
            .wants_records(&mut store)
            .map_err(|e| fail(FailureKind::Trap, format!("{e:#}")))?;
        if wants {
            let feed = records().map_err(|e| fail(FailureKind::Returned, format!("cannot read the records: {e}")))?;
            store.data_mut().records = Some(feed);
        }
        crate::component::arm(&mut store, RENDER_DEADLINE);
        let files = match reporter.render(&mut store, schema_version, summary_json) {
            Ok(Ok(files)) => files,
            Ok(Err(message)) => return Err(fail(FailureKind::Returned, message)),
            Err(e) => {
                let (kind, message) = classify_error(store.data_mut(), &e, RENDER_DEADLINE);
                return Err(fail(kind, message));
            }
        };
        files
            .into_iter()
            .map(|f| {
                let p = Path::new(&f.path);
                let safe = !f.path.is_empty() && p.components().all(|c| matches!(c, PathPart::Normal(_)));
                if safe {
                    Ok(f)
                } else {
                    Err(fail(
                        FailureKind::Returned,
                        format!("returned a file with an unsafe path `{}`: paths must be relative and stay inside the report directory", f.path),
                    ))
                }
            })
            .collect()
    }
}
