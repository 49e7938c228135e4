//! The plugin host: loads WebAssembly component plugins, checks their
//! contract, and runs their calls on dedicated threads under deadlines and
//! memory limits. Also what plugins are given: tokenizers and chat
//! templates, and the dataset preparation that runs a dataset plugin.
//!
//! - [`engine`]: the one wasmtime engine (pooling, epochs, compiled cache).
//! - [`contract`]: which world and WIT version a component implements.
//! - [`bindings`]: one module per supported contract version, converting
//!   to and from the host's types; nothing else sees generated code.
//! - [`bounds`]: how much a plugin may hand the host (strings, events, logs).
//! - [`component`]: loading any plugin (compile, check, link, pre-instantiate).
//! - [`registry`]: built-in, installed and user-supplied plugins by name.
//! - [`sandbox`]: the WASI every plugin is linked with, each interface a
//!   stub that gives no access (no files, network, environment or clock).
//! - [`lock`]: approved plugin sets (the lockfile), their digests and
//!   signatures, checked before a plugin is compiled.
//! - [`codec`]: a loaded codec and its instances (one store each).
//! - [`reporter`]: a loaded reporter; renders a summary into files.
//! - [`dataset`]: a loaded dataset plugin; generates a run's samples.
//! - [`workers`]: the plugin threads that own codec instances and decode
//!   streams off the I/O tasks.
//! - [`tokenizer`], [`prepare`]: the run's tokenizer; datasets prepared and cached.

mod bindings;
pub mod bounds;
pub mod codec;
pub mod component;
pub mod contract;
pub mod dataset;
pub mod describe;
pub mod engine;
pub mod lock;
pub mod prepare;
pub mod registry;
pub mod reporter;
pub mod sandbox;
pub mod state;
pub mod stream;
pub mod tokenizer;
pub mod workers;

use std::fmt;

pub use bindings::{Contract, SUPPORTED_VERSIONS};
pub use codec::{CodecInstance, CodecPlugin};
pub use contract::{ContractInfo, Version, World};
pub use dataset::DatasetPlugin;
pub use engine::{EngineOptions, PluginEngine};
pub use registry::{PluginSource, Registry};
pub use reporter::ReporterPlugin;
pub use state::{MIN_SECRET_LEN, PluginContext, SecretError, Secrets};
pub use workers::{Backlog, CodecWorkers, Reply, StreamHandle, StreamOutcome, TimedEvent};

/// Who a plugin says it is (`meta.info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Short name users refer to the plugin by.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line saying what it is for.
    pub description: String,
    /// Secrets it reads (contract 0.2 on; none before).
    pub secrets: Vec<SecretNeed>,
}

/// A secret a plugin reads, by the name a user grants it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNeed {
    /// The name.
    pub name: String,
    /// Whether the plugin refuses to work without it.
    pub required: bool,
    /// What it is.
    pub description: String,
}

/// Why a plugin refuses its configuration (`meta.check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key, when one key is at fault.
    pub field: Option<String>,
    /// What is wrong and what would be accepted.
    pub message: String,
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("could not read plugin file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component.
    #[error("plugin '{name}' is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// Plugin name or file.
        name: String,
        /// What it is instead, and what to do.
        reason: String,
    },
    /// The component failed to compile.
    #[error("plugin '{name}' could not be compiled: {message}")]
    Compile {
        /// Plugin name or file.
        name: String,
        /// The compiler's message.
        message: String,
    },
    /// The component targets a contract version this host does not support.
    #[error(
        "plugin '{name}' targets {found}, which this host cannot load; this host supports {supported}. \
         Rebuild the plugin against a supported version of barrage-sdk, or use a Barrage release that supports {found}"
    )]
    Incompatible {
        /// Plugin name or file.
        name: String,
        /// What it targets.
        found: String,
        /// What this host supports.
        supported: String,
    },
    /// The component implements no Barrage world, or not the one needed.
    #[error("plugin '{name}' {problem}")]
    WrongWorld {
        /// Plugin name or file.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The plugin refused its configuration.
    #[error("plugin '{name}' rejected its configuration{}: {message}", field.as_ref().map(|f| format!(" at `{f}`")).unwrap_or_default())]
    Config {
        /// Plugin name.
        name: String,
        /// The offending key, if one.
        field: Option<String>,
        /// Why.
        message: String,
    },
    /// A secret the plugin needs was not granted, or one it does not read was.
    #[error("plugin '{name}' {problem}")]
    Secret {
        /// Plugin name.
        name: String,
        /// What is wrong and how to grant it.
        problem: String,
    },
    /// Instantiating or a first call failed.
    #[error("plugin '{name}' could not start: {message}")]
    Start {
        /// Plugin name.
        name: String,
        /// Why.
        message: String,
    },
    /// No plugin of that name.
    #[error("no plugin named '{name}'; {hint}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// Which names exist.
        hint: String,
    },
    /// The engine could not be built.
    #[error("the WebAssembly engine could not be set up: {0}")]
    Engine(String),
    /// A locked engine refused the plugin (or could not read its lockfile).
    #[error(transparent)]
    Locked(#[from] lock::LockError),
}

/// How a call into a plugin failed. Only the request being served fails; the
/// instance that failed is dropped and replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The call ran past its deadline and was interrupted.
    Timeout,
    /// The plugin tried to grow its memory past the limit.
    MemoryLimit,
    /// The plugin trapped (a panic, an unreachable, a bad memory access, a
    /// forbidden import).
    Trap,
    /// The plugin returned an error for this request.
    Returned,
    /// The plugin returned something the host does not take: an event for a
    /// frame it was not given, more events than a call may return.
    Output,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory limit",
            FailureKind::Trap => "trap",
            FailureKind::Returned => "error",
            FailureKind::Output => "bad output",
        })
    }
}

/// A failed plugin call: data, counted and reported, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin '{plugin}' {kind}: {message}")]
pub struct PluginFailure {
    /// The plugin's name.
    pub plugin: String,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The plugin's or the runtime's message.
    pub message: String,
}
