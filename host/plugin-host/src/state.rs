//! What a plugin's store holds, and the version-neutral host side of the
//! imports every world shares (`log`, `config`, `random`, `tokenizer`); the
//! binding modules call these.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::tokenizer::Tokenizer;

/// Severity of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

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
    /// Lowest level of plugin log lines passed to `log`.
    pub log_level: LogLevel,
    /// Where plugin log lines go: the host library prints nothing itself.
    pub log: LogSink,
}

/// Receives each plugin log line at or above the context's level:
/// (plugin name, level, message).
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// A sink that drops every line.
pub fn no_log() -> LogSink {
    Arc::new(|_, _, _| {})
}

/// The data of one plugin store.
pub struct HostState {
    pub(crate) ctx: PluginContext,
    rng: u64,
    pub(crate) limiter: MemoryLimiter,
    /// The panic message the SDK logged just before the instance trapped.
    pub(crate) last_panic: Option<String>,
    /// Records served to a reporter.
    pub(crate) records: Option<crate::reporter::RecordFeed>,
    /// Input files a dataset plugin may read.
    pub(crate) files: Option<crate::dataset::FileAccess>,
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

/// Parse a level name as used by `BARRAGE_PLUGIN_LOG`.
pub fn parse_level(s: &str) -> Option<LogLevel> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => return None,
    })
}

impl HostState {
    pub(crate) fn plugin_log(&mut self, level: LogLevel, message: String) {
        if message.starts_with("plugin panicked") {
            self.last_panic = Some(message.clone());
        }
        if level >= self.ctx.log_level {
            (self.ctx.log)(&self.ctx.name, level, &message);
        }
    }

    pub(crate) fn config_json(&self) -> String {
        self.ctx.config_json.to_string()
    }

    pub(crate) fn random_u64(&mut self) -> u64 {
        barrage_core::rng::splitmix64(&mut self.rng)
    }

    pub(crate) fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize);
        while out.len() < len as usize {
            let word = self.random_u64().to_le_bytes();
            let take = (len as usize - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
        out
    }
}
