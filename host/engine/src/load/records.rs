//! The records thread: appends each record to `records.jsonl` as it
//! completes, feeds the aggregates, stops the run past its error budget,
//! and flushes whenever idle, so a hard stop loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::RunError;
use super::shared::{Counters, StopSignal};
use crate::metrics::Record;
use crate::results::RecordSink;

/// Records waiting for the records thread, at most. A request that finds
/// the queue full waits (its response is complete and timed): this bounds
/// what a slow disk can pile up, and a wait here changes no measurement.
pub(super) const QUEUE: usize = 16_384;

/// What the records thread hands back when the last record is in.
pub(super) type Written = (RecordSink, Option<crate::results::ResultsError>);

/// What the records thread reports while the run goes on.
pub(super) struct Live {
    pub counters: Arc<Counters>,
    /// The first stage-aware TTFT median seen, in µs (`u64::MAX`: none yet).
    pub ttft_p50_us: Arc<AtomicU64>,
}

/// Start the thread; it ends when every sender of `records` is gone.
pub(super) fn start(
    mut sink: RecordSink,
    mut records: mpsc::Receiver<Record>,
    live: &Live,
    stop: StopSignal,
    max_error_rate: Option<f64>,
) -> Result<JoinHandle<Written>, RunError> {
    let counters = live.counters.clone();
    let ttft_p50 = live.ttft_p50_us.clone();
    std::thread::Builder::new()
        .name("barrage-records".into())
        .spawn(move || {
            let mut io_error = None;
            let (mut finished, mut failed) = (0u64, 0u64);
            loop {
                let record = match records.try_recv() {
                    Ok(r) => r,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Idle: put everything on disk, so a hard stop loses nothing.
                        let _ = sink.flush();
                        match records.blocking_recv() {
                            Some(r) => r,
                            None => break,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                finished += 1;
                if record.status.is_failure() {
                    failed += 1;
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = sink.add(&record) {
                    io_error.get_or_insert(e);
                }
                if finished.is_multiple_of(64)
                    && let Some(p50) = sink.aggregator.ttft_p50(record.stage)
                {
                    ttft_p50.store((p50 * 1000.0) as u64, Ordering::Relaxed);
                }
                if let Some(max) = max_error_rate
                    && finished >= 20
                    && failed as f64 / finished as f64 > max
                {
                    stop.stop(&format!(
                        "error rate {:.0}% exceeded max_error_rate {:.0}%",
                        100.0 * failed as f64 / finished as f64,
                        100.0 * max
                    ));
                }
            }
            let _ = sink.flush();
            (sink, io_error)
        })
        .map_err(RunError::Thread)
}
