//! A loaded dataset plugin: runs a generation to its end before the run,
//! reading only the input files the configuration names.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::PluginInfo;
use super::bindings::dataset::barrage::plugin::files;
use super::bindings::dataset::exports::barrage::plugin::dataset_source;
use super::bindings::dataset::{Dataset, DatasetPre};
use super::codec::{LoadedComponent, base_linker, classify_error, new_store};
use super::contract::World;
use super::engine::{EPOCH_TICK, PluginEngine};
use super::registry::PluginSource;
use super::state::{HostState, PluginContext};
use super::{FailureKind, PluginError, PluginFailure};

pub use dataset_source::{Batch, DatasetError as InputError, Sample, SessionTurn};

/// Longest one `open` or `next-batch` call may run. Generous: preparing a
/// batch may mean reading and tokenizing megabytes, and nothing is timed.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(120);

/// Samples asked for per `next-batch` call.
const BATCH: u32 = 1024;

/// Largest read a plugin may ask for in one call.
const MAX_READ: u32 = 16 << 20;

/// The input files a dataset plugin may read: names as configured, paths resolved.
#[derive(Default)]
pub struct FileAccess {
    files: Vec<(String, PathBuf)>,
    open: BTreeMap<String, std::fs::File>,
}

impl FileAccess {
    /// Give access to `files` (name as configured, resolved path).
    pub fn new(files: Vec<(String, PathBuf)>) -> FileAccess {
        FileAccess {
            files,
            open: BTreeMap::new(),
        }
    }

    fn file(&mut self, name: &str) -> Result<&std::fs::File, String> {
        if !self.open.contains_key(name) {
            let path = self
                .files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| format!("`{name}` is not one of the dataset's files"))?;
            let f = std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            self.open.insert(name.to_string(), f);
        }
        Ok(&self.open[name])
    }
}

impl files::Host for HostState {
    fn names(&mut self) -> Vec<String> {
        self.files
            .as_ref()
            .map_or_else(Vec::new, |f| f.files.iter().map(|(n, _)| n.clone()).collect())
    }

    fn size(&mut self, name: String) -> Result<u64, String> {
        let access = self.files.as_mut().ok_or("this plugin has no input files")?;
        access
            .file(&name)?
            .metadata()
            .map(|m| m.len())
            .map_err(|e| e.to_string())
    }

    fn read(&mut self, name: String, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let access = self.files.as_mut().ok_or("this plugin has no input files")?;
        let file = access.file(&name)?;
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
    pre: DatasetPre<HostState>,
    ctx: PluginContext,
}

impl DatasetPlugin {
    /// Load a dataset plugin: compile, check the contract, read its info and have it check its configuration.
    pub fn load(
        engine: &PluginEngine,
        source: &PluginSource,
        mut ctx: PluginContext,
    ) -> Result<DatasetPlugin, PluginError> {
        let label = source.label();
        let loaded = LoadedComponent::load(engine, source)?;
        loaded.expect_world(&label, World::Dataset)?;
        let start = |e: wasmtime::Error| PluginError::Start {
            name: label.clone(),
            message: format!("{e:#}"),
        };
        let mut linker: Linker<HostState> = base_linker(engine, &loaded.component).map_err(start)?;
        linker.allow_shadowing(true);
        files::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(start)?;
        let pre = DatasetPre::new(linker.instantiate_pre(&loaded.component).map_err(start)?).map_err(start)?;
        ctx.name = label.clone().into();
        let mut store = new_store(engine, ctx.clone());
        let dataset = pre.instantiate(&mut store).map_err(start)?;
        let info = dataset.barrage_plugin_meta().call_info(&mut store).map_err(start)?;
        ctx.name = info.name.clone().into();
        store.data_mut().ctx.name = ctx.name.clone();
        store.set_epoch_deadline(engine.deadline_ticks());
        if let Err(e) = dataset
            .barrage_plugin_meta()
            .call_check_config(&mut store)
            .map_err(start)?
        {
            return Err(PluginError::Config {
                name: info.name.clone(),
                field: e.field,
                message: e.message,
            });
        }
        Ok(DatasetPlugin {
            info,
            sha256: loaded.sha256,
            engine: engine.clone(),
            pre,
            ctx,
        })
    }

    /// Run a whole generation over `files`: every sample, in order, and the
    /// input the plugin skipped.
    pub fn generate(&self, files: FileAccess) -> Result<(Vec<Sample>, Vec<InputError>), GenerateError> {
        let fail = |kind: FailureKind, message: String| PluginFailure {
            plugin: self.info.name.clone(),
            kind,
            message,
        };
        let mut store = new_store(&self.engine, self.ctx.clone());
        store.data_mut().files = Some(files);
        let ticks = (BATCH_DEADLINE.as_nanos() / EPOCH_TICK.as_nanos()) as u64;
        store.set_epoch_deadline(ticks);
        let dataset: Dataset = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail(FailureKind::Trap, format!("could not instantiate: {e:#}")))?;
        let api = dataset.barrage_plugin_dataset_source();
        let trapped = |store: &mut wasmtime::Store<HostState>, e: wasmtime::Error| {
            let (kind, message) = classify_error(store.data_mut(), &e, BATCH_DEADLINE);
            GenerateError::Failed(fail(kind, message))
        };
        store.set_epoch_deadline(ticks);
        let generator = match api.call_open(&mut store) {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(GenerateError::Input(e)),
            Err(e) => return Err(trapped(&mut store, e)),
        };
        let (mut samples, mut skipped) = (Vec::new(), Vec::new());
        loop {
            store.set_epoch_deadline(ticks);
            let batch = match api.generator().call_next_batch(&mut store, generator, BATCH) {
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
