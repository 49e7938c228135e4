//! Live progress: a line a second (four a second, rewritten in place, on
//! a terminal) with what was sent, finished, failed and missed, the achieved rate,
//! what is in flight and the TTFT median so far. The engine does not print:
//! it hands each line to the caller's sink.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::records::Live;

/// Where progress lines go.
pub trait ProgressSink: Send + 'static {
    /// How often a line is wanted.
    fn interval(&self) -> Duration;
    /// One line.
    fn line(&mut self, line: &str);
    /// The run is over.
    fn finish(&mut self);
}

/// How long without a finished request (while some are in flight) before
/// the progress line says so.
const STALL: Duration = Duration::from_secs(5);

/// Where a run's progress lines go, shared with the task writing them.
pub(super) type SharedSink = Arc<Mutex<Box<dyn ProgressSink>>>;

/// Emit a line every `sink.interval()` until the task is aborted.
pub(super) fn spawn(sink: SharedSink, origin: Instant, live: &Live) -> tokio::task::JoinHandle<()> {
    let counters = live.counters.clone();
    let ttft = Arc::clone(&live.ttft_p50_us);
    tokio::spawn(async move {
        let lock = || sink.lock().unwrap_or_else(|p| p.into_inner());
        let mut tick = tokio::time::interval(lock().interval());
        tick.tick().await;
        // When a request last finished, so a stall shows instead of a line
        // that merely stops changing.
        let (mut last_done, mut done_at) = (0, Instant::now());
        loop {
            tick.tick().await;
            let elapsed = origin.elapsed().as_secs_f64();
            let sent = counters.sent.load(Ordering::Relaxed);
            let done = counters.done.load(Ordering::Relaxed);
            let in_flight = counters.in_flight.load(Ordering::Relaxed);
            let missed = counters.missed.load(Ordering::Relaxed);
            let p50 = ttft.load(Ordering::Relaxed);
            let p50 = if p50 == u64::MAX {
                "-".to_string()
            } else {
                format!("{:.1} ms", p50 as f64 / 1000.0)
            };
            if done != last_done {
                (last_done, done_at) = (done, Instant::now());
            }
            let missed = if missed > 0 {
                format!("  missed {missed}")
            } else {
                String::new()
            };
            let stalled = done_at.elapsed();
            let stalled = if in_flight > 0 && stalled >= STALL {
                format!("  (no request finished for {:.0} s)", stalled.as_secs_f64())
            } else {
                String::new()
            };
            lock().line(&format!(
                "[{elapsed:7.1}s] sent {sent}  done {done}  failed {}{missed}  rate {:.1}/s  in flight {in_flight}  ttft p50 {p50}{stalled}",
                counters.failed.load(Ordering::Relaxed),
                sent as f64 / elapsed.max(1e-9),
            ));
        }
    })
}
