//! The records thread: appends each record to `records.jsonl` as it
//! completes, feeds the aggregates, stops the run past its error budget
//! or on a failed threshold, and flushes whenever it has caught up (every few ms while records come),
//! so a hard stop loses only the last moments.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::RunError;
use super::shared::{Counters, StopSignal};
use crate::metrics::{Record, StageInfo};
use crate::results::RecordSink;

/// Records waiting for the records thread, at most. A request that finds
/// the queue full waits (its response is complete and timed): this bounds
/// what a slow disk can pile up, and a wait here changes no measurement.
pub(super) const QUEUE: usize = 16_384;

/// While records keep coming, the thread drains them this often, not once
/// each: a wake-up and a `write` per record were a tenth of the client's CPU
/// at 2,500 req/s. A hard stop (a kill, not Ctrl-C) loses at most this much.
const TICK: std::time::Duration = std::time::Duration::from_millis(5);

/// What the records thread hands back when the last record is in.
pub(super) type Written = (RecordSink, Option<crate::results::ResultsError>);

/// What the records thread reports while the run goes on.
pub(super) struct Live {
    pub counters: Arc<Counters>,
    /// The first stage-aware TTFT median seen, in µs (`u64::MAX`: none yet).
    pub ttft_p50_us: Arc<AtomicU64>,
}

/// How often `abort_on_threshold` judges the records so far: a summary of
/// every stage is too dear to build per record.
const JUDGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// When the records thread stops the run.
pub(super) struct StopRules {
    /// `max_error_rate`.
    pub max_error_rate: Option<f64>,
    /// With `abort_on_threshold`: when judging starts, and the stages'
    /// descriptions (`achieved_rate > 0.99 * requested` needs them).
    pub thresholds: Option<(std::time::Instant, Vec<StageInfo>)>,
}

/// Start the thread; it ends when every sender of `records` is gone.
pub(super) fn start(
    mut sink: RecordSink,
    mut records: mpsc::Receiver<Record>,
    live: &Live,
    stop: StopSignal,
    rules: StopRules,
) -> Result<JoinHandle<Written>, RunError> {
    let counters = live.counters.clone();
    let ttft_p50 = live.ttft_p50_us.clone();
    std::thread::Builder::new()
        .name("barrage-records".into())
        .spawn(move || {
            let mut io_error = None;
            let (mut finished, mut failed) = (0u64, 0u64);
            let mut took_since_flush = false;
            let mut judged = std::time::Instant::now();
            loop {
                let record = match records.try_recv() {
                    Ok(r) => r,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Caught up: put everything on disk for a hard stop.
                        let _ = sink.flush();
                        if std::mem::take(&mut took_since_flush) {
                            // Records are coming: take them a tick at a time,
                            // not with a wake-up and a write each.
                            std::thread::sleep(TICK);
                            continue;
                        }
                        match records.blocking_recv() {
                            Some(r) => r,
                            None => break,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                took_since_flush = true;
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
                if let Some((from, infos)) = &rules.thresholds
                    && judged.elapsed() >= JUDGE_EVERY
                    && std::time::Instant::now() >= *from
                    && !stop.is_stopped()
                {
                    judged = std::time::Instant::now();
                    if let Some(failure) = sink.aggregator.live_failure(infos) {
                        stop.stop(&format!("threshold failed: {}", failure.describe()));
                    }
                }
                if let Some(max) = rules.max_error_rate
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
