//! The conformance kit (`barrage plugin test`): checks a plugin before
//! anyone relies on it, for its world.
//!
//! - A codec: its requests are ones the transport would send; its golden
//!   transcripts decode to their recorded events however the bytes are
//!   read (every split in two, reads of 1, 7 and 64 bytes), twice alike;
//!   truncated bodies, malformed frames and a flood of random ones become
//!   events or errors, never traps; a long stream decodes within the
//!   deadline and memory limits.
//! - A dataset: it generates samples, the same for the same seed, of the
//!   lengths it declares, and locates bad input by file and line.
//! - A reporter: it renders a run, a large run within its deadline, the
//!   same twice, into files under the output directory.
//!
//! Each check passes, fails with the reason, or is skipped with why; the
//! report is a table and a JUnit file.

use std::fmt::Write as _;
use std::path::PathBuf;

use barrage_plugin_host::{PluginContext, PluginEngine, PluginSource, Registry, World};

mod codec;
mod dataset;
mod reporter;
pub mod transcript;

/// How one check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It held; what was seen.
    Passed(String),
    /// It did not; why.
    Failed(String),
    /// It could not be made; why.
    Skipped(String),
}

/// One check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl Check {
    fn new(name: impl Into<String>, outcome: Outcome) -> Check {
        Check {
            name: name.into(),
            outcome,
        }
    }

    /// A check that passed when `failure` is none.
    fn judged(name: impl Into<String>, passed: impl Into<String>, failure: Option<String>) -> Check {
        Check::new(
            name,
            match failure {
                None => Outcome::Passed(passed.into()),
                Some(why) => Outcome::Failed(why),
            },
        )
    }
}

/// What testing a plugin needs.
pub struct Setup<'a> {
    /// The engine plugins load in (its limits are the ones checked).
    pub engine: &'a PluginEngine,
    /// Where named plugins (and reporters' and datasets' helpers) are found.
    pub registry: &'a Registry,
    /// The context the plugin gets: its configuration, seed and tokenizer.
    pub context: PluginContext,
    /// The plugin.
    pub source: PluginSource,
    /// Golden transcripts, for a codec.
    pub transcripts: Vec<PathBuf>,
    /// Input files, for a dataset.
    pub dataset_files: Vec<PathBuf>,
    /// A directory to work in.
    pub work_dir: PathBuf,
}

/// A plugin's checks.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plugin's name.
    pub plugin: String,
    /// Its world, when it has one.
    pub world: Option<World>,
    /// The checks, in the order made.
    pub checks: Vec<Check>,
    /// When the checks began, Unix seconds.
    pub started_unix_s: i64,
    /// How long they took, seconds.
    pub seconds: f64,
}

/// Check the plugin of `setup`.
pub fn test(setup: Setup<'_>) -> Report {
    let started = std::time::Instant::now();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let plugin = setup.source.label();
    let world = barrage_plugin_host::component::LoadedComponent::load(setup.engine, &setup.source)
        .map(|loaded| loaded.contract.world);
    let (world, checks) = match world {
        Err(e) => (None, vec![Check::new("loads", Outcome::Failed(e.to_string()))]),
        Ok(None) => (
            None,
            vec![Check::new(
                "loads",
                Outcome::Failed("it implements no codec, dataset or reporter world".into()),
            )],
        ),
        Ok(Some(world)) => (
            Some(world),
            match world {
                World::Codec => codec::checks(&setup),
                World::Dataset => dataset::checks(&setup),
                World::Reporter => reporter::checks(&setup),
            },
        ),
    };
    Report {
        plugin,
        world,
        checks,
        started_unix_s,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// The table the console shows.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let world = self.world.map_or("?", World::name);
        let _ = writeln!(t, "{} ({world} plugin)", self.plugin);
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        let _ = writeln!(t, "{:<width$}  {:<6}  DETAIL", "CHECK", "RESULT");
        for c in &self.checks {
            let (result, detail) = match &c.outcome {
                Outcome::Passed(d) => ("pass", d),
                Outcome::Failed(d) => ("FAIL", d),
                Outcome::Skipped(d) => ("skip", d),
            };
            let _ = writeln!(t, "{:<width$}  {result:<6}  {detail}", c.name);
        }
        let count = |f: fn(&Outcome) -> bool| self.checks.iter().filter(|c| f(&c.outcome)).count();
        let _ = writeln!(
            t,
            "{} passed, {} failed, {} skipped in {:.1} s",
            count(|o| matches!(o, Outcome::Passed(_))),
            count(|o| matches!(o, Outcome::Failed(_))),
            count(|o| matches!(o, Outcome::Skipped(_))),
            self.seconds
        );
        t
    }

    /// The JUnit XML file: a case per check (a skipped one passes, its
    /// reason in the output).
    pub fn junit(&self) -> String {
        let world = self.world.map_or("plugin", World::name);
        crate::junit::Suite {
            name: format!("barrage-plugin-test.{}", self.plugin),
            started_unix_s: self.started_unix_s,
            time_s: self.seconds,
            properties: vec![
                ("plugin".into(), self.plugin.clone()),
                ("world".into(), world.to_string()),
                ("barrage_version".into(), env!("CARGO_PKG_VERSION").into()),
            ],
            cases: self
                .checks
                .iter()
                .map(|c| crate::junit::Case {
                    name: c.name.clone(),
                    classname: format!("conformance.{world}"),
                    failure: match &c.outcome {
                        Outcome::Failed(why) => Some((why.clone(), "Nonconformance".into())),
                        _ => None,
                    },
                })
                .collect(),
            output: self.table(),
        }
        .xml()
    }
}

/// A plugin failure a check can live with: the plugin said no. Anything
/// else (a trap, a deadline, the memory limit, output the host refuses)
/// is a plugin that breaks.
fn tolerable(failure: &Option<barrage_plugin_host::PluginFailure>) -> Option<String> {
    use barrage_plugin_host::FailureKind;
    match failure {
        // A garbage collector's pause is CPU time the call is charged for:
        // tens of milliseconds in JavaScript's (docs/plugins.md).
        Some(f) if f.kind == FailureKind::Timeout => Some(format!(
            "{f} (a plugin whose runtime collects garbage, as a JavaScript one's does, may need a longer \
             --plugin-deadline-ms, e.g. 200)"
        )),
        Some(f) if f.kind != FailureKind::Returned => Some(f.to_string()),
        _ => None,
    }
}
