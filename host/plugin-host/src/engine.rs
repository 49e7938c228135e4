//! The process's one wasmtime engine: pooling allocator, epoch interruption,
//! and a disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;

/// How often the epoch advances. A call's deadline is rounded up to whole
/// ticks, so a runaway call stops within its deadline plus one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits and locations for plugins.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most linear memory one plugin instance may have.
    pub memory_limit: usize,
    /// Longest one call into a codec may run before it traps.
    pub call_deadline: Duration,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Most plugin instances alive at once (the pooling allocator's size).
    pub max_instances: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memory_limit: 256 << 20,
            call_deadline: Duration::from_millis(50),
            cache_dir: default_cache_dir(),
            max_instances: 1000,
        }
    }
}

/// `$BARRAGE_CACHE_DIR`, else `$XDG_CACHE_HOME/barrage/compiled`, else
/// `~/.cache/barrage/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BARRAGE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("barrage").join("compiled"))
}

/// The engine and its options. Cheap to clone; clones share one engine.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    options: Arc<EngineOptions>,
    compat: Arc<str>,
}

impl PluginEngine {
    /// Build the engine and start its epoch ticker thread (which ends when
    /// the last clone of the engine is dropped).
    pub fn new(options: EngineOptions) -> Result<PluginEngine, PluginError> {
        let engine = build_engine(&options, true).or_else(|pooled| {
            // Pooling reserves address space up front; where the OS refuses
            // (small virtual address spaces), instantiate on demand instead.
            build_engine(&options, false).map_err(|_| pooled)
        })?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("barrage-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| PluginError::Engine(format!("could not start the epoch thread: {e}")))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish()).into();
        Ok(PluginEngine {
            engine,
            options: Arc::new(options),
            compat,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Epoch ticks a call may run for.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        // Round up, and add one: the first tick may come at once.
        (self.options.call_deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }

    /// Compile `bytes` (named `name` in errors), from the disk cache when
    /// this engine compiled the same bytes before.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        check_is_component(name, bytes)?;
        let cache_file = self
            .options
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}-{}.cwasm", sha256_hex(bytes), self.compat)));
        if let Some(path) = &cache_file
            && path.exists()
        {
            // SAFETY: the file is one this host wrote (below), named by the
            // sha256 of the source bytes and the engine's compatibility hash,
            // in the user's own cache directory; wasmtime also rejects blobs
            // from other engine versions or settings.
            if let Ok(component) = unsafe { Component::deserialize_file(&self.engine, path) } {
                return Ok(component);
            }
        }
        let component = Component::from_binary(&self.engine, bytes).map_err(|e| PluginError::Compile {
            name: name.to_string(),
            message: format!("{e:#}"),
        })?;
        if let Some(path) = &cache_file {
            // The cache is an optimisation: failing to write it is not an error.
            let _ = write_atomically(path, &component);
        }
        Ok(component)
    }
}

fn build_engine(options: &EngineOptions, pooling: bool) -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    // Without a map, `perf` shows a plugin's time as unnamed addresses.
    if std::env::var_os("BARRAGE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        let n = options.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
            .max_memory_size(options.memory_limit.next_multiple_of(64 << 10));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

fn write_atomically(path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tell a component from a core module or something that is not wasm at all,
/// with a message that says what to do.
fn check_is_component(name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    let not = |reason: &str| PluginError::NotAComponent {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(not("it is not a WebAssembly binary (no `\\0asm` header)"));
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(not(
            "it is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target \
             (or wrap it with `wasm-tools component new`)",
        )),
        _ => Err(not("it is a WebAssembly binary of an unknown version or layer")),
    }
}
