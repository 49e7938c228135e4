//! The command line: one module per command, each with its arguments and
//! what it does; flag groups several commands share are in `options`.
//! Errors become `anyhow` errors with context here, at the edge; the
//! libraries below use typed errors.

mod capacity;
mod compare;
mod dataset;
mod merge;
mod plugin;
mod report;
mod run;
mod search;
mod sim;
mod sweep;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use dataset::DatasetCommand;
use plugin::PluginCommand;

/// Barrage: load generator and benchmark host for LLM inference servers.
#[derive(Debug, Parser)]
#[command(name = "barrage", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugins: list, inspect, try a codec on recorded responses.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the simulated LLM inference server (OpenAI-compatible) on loopback.
    Sim(sim::SimArgs),
    /// Benchmark a server (or, with no target, the embedded simulator).
    Run(Box<run::RunArgs>),
    /// Find where a server saturates: a probe, then rates chosen around the knee.
    Sweep(Box<sweep::SweepArgs>),
    /// Find the highest rate that meets an objective (--slo, --threshold).
    Search(Box<search::SearchArgs>),
    /// Rebuild a run's summary and reports from its records (other
    /// percentiles, objectives or reporters; or a run that was killed).
    Report(report::ReportArgs),
    /// Merge runs made by several load generators into one run.
    Merge(merge::MergeArgs),
    /// Compare runs side by side, with the difference from the first.
    Compare(compare::CompareArgs),
    /// Work with datasets: prepare one (and fill the cache) to see what a run would send.
    #[command(subcommand)]
    Dataset(DatasetCommand),
}

/// Run the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Plugin(PluginCommand::List(args)) => plugin::list(args),
        Command::Plugin(PluginCommand::Inspect(args)) => plugin::inspect(args),
        Command::Plugin(PluginCommand::Decode(args)) => plugin::decode(args),
        Command::Plugin(PluginCommand::New(args)) => plugin::new(args),
        Command::Plugin(PluginCommand::Lock(args)) => plugin::lock(args),
        Command::Plugin(PluginCommand::Push(args)) => plugin::push(args),
        Command::Plugin(PluginCommand::Pull(args)) => plugin::pull(args),
        Command::Plugin(PluginCommand::Test(args)) => plugin::test(args),
        Command::Plugin(PluginCommand::Record(args)) => plugin::record(args),
        Command::Sim(args) => sim::execute(args),
        Command::Run(args) => run::execute(*args),
        Command::Sweep(args) => sweep::execute(*args),
        Command::Search(args) => search::execute(*args),
        Command::Report(args) => report::execute(args),
        Command::Merge(args) => merge::execute(args),
        Command::Compare(args) => compare::execute(args),
        Command::Dataset(DatasetCommand::Prepare(args)) => dataset::prepare(args),
    }
}

/// An error and its causes, each said once: library errors carry their
/// cause in their own message (`cannot read … : No such file`), and the
/// chain would repeat it.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
