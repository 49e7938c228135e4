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

/// How often `abort_on_threshold` judges the records so far (a summary of
/// every stage is too dear to build per record), and the overload guard
/// samples requests in flight.
const JUDGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// When the records thread stops the run.
pub(super) struct StopRules {
    /// `max_error_rate`.
    pub max_error_rate: Option<f64>,
    /// With `abort_on_threshold`: when judging starts, and the stages'
    /// descriptions (`achieved_rate > 0.99 * requested` needs them).
    pub thresholds: Option<(std::time::Instant, Vec<StageInfo>)>,
    /// With `stop_on_overload_after_s`: when judging starts.
    pub overload: Option<std::time::Instant>,
    /// With `stop_when_stable_after_s`: the run's start, and the second
    /// from which its throughput is judged.
    pub stable: Option<(std::time::Instant, usize)>,
}

/// Full seconds of completions the stability rule needs at least.
const STABLE_SECONDS: usize = 5;

/// Whether the completions of `seconds` (full seconds only) are steady:
/// their mean known to within 2 % (its standard error), over at least
/// [`STABLE_SECONDS`].
fn stable(seconds: &[u64]) -> Option<String> {
    if seconds.len() < STABLE_SECONDS {
        return None;
    }
    let xs: Vec<f64> = seconds.iter().map(|&n| n as f64).collect();
    let (mean, sd) = crate::capacity::mean_sd(&xs);
    let se = sd / (xs.len() as f64).sqrt();
    (mean > 0.0 && se < 0.02 * mean)
        .then(|| format!("stable: {mean:.1} ± {se:.1} requests/s completed over {} s", xs.len()))
}

/// Requests in flight, sampled once a second: a queue that grows second
/// after second, by half again and by more than a handful, is a server
/// that cannot keep up with the offered load (past its start, when the
/// count rises to its steady level for a while anyway).
#[derive(Default)]
struct Overload {
    samples: std::collections::VecDeque<u64>,
}

impl Overload {
    const SECONDS: usize = 3;

    fn judge(&mut self, in_flight: u64) -> Option<String> {
        self.samples.push_back(in_flight);
        if self.samples.len() > Self::SECONDS + 1 {
            self.samples.pop_front();
        }
        let s = &self.samples;
        let (first, last) = (*s.front()?, *s.back()?);
        let rising = s.len() == Self::SECONDS + 1 && s.iter().zip(s.iter().skip(1)).all(|(a, b)| b > a);
        (rising && last >= first + 8 && last * 2 >= first * 3).then(|| {
            format!(
                "overloaded: requests in flight rose from {first} to {last} in {} s (the server is not keeping up)",
                Self::SECONDS
            )
        })
    }
}

/// Start the thread; it ends when every sender of `records` is gone.
pub(super) fn start(
    mut sink: RecordSink,
    mut records: mpsc::Receiver<Record>,
    live: &Live,
    stop: StopSignal,
    rules: StopRules,
    mut export: Option<crate::export::Observer>,
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
            let mut overload = Overload::default();
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
                if let Some(e) = &mut export {
                    e.observe(&record);
                }
                if let Err(e) = sink.add(&record) {
                    io_error.get_or_insert(e);
                }
                if finished.is_multiple_of(64)
                    && let Some(p50) = sink.aggregator.ttft_p50(record.stage)
                {
                    ttft_p50.store((p50 * 1000.0) as u64, Ordering::Relaxed);
                }
                if judged.elapsed() >= JUDGE_EVERY && !stop.is_stopped() {
                    judged = std::time::Instant::now();
                    if let Some((from, infos)) = &rules.thresholds
                        && judged >= *from
                        && let Some(failure) = sink.aggregator.live_failure(infos)
                    {
                        stop.stop(&format!("threshold failed: {}", failure.describe()));
                    }
                    if let Some(from) = rules.overload
                        && judged >= from
                        && let Some(why) = overload.judge(counters.in_flight.load(Ordering::Relaxed))
                    {
                        stop.stop(&why);
                    }
                    if let Some((origin, from)) = rules.stable {
                        // The second now running is not full yet.
                        let now = (judged - origin).as_secs() as usize;
                        let completed = sink.aggregator.completed_per_second();
                        if let Some(seconds) = completed.get(from..now.min(completed.len()))
                            && let Some(why) = stable(seconds)
                        {
                            stop.stop(&why);
                        }
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

#[cfg(test)]
mod tests {
    use super::Overload;

    #[test]
    fn throughput_is_stable_once_its_mean_is_known_to_two_percent() {
        assert!(super::stable(&[80, 81, 79, 80, 80]).is_some());
        assert!(super::stable(&[80, 81, 79, 80]).is_none(), "too few seconds");
        assert!(super::stable(&[40, 120, 60, 100, 80]).is_none(), "too noisy");
        assert!(super::stable(&[0, 0, 0, 0, 0]).is_none(), "nothing completes");
    }

    #[test]
    fn only_a_queue_rising_second_after_second_is_an_overload() {
        let judge = |samples: &[u64]| {
            let mut o = Overload::default();
            samples.iter().map(|&n| o.judge(n)).last().flatten()
        };
        assert!(judge(&[20, 30, 40, 50]).is_some());
        assert!(judge(&[100, 20, 30, 40, 50]).is_some(), "the last four seconds count");
        assert!(judge(&[20, 30, 29, 50]).is_none(), "a dip: not growing every second");
        assert!(judge(&[100, 101, 102, 110]).is_none(), "not half again");
        assert!(judge(&[2, 3, 4, 5]).is_none(), "a handful");
        assert!(judge(&[20, 30, 40]).is_none(), "too soon to tell");
    }
}
