//! A loaded dataset plugin: runs a generation to its end before the run,
//! reading only the input files the configuration names.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bindings::{Dataset, DatasetPre, Pre};
use crate::component::{classify_error, new_store};
use crate::engine::PluginEngine;
use crate::prepare::Sample;
use crate::registry::PluginSource;
use crate::state::{HostState, PluginContext};
use crate::{FailureKind, PluginError, PluginFailure, PluginInfo};

/// A problem with the input, located as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Input file name as written in the configuration.
    pub file: Option<String>,
    /// 1-based line number, when the format has lines.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// One `next-batch` answer.
pub(crate) struct DatasetBatch {
    pub samples: Vec<Sample>,
    pub skipped: Vec<InputError>,
    pub done: bool,
}

/// Longest one `open` or `next-batch` call may run. Generous: preparing a
/// batch may mean reading and tokenizing megabytes, and nothing is timed.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(120);

/// Samples asked for per `next-batch` call.
const BATCH: u32 = 1024;

/// Largest read a plugin may ask for in one call.
const MAX_READ: u32 = 16 << 20;

/// The input files a dataset plugin may read: names as configured, paths
/// resolved; and the files under its media directory, named by their path
/// in it.
#[derive(Default)]
pub struct FileAccess {
    files: Vec<(String, PathBuf)>,
    /// Canonical.
    media_dir: Option<PathBuf>,
    open: BTreeMap<String, std::fs::File>,
}

/// Files a plugin holds open at once; past it the oldest are closed (a
/// dataset of images names thousands of files, each read once).
const MAX_OPEN: usize = 64;

impl FileAccess {
    /// Give access to `files` (name as configured, resolved path).
    pub fn new(files: Vec<(String, PathBuf)>) -> FileAccess {
        FileAccess {
            files,
            media_dir: None,
            open: BTreeMap::new(),
        }
    }

    /// Give access to the files under `dir` (canonical) as well.
    pub fn with_media(mut self, dir: Option<PathBuf>) -> FileAccess {
        self.media_dir = dir;
        self
    }

    /// Where `name` is, if the plugin may read it: an input file, or a file
    /// under the media directory that stays under it (no absolute path, no
    /// `..`, no link out of it).
    fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        if let Some((_, p)) = self.files.iter().find(|(n, _)| n == name) {
            return Ok(p.clone());
        }
        let Some(dir) = &self.media_dir else {
            return Err(format!(
                "`{name}` is not one of the dataset's files (media files need `media_dir:`)"
            ));
        };
        let relative = Path::new(name);
        if !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!("`{name}` must be a path inside media_dir, without `..`"));
        }
        let path = dir.join(relative);
        let canonical = std::fs::canonicalize(&path).map_err(|_| format!("`{name}`: no such file in media_dir"))?;
        if !canonical.starts_with(dir) {
            return Err(format!("`{name}` leads out of media_dir"));
        }
        if !canonical.is_file() {
            return Err(format!("`{name}` is not a file"));
        }
        Ok(canonical)
    }

    fn file(&mut self, name: &str) -> Result<&std::fs::File, String> {
        if !self.open.contains_key(name) {
            let path = self.resolve(name)?;
            let f = std::fs::File::open(&path).map_err(|e| format!("cannot open `{name}`: {e}"))?;
            if self.open.len() >= MAX_OPEN {
                let input = |n: &String| self.files.iter().any(|(f, _)| f == n);
                if let Some(media) = self.open.keys().find(|n| !input(n)).cloned() {
                    self.open.remove(&media);
                }
            }
            self.open.insert(name.to_string(), f);
        }
        Ok(&self.open[name])
    }
}

/// Every file under `dir` (recursively, by its path in it) with its length
/// and modification time in nanoseconds, sorted.
pub(crate) fn listing(dir: &Path) -> Vec<(String, u64, u128)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                out.push((name, meta.len(), mtime));
            }
        }
    }
    out.sort();
    out
}

/// The host side of the `files` import.
impl HostState {
    pub(crate) fn file_names(&mut self) -> Vec<String> {
        self.files
            .as_ref()
            .map_or_else(Vec::new, |f| f.files.iter().map(|(n, _)| n.clone()).collect())
    }

    pub(crate) fn file_size(&mut self, name: &str) -> Result<u64, String> {
        let access = self.files.as_mut().ok_or("this plugin has no input files")?;
        access
            .file(name)?
            .metadata()
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    }

    pub(crate) fn file_read(&mut self, name: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let access = self.files.as_mut().ok_or("this plugin has no input files")?;
        let file = access.file(name)?;
        let mut buf = vec![0u8; len.min(MAX_READ) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading {name}: {e}")),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

/// Why a generation stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The plugin reported a problem with its input or configuration.
    #[error("{}", describe(.0))]
    Input(InputError),
    /// The plugin trapped, ran out of time or memory.
    #[error(transparent)]
    Failed(#[from] PluginFailure),
}

/// `file:line: message`, as precisely as the plugin located it.
pub fn describe(e: &InputError) -> String {
    match (&e.file, e.line) {
        (Some(f), Some(l)) => format!("{f}:{l}: {}", e.message),
        (Some(f), None) => format!("{f}: {}", e.message),
        _ => e.message.clone(),
    }
}

/// A dataset plugin ready to generate.
pub struct DatasetPlugin {
    /// What the plugin says it is.
    pub info: PluginInfo,
    /// sha256 of the component.
    pub sha256: String,
    engine: PluginEngine,
    pre: DatasetPre,
    ctx: PluginContext,
    allowance: crate::component::Allowance,
}

impl DatasetPlugin {
    /// Load a dataset plugin: compile, check the contract, read its info and have it check its configuration.
    pub fn load(
        engine: &PluginEngine,
        source: &PluginSource,
        ctx: PluginContext,
    ) -> Result<DatasetPlugin, PluginError> {
        let loaded = crate::component::load::<DatasetPre>(engine, source, ctx)?;
        Ok(DatasetPlugin {
            info: loaded.info,
            sha256: loaded.sha256,
            engine: engine.clone(),
            pre: loaded.pre,
            ctx: loaded.ctx,
            allowance: loaded.allowance,
        })
    }

    /// The name it was picked by (its file's, or the built-in's).
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// Run a whole generation over `files`: every sample, in order, and the
    /// input the plugin skipped.
    pub fn generate(&self, files: FileAccess) -> Result<(Vec<Sample>, Vec<InputError>), GenerateError> {
        let fail = |kind: FailureKind, message: String| PluginFailure {
            plugin: self.ctx.name.to_string(),
            kind,
            message,
        };
        let mut store = new_store(&self.engine, self.ctx.clone(), &self.allowance);
        store.data_mut().files = Some(files);
        crate::component::arm(&mut store, BATCH_DEADLINE);
        let dataset: Dataset = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail(FailureKind::Trap, format!("could not instantiate: {e:#}")))?;
        let trapped = |store: &mut wasmtime::Store<HostState>, e: wasmtime::Error| {
            let (kind, message) = classify_error(store.data_mut(), &e, BATCH_DEADLINE);
            GenerateError::Failed(fail(kind, message))
        };
        crate::component::arm(&mut store, BATCH_DEADLINE);
        let generator = match dataset.open(&mut store) {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(GenerateError::Input(e)),
            Err(e) => return Err(trapped(&mut store, e)),
        };
        let (mut samples, mut skipped) = (Vec::new(), Vec::new());
        loop {
            crate::component::arm(&mut store, BATCH_DEADLINE);
            let batch = match dataset.next_batch(&mut store, generator, BATCH) {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(GenerateError::Input(e)),
                Err(e) => return Err(trapped(&mut store, e)),
            };
            let empty = batch.samples.is_empty() && batch.skipped.is_empty();
            samples.extend(batch.samples);
            skipped.extend(batch.skipped);
            if batch.done {
                break;
            }
            if empty {
                return Err(GenerateError::Failed(fail(
                    FailureKind::Returned,
                    "returned an empty batch without saying it was done".into(),
                )));
            }
        }
        let _ = generator.resource_drop(&mut store);
        Ok((samples, skipped))
    }
}
