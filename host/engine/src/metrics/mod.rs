//! Metrics: per-request records, their aggregation into distributions,
//! throughput, goodput and a time series, and the run summary.
//!
//! - [`record`]: one request, and the per-request quantities (TTFT, TPOT, …).
//! - [`client`]: whether the client itself was the bottleneck.
//! - [`compat`]: the run under a peer's metric definitions (`--compat`).
//! - [`hist`]: HDR-histogram distributions with configurable percentiles.
//! - [`slo`]: objectives for goodput.
//! - [`spikes`]: what each rise of the offered load did (autoscaling).
//! - [`stage`]: per-stage aggregates and the request accounting.
//! - [`summary`]: the run summary and its per-second time series.
//! - [`threshold`]: pass/fail conditions on a stage's or the run's figures.
//!
//! Every quantity is defined in `docs/metrics.md`; the code follows it.

pub mod client;
pub mod compat;
pub mod hist;
pub mod record;
pub mod slo;
pub mod spikes;
pub mod stage;
pub mod summary;
pub mod threshold;

pub use client::{ClientHealth, ClientLoad};
pub use hist::{DEFAULT_PERCENTILES, Dist, Hist};
pub use record::{MalformedFrames, Record, RequestInfo, Response, Status, TokenSource, Verdict};
pub use slo::Slo;
pub use stage::{ScheduleCounts, StageInfo, StageSummary};
pub use summary::{Aggregator, HostUsage, LoadMark, MetricsOptions, RunFacts, SCHEMA_VERSION, Summary};
pub use threshold::{Threshold, ThresholdResult};

#[cfg(test)]
mod tests;
