//! What a plugin's store holds, and the version-neutral host side of the
//! imports every world shares (`log`, `config`, `random`, `tokenizer`); the
//! binding modules call these.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::bounds;
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
    /// The secrets the user granted this plugin.
    pub secrets: Arc<Secrets>,
}

/// Secrets granted to one plugin, by name, and the masking that keeps
/// their values out of everything the plugin hands back.
#[derive(Default)]
pub struct Secrets {
    granted: std::collections::BTreeMap<String, String>,
    /// One finder per distinct value, longest first, so a value holding
    /// another is masked whole.
    finders: Vec<(memchr::memmem::Finder<'static>, String)>,
}

/// Fewest bytes a secret's value may have: a shorter one would turn up by
/// chance in ordinary text, which masking would then mangle.
pub const MIN_SECRET_LEN: usize = 8;

/// A grant that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}`: {problem}")]
pub struct SecretError {
    /// The name it is granted under.
    pub name: String,
    /// What is wrong.
    pub problem: String,
}

impl Secrets {
    /// `granted` (name, value); values shorter than [`MIN_SECRET_LEN`] are refused.
    pub fn new(granted: impl IntoIterator<Item = (String, String)>) -> Result<Secrets, SecretError> {
        let granted: std::collections::BTreeMap<String, String> = granted.into_iter().collect();
        for (name, value) in &granted {
            if value.len() < MIN_SECRET_LEN {
                return Err(SecretError {
                    name: name.clone(),
                    problem: format!(
                        "its value has {} bytes; a secret needs at least {MIN_SECRET_LEN}, so that keeping it out of results cannot mangle them",
                        value.len()
                    ),
                });
            }
        }
        let mut values: Vec<&String> = granted.values().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let finders = values
            .into_iter()
            .map(|v| (memchr::memmem::Finder::new(v.as_bytes()).into_owned(), v.clone()))
            .collect();
        Ok(Secrets { granted, finders })
    }

    /// The names granted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.granted.keys().map(String::as_str)
    }

    /// Whether none is granted.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.granted.get(name).map(String::as_str)
    }

    /// `text` with every granted value replaced by `[secret]`.
    pub fn mask(&self, text: &mut String) {
        for (finder, value) in &self.finders {
            if finder.find(text.as_bytes()).is_some() {
                *text = text.replace(value.as_str(), "[secret]");
            }
        }
    }

    /// Every string of `event` masked.
    pub fn mask_event(&self, event: &mut barrage_core::types::Event) {
        use barrage_core::types::Event;
        if self.finders.is_empty() {
            return;
        }
        match event {
            Event::Malformed(s) | Event::Finish(s) => self.mask(s),
            Event::ServerError(e) => {
                self.mask(&mut e.message);
                if let Some(code) = &mut e.code {
                    self.mask(code);
                }
            }
            Event::Content(d) | Event::Reasoning(d) => {
                if let Some(text) = &mut d.text {
                    self.mask(text);
                }
            }
            _ => {}
        }
    }
}

/// Receives each plugin log line at or above the context's level:
/// (plugin name, level, message).
pub type LogSink = Arc<dyn Fn(&str, LogLevel, &str) + Send + Sync>;

/// A sink that drops every line.
pub fn no_log() -> LogSink {
    Arc::new(|_, _, _| {})
}

/// How long the call running in a store may go on: a budget of the CPU time
/// of the thread running it, so a plugin thread or feeder preempted on a
/// busy machine does not make a quick call overrun (plugins cannot block,
/// so their CPU time is their work), with a wall-clock backstop of
/// [`WALL_BACKSTOP`] times the budget. The CPU clock is first read at the
/// call's first epoch tick, not when it starts: most calls end well before
/// one, and so cost no system call; a call is charged from that tick on, so
/// it stops within its budget plus one tick.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallDeadline {
    limit: std::time::Duration,
    wall_start: std::time::Instant,
    cpu_start: Option<std::time::Duration>,
}

/// How many times its CPU budget a call may take in wall time. Only a call
/// that burns no CPU for its time (a host import stuck) needs it: a thread
/// starved on a saturated client (one core for the pacer, the runtime and
/// four plugin threads) was seen taking ten times a quick call's budget
/// in wall time, and a backstop that low failed valid responses.
pub(crate) const WALL_BACKSTOP: u32 = 100;

impl CallDeadline {
    /// A budget of `limit` starting now, on this thread.
    pub(crate) fn start(limit: std::time::Duration) -> CallDeadline {
        CallDeadline {
            limit,
            wall_start: std::time::Instant::now(),
            cpu_start: None,
        }
    }

    /// At an epoch tick: the call has used its CPU budget (or far more
    /// than it in wall time).
    pub(crate) fn passed(&mut self) -> bool {
        if self.wall_start.elapsed() >= self.limit * WALL_BACKSTOP {
            return true;
        }
        let now = thread_cpu_time();
        let start = *self.cpu_start.get_or_insert(now);
        now.saturating_sub(start) >= self.limit
    }
}

/// CPU time (user and system) this thread has used.
fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The data of one plugin store.
pub struct HostState {
    pub(crate) ctx: PluginContext,
    /// The deadline of the call running now.
    pub(crate) deadline: CallDeadline,
    rng: u64,
    pub(crate) limiter: MemoryLimiter,
    /// The panic message the SDK logged just before the instance trapped.
    pub(crate) last_panic: Option<String>,
    /// Records served to a reporter.
    pub(crate) records: Option<crate::reporter::RecordFeed>,
    /// Input files a dataset plugin may read.
    pub(crate) files: Option<crate::dataset::FileAccess>,
    /// What the WASI stubs keep (see `sandbox`).
    pub(crate) wasi: crate::sandbox::Wasi,
}

impl HostState {
    pub(crate) fn new(ctx: PluginContext, memory_limit: usize, budgets: [Arc<MemoryBudget>; 2]) -> HostState {
        let rng = ctx.seed;
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit)
            .table_elements(1 << 20)
            .trap_on_grow_failure(true)
            .build();
        HostState {
            ctx,
            deadline: CallDeadline::start(std::time::Duration::ZERO),
            rng,
            limiter: MemoryLimiter {
                limits,
                limit: memory_limit,
                hit: None,
                budgets,
                held: 0,
            },
            last_panic: None,
            records: None,
            files: None,
            wasi: crate::sandbox::Wasi::new(rng),
        }
    }
}

/// What stopped a plugin's memory from growing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemoryHit {
    /// The per-instance limit, in bytes.
    Instance(usize),
    /// A budget shared by several instances: what it covers, its size in bytes.
    Budget(String, usize),
}

/// Linear memory shared out among many stores: all instances of one plugin,
/// or all plugins of the process. A store takes what it grows by and gives
/// it all back when it is dropped, so the sum of live instances' memories
/// never passes `limit`, however many streams a plugin holds open.
#[derive(Debug)]
pub struct MemoryBudget {
    covers: String,
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes for what `covers` names ("plugin 'x'", "all plugins").
    pub fn new(covers: impl Into<String>, limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            covers: covers.into(),
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Most bytes ever taken at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Note what is taken now as the peak, if it is: only once a growth has
    /// been granted by every budget, so a refused one never counts.
    fn note_peak(&self) {
        self.peak.fetch_max(self.used(), Ordering::Relaxed);
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// wasmtime's `StoreLimits` (memory and table caps, growth failures trap),
/// the budgets this store's memory counts against, and a note of what
/// stopped the plugin, so the failure is reported as a memory-limit hit
/// rather than a bare trap.
pub(crate) struct MemoryLimiter {
    limits: StoreLimits,
    pub(crate) limit: usize,
    pub(crate) hit: Option<MemoryHit>,
    /// The plugin's budget, then the process's.
    budgets: [Arc<MemoryBudget>; 2],
    /// Bytes this store has taken from the budgets.
    held: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = Some(MemoryHit::Instance(self.limit));
            return self.limits.memory_growing(current, desired, max);
        }
        let more = desired.saturating_sub(current);
        for (i, budget) in self.budgets.iter().enumerate() {
            if !budget.take(more) {
                for taken in &self.budgets[..i] {
                    taken.give(more);
                }
                self.hit = Some(MemoryHit::Budget(budget.covers.clone(), budget.limit));
                return Err(wasmtime::Error::msg(format!(
                    "memory budget of {} MiB for {} reached",
                    budget.limit >> 20,
                    budget.covers
                )));
            }
        }
        let grown = self.limits.memory_growing(current, desired, max);
        if matches!(grown, Ok(true)) {
            self.held += more;
            self.budgets.iter().for_each(|b| b.note_peak());
        } else {
            for b in &self.budgets {
                b.give(more);
            }
        }
        grown
    }

    fn table_growing(&mut self, current: usize, desired: usize, max: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, max)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        for b in &self.budgets {
            b.give(self.held);
        }
    }
}

impl MemoryLimiter {
    /// Linear memory this store holds.
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

/// Log lines a plugin may write: each line is cut to
/// [`bounds::MAX_LOG_LINE`] bytes, and past [`bounds::LOG_BUDGET`] bytes a
/// plugin's lines are dropped and counted. The count is reported when the
/// plugin is unloaded.
pub(crate) struct LogBudget {
    name: Arc<str>,
    inner: LogSink,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl LogBudget {
    /// `sink`, for `name`'s lines, bounded.
    pub(crate) fn wrap(name: Arc<str>, sink: LogSink) -> LogSink {
        let budget = Arc::new(LogBudget {
            name,
            inner: sink,
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        Arc::new(move |plugin: &str, level: LogLevel, message: &str| budget.line(plugin, level, message))
    }

    fn line(&self, plugin: &str, level: LogLevel, message: &str) {
        let line = bounds::cut(message, bounds::MAX_LOG_LINE);
        let before = self.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        if before + line.len() as u64 <= bounds::LOG_BUDGET as u64 {
            (self.inner)(plugin, level, &line);
            return;
        }
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            (self.inner)(
                plugin,
                LogLevel::Warn,
                &format!(
                    "this plugin has logged {} MiB; its further lines are dropped and counted",
                    bounds::LOG_BUDGET >> 20
                ),
            );
        }
    }
}

impl Drop for LogBudget {
    fn drop(&mut self) {
        let dropped = *self.dropped.get_mut();
        if dropped > 0 {
            (self.inner)(
                &self.name,
                LogLevel::Warn,
                &format!(
                    "{dropped} log lines dropped past the {} MiB log budget",
                    bounds::LOG_BUDGET >> 20
                ),
            );
        }
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
    pub(crate) fn plugin_log(&mut self, level: LogLevel, mut message: String) {
        self.ctx.secrets.mask(&mut message);
        if message.starts_with("plugin panicked") {
            self.last_panic = Some(bounds::cut_owned(message.clone(), bounds::MAX_MESSAGE));
        }
        if level >= self.ctx.log_level {
            (self.ctx.log)(&self.ctx.name, level, &message);
        }
    }

    /// `secrets.get`: only what was granted (and so declared).
    pub(crate) fn secret(&self, name: &str) -> Result<String, String> {
        self.ctx.secrets.get(name).map(str::to_string).ok_or_else(|| {
            format!(
                "no secret `{name}` was granted to this plugin (declare it in plugin-info.secrets; the user grants it)"
            )
        })
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
