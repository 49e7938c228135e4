//! What a plugin's store holds, and the host side of the imports every world
//! shares (`log`, `config`, `random`, `tokenizer`).

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use super::bindings::codec::barrage::plugin::{config, log, random, tokenizer, types};
use crate::tokenizer::Tokenizer;

/// Per-plugin settings shared by all its instances.
#[derive(Clone)]
pub struct PluginContext {
    /// The plugin's name, for log lines and errors.
    pub name: Arc<str>,
    /// The user's configuration table for this plugin, as JSON text.
    pub config_json: Arc<str>,
    /// The run's seed; each instance derives its random stream from it.
    pub seed: u64,
    /// The run's tokenizer.
    pub tokenizer: Arc<dyn Tokenizer>,
    /// Lowest level of plugin log lines written to stderr.
    pub log_level: log::Level,
}

/// The data of one plugin store.
pub struct HostState {
    pub(crate) ctx: PluginContext,
    rng: u64,
    pub(crate) limiter: MemoryLimiter,
    /// The panic message the SDK logged just before the instance trapped.
    pub(crate) last_panic: Option<String>,
    /// Records served to a reporter.
    pub(crate) records: Option<super::reporter::RecordFeed>,
    /// Input files a dataset plugin may read.
    pub(crate) files: Option<super::dataset::FileAccess>,
}

impl HostState {
    pub(crate) fn new(ctx: PluginContext, memory_limit: usize) -> HostState {
        let rng = ctx.seed;
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit)
            .table_elements(1 << 20)
            .trap_on_grow_failure(true)
            .build();
        HostState {
            ctx,
            rng,
            limiter: MemoryLimiter {
                limits,
                limit: memory_limit,
                hit: false,
            },
            last_panic: None,
            records: None,
            files: None,
        }
    }
}

/// wasmtime's `StoreLimits` (memory and table caps, growth failures trap),
/// plus a note of whether the memory cap was what stopped the plugin, so the
/// failure is reported as a memory-limit hit rather than a bare trap.
pub(crate) struct MemoryLimiter {
    limits: StoreLimits,
    pub(crate) limit: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
        }
        self.limits.memory_growing(current, desired, max)
    }

    fn table_growing(&mut self, current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, max)
    }
}

fn rank(level: log::Level) -> u8 {
    match level {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn => 3,
        log::Level::Error => 4,
    }
}

/// Parse a level name as used by `BARRAGE_PLUGIN_LOG`.
pub fn parse_level(s: &str) -> Option<log::Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => log::Level::Trace,
        "debug" => log::Level::Debug,
        "info" => log::Level::Info,
        "warn" | "warning" => log::Level::Warn,
        "error" => log::Level::Error,
        _ => return None,
    })
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        if message.starts_with("plugin panicked") {
            self.last_panic = Some(message.clone());
        }
        if rank(level) >= rank(self.ctx.log_level) {
            eprintln!("[plugin {}] {level:?}: {message}", self.ctx.name);
        }
    }
}

impl config::Host for HostState {
    fn get(&mut self) -> String {
        self.ctx.config_json.to_string()
    }
}

impl random::Host for HostState {
    fn next_u64(&mut self) -> u64 {
        crate::rng::splitmix64(&mut self.rng)
    }

    fn fill(&mut self, len: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize);
        while out.len() < len as usize {
            let word = random::Host::next_u64(self).to_le_bytes();
            let take = (len as usize - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
        out
    }
}

impl tokenizer::Host for HostState {
    fn info(&mut self) -> tokenizer::TokenizerInfo {
        tokenizer::TokenizerInfo {
            name: self.ctx.tokenizer.name().to_string(),
            exact: self.ctx.tokenizer.exact(),
        }
    }

    fn count(&mut self, text: String) -> u32 {
        self.ctx.tokenizer.count(&text)
    }

    fn encode(&mut self, text: String) -> Vec<u32> {
        self.ctx.tokenizer.encode(&text)
    }

    fn decode(&mut self, tokens: Vec<u32>) -> String {
        self.ctx.tokenizer.decode(&tokens)
    }
}
