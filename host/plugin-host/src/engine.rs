//! The process's one wasmtime engine: pooling allocator, epoch interruption,
//! and a disk cache of compiled components and of compiled functions.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;
use crate::state::MemoryBudget;

/// How often the epoch advances: a running call checks its deadline at each
/// tick, so a runaway call stops within its deadline plus one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits and locations for plugins.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most linear memory one plugin instance may have.
    pub memory_limit: usize,
    /// Longest one call into a plugin may run before it traps.
    pub call_deadline: Duration,
    /// Longest one `encode` may run: encodes run ahead of the schedule on
    /// one thread, so a slow one delays every request after it.
    pub encode_deadline: Duration,
    /// Most linear memory all live instances of one plugin may hold
    /// together (`usize::MAX`: no budget of its own).
    pub plugin_budget: usize,
    /// Most linear memory all plugins' instances may hold together.
    pub total_budget: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The secret that authenticates cache entries (created on first use);
    /// kept outside the cache, so a cache copied in from elsewhere or
    /// written by someone else is recompiled, never run.
    pub cache_key: Option<PathBuf>,
    /// Most plugin instances alive at once (the pooling allocator's size).
    pub max_instances: u32,
    /// The approved plugins: with a lock, a plugin it does not approve is
    /// refused before it is compiled.
    pub lock: Option<Arc<crate::lock::Lock>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memory_limit: 256 << 20,
            call_deadline: Duration::from_millis(50),
            encode_deadline: Duration::from_millis(10),
            plugin_budget: usize::MAX,
            total_budget: default_total_budget(),
            cache_dir: default_cache_dir(),
            cache_key: default_cache_key(),
            max_instances: 1000,
            lock: None,
        }
    }
}

/// Half the machine's memory (from `/proc/meminfo`), else 4 GiB: plugins
/// may not take the host's memory from under it.
pub fn default_total_budget() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 2)
        })
        .unwrap_or(4 << 30)
}

/// `$BARRAGE_CACHE_DIR`, else `$XDG_CACHE_HOME/barrage/compiled`, else
/// `~/.cache/barrage/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    user_path("BARRAGE_CACHE_DIR", "XDG_CACHE_HOME", ".cache", "compiled")
}

/// `$BARRAGE_CACHE_KEY`, else `$XDG_CONFIG_HOME/barrage/cache.key`, else
/// `~/.config/barrage/cache.key`.
pub fn default_cache_key() -> Option<PathBuf> {
    user_path("BARRAGE_CACHE_KEY", "XDG_CONFIG_HOME", ".config", "cache.key")
}

/// `$own` if set, else `$xdg/barrage/rel`, else `~/home_dir/barrage/rel`:
/// where Barrage keeps a file of the user's, the XDG way.
pub(crate) fn user_path(own: &str, xdg: &str, home_dir: &str, rel: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(own) {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os(xdg)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_dir)))?;
    Some(base.join("barrage").join(rel))
}

/// The engine and its options. Cheap to clone; clones share one engine.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    options: Arc<EngineOptions>,
    compat: Arc<str>,
    total_budget: Arc<MemoryBudget>,
    /// The cache's key; without one nothing is cached.
    cache_key: Option<Arc<[u8; 32]>>,
}

impl PluginEngine {
    /// Build the engine and start its epoch ticker thread (which ends when
    /// the last clone of the engine is dropped).
    pub fn new(options: EngineOptions) -> Result<PluginEngine, PluginError> {
        // No key (an unwritable config directory) means no cache, not an
        // unauthenticated one.
        let cache_key = options
            .cache_key
            .as_deref()
            .and_then(|p| read_or_create_key(p).ok())
            .map(Arc::new);
        let functions = match (&options.cache_dir, &cache_key) {
            (Some(dir), Some(key)) => Some(Arc::new(FunctionCache {
                dir: dir.join("functions"),
                key: key.clone(),
            })),
            _ => None,
        };
        let engine = build_engine(&options, true, functions.clone()).or_else(|pooled| {
            // Pooling reserves address space up front; where the OS refuses
            // (small virtual address spaces), instantiate on demand instead.
            build_engine(&options, false, functions).map_err(|_| pooled)
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
            cache_key,
            total_budget: MemoryBudget::new("all plugins", options.total_budget),
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

    /// The lockfile this engine enforces, if it is locked.
    pub fn lock(&self) -> Option<&crate::lock::Lock> {
        self.options.lock.as_deref()
    }

    /// The budget all plugins' memory counts against.
    pub(crate) fn total_budget(&self) -> &Arc<MemoryBudget> {
        &self.total_budget
    }

    /// A fresh budget for the instances of the plugin named `name`.
    pub(crate) fn plugin_budget(&self, name: &str) -> Arc<MemoryBudget> {
        MemoryBudget::new(format!("plugin '{name}'"), self.options.plugin_budget)
    }

    /// Compile `bytes` (named `name` in errors, sha256 `source`), from the
    /// disk cache when this engine compiled the same bytes before.
    pub fn compile(&self, name: &str, bytes: &[u8], source: &str) -> Result<Component, PluginError> {
        check_is_component(name, bytes)?;
        let cache = match (&self.options.cache_dir, &self.cache_key) {
            (Some(dir), Some(key)) => Some((dir.join(format!("{source}-{}.cwasm", self.compat)), key)),
            _ => None,
        };
        if let Some((path, key)) = &cache
            && let Some(component) = self.cached(path, key, source)
        {
            return Ok(component);
        }
        let component = Component::from_binary(&self.engine, bytes).map_err(|e| PluginError::Compile {
            name: name.to_string(),
            message: format!("{e:#}"),
        })?;
        if let Some((path, key)) = &cache {
            // The cache is an optimisation: failing to write it is not an error.
            let _ = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|artifact| write_atomically(path, &sealed(key, source, &self.compat, &artifact)));
        }
        Ok(component)
    }

    /// The cached compilation of the component whose sha256 is `source`, if
    /// the entry is one this machine's key sealed for exactly that source
    /// and engine. Anything else (missing, damaged, swapped for another
    /// plugin's entry, written without the key) is ignored and recompiled.
    fn cached(&self, path: &Path, key: &[u8; 32], source: &str) -> Option<Component> {
        let file = std::fs::read(path).ok()?;
        let artifact = unseal(key, source, &self.compat, &file)?;
        // SAFETY: the artifact is authenticated: this machine's key sealed it
        // for these source bytes and this engine when this host serialized
        // it (`compile`); wasmtime also rejects blobs from other engine
        // versions or settings.
        unsafe { Component::deserialize(&self.engine, artifact) }.ok()
    }
}

/// The first line of a cache entry; the MAC and the artifact follow.
const CACHE_MAGIC: &[u8] = b"barrage-compiled-v1\n";

/// A cache entry: magic, HMAC-SHA256 over (source digest, engine hash,
/// artifact), artifact.
fn sealed(key: &[u8; 32], source: &str, compat: &str, artifact: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CACHE_MAGIC.len() + 32 + artifact.len());
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&hmac_sha256(key, &[source.as_bytes(), compat.as_bytes(), artifact]));
    out.extend_from_slice(artifact);
    out
}

/// The artifact of a cache entry, if its MAC is right for `source` and `compat`.
fn unseal<'a>(key: &[u8; 32], source: &str, compat: &str, file: &'a [u8]) -> Option<&'a [u8]> {
    let rest = file.strip_prefix(CACHE_MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (mac, artifact) = rest.split_at(32);
    same_mac(
        mac,
        &hmac_sha256(key, &[source.as_bytes(), compat.as_bytes(), artifact]),
    )
    .then_some(artifact)
}

/// Compared in constant time, so a forger learns nothing from how long a
/// refusal takes.
fn same_mac(mac: &[u8], expected: &[u8; 32]) -> bool {
    mac.len() == 32 && mac.iter().zip(expected.iter()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(inner_pad);
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(outer_pad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The 32-byte key at `path`, created (mode 0600, from the OS's random
/// source) if there is none.
fn read_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(bytes) = std::fs::read(path) {
        return bytes
            .try_into()
            .map_err(|_| std::io::Error::other("the cache key is not 32 bytes"));
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(&key)?;
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)?
            .try_into()
            .map_err(|_| std::io::Error::other("the cache key is not 32 bytes")),
        Err(e) => Err(e),
    }
}

fn build_engine(
    options: &EngineOptions,
    pooling: bool,
    functions: Option<Arc<FunctionCache>>,
) -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if let Some(functions) = functions {
        config
            .enable_incremental_compilation(functions)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
    }
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

/// Cranelift's cache of compiled functions, on disk beside the components'.
/// Components built by one toolchain share most of their code (every
/// componentize-py plugin carries the same CPython, every componentize-js
/// one the same StarlingMonkey), so a plugin's first compile reuses what
/// the others compiled: after one Python plugin, the next compiles in a
/// fraction of the time. Entries are sealed like the components' (an HMAC
/// under the machine's key), since they are machine code the host runs.
#[derive(Debug)]
struct FunctionCache {
    dir: PathBuf,
    key: Arc<[u8; 32]>,
}

impl FunctionCache {
    fn path(&self, key: &[u8]) -> PathBuf {
        let name = sha256_hex(key);
        self.dir.join(&name[..2]).join(&name[2..])
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        let file = std::fs::read(self.path(key)).ok()?;
        let (mac, value) = file.split_at_checked(32)?;
        same_mac(mac, &hmac_sha256(&self.key, &[b"function\n", key, value])).then(|| value.to_vec().into())
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut entry = hmac_sha256(&self.key, &[b"function\n", key, &value]).to_vec();
        entry.extend_from_slice(&value);
        write_atomically(&self.path(key), &entry).is_ok()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique to the writer: compile threads may store the same function at once.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
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
