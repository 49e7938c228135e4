//! Barrage's load engine: the run configuration, the pacer and its threads,
//! the transport, metrics, the results directory and reports.
//!
//! Start with `docs/architecture.md` for the map of crates and threads.

pub mod capacity;
pub mod config;
pub mod conformance;
pub mod export;
pub mod exposition;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod junit;
pub mod load;
pub mod metrics;
pub mod report;
pub mod results;
pub mod server_metrics;
pub mod signals;
pub mod transport;
