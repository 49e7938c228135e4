//! What the client itself goes through during a stage: the process's CPU
//! share, how late the I/O runtime wakes up, and the decode backlog. The
//! pacer takes one [`StageGauge`] per stage; its reading is the evidence
//! `metrics::ClientHealth` judges saturation from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrage_plugin_host::Backlog;

use crate::metrics::{ClientLoad, Hist};

/// How often the I/O probe wakes up.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A task on the I/O runtime that sleeps [`PROBE_EVERY`] and notes how much
/// later it woke: a runtime busy enough to wake a timer late reads its
/// sockets as late, and every read's timestamp with them.
pub(super) struct IoProbe {
    lag: Mutex<Option<Hist>>,
    /// When the probe last woke, in ns from `origin`.
    woke_ns: AtomicU64,
    origin: Instant,
}

/// How far behind the I/O runtime may fall before the pacer stops sending:
/// a runtime that late has responses waiting unread, and every new request
/// would only add to them (on one core, a pacer that kept sending starved
/// the runtime until 16,000 requests were in flight and 400 done).
const IO_BEHIND_LIMIT: Duration = Duration::from_millis(100);

/// Tasks woken from other threads (requests the pacer handed over, decoded
/// outcomes) waiting for an I/O thread, past which it is behind just the
/// same: a timer can fire on time while the requests queue up.
const IO_QUEUE_LIMIT: usize = 1024;

/// Whether the I/O runtime is too far behind to be handed more requests.
pub(super) fn io_behind(probe: &IoProbe, handle: &tokio::runtime::Handle) -> bool {
    probe.behind() > IO_BEHIND_LIMIT || handle.metrics().global_queue_depth() > IO_QUEUE_LIMIT
}

impl Default for IoProbe {
    fn default() -> Self {
        IoProbe {
            lag: Mutex::new(None),
            woke_ns: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }
}

impl IoProbe {
    /// Start probing on the current runtime until `probe` is dropped elsewhere
    /// (the task holds only a weak reference).
    pub fn spawn(probe: &Arc<IoProbe>) {
        let weak = Arc::downgrade(probe);
        tokio::spawn(async move {
            loop {
                let asked = Instant::now() + PROBE_EVERY;
                tokio::time::sleep_until(asked.into()).await;
                // A task woken by its timer runs next (tokio's LIFO slot),
                // ahead of every read already waiting; yielding puts the
                // probe behind them, so it is as late as they are.
                tokio::task::yield_now().await;
                let now = Instant::now();
                let late = now.saturating_duration_since(asked);
                let Some(probe) = weak.upgrade() else { return };
                let ns = now.saturating_duration_since(probe.origin).as_nanos();
                probe
                    .woke_ns
                    .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
                let mut lag = probe.lag.lock().unwrap_or_else(|p| p.into_inner());
                lag.get_or_insert_with(Hist::ms).record(late.as_secs_f64() * 1000.0);
            }
        });
    }

    /// How far behind its schedule the probe is now: more than a moment
    /// only when the runtime has had no time to run it.
    pub fn behind(&self) -> Duration {
        let woke = self.origin + Duration::from_nanos(self.woke_ns.load(Ordering::Relaxed));
        Instant::now()
            .saturating_duration_since(woke)
            .saturating_sub(PROBE_EVERY)
    }

    /// The delays since the last call (p99, max), ms.
    fn take(&self) -> (f64, f64) {
        let lag = self.lag.lock().unwrap_or_else(|p| p.into_inner()).take();
        lag.map_or((0.0, 0.0), |h| {
            (h.value_at(99.0).unwrap_or(0.0), h.value_at(100.0).unwrap_or(0.0))
        })
    }
}

/// The process's CPU time so far (user and system, all threads).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// One stage's gauge, from its start.
pub(super) struct StageGauge {
    wall: Instant,
    cpu: Duration,
}

impl StageGauge {
    /// Start a stage's gauge; the probe's and the backlog's peaks start over.
    pub fn start(probe: &IoProbe, backlog: &Backlog) -> StageGauge {
        probe.take();
        backlog.take_peak();
        StageGauge {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// What the stage put the client through, with the arrivals it missed
    /// for a full decode backlog and for I/O threads too far behind.
    pub fn finish(self, probe: &IoProbe, backlog: &Backlog, missed: Missed) -> ClientLoad {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = process_cpu().saturating_sub(self.cpu).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let (io_lag_p99_ms, io_lag_max_ms) = probe.take();
        let (frames, bytes) = backlog.take_peak();
        ClientLoad {
            cpu_share: if wall > 0.0 { (cpu / wall / cores).min(1.0) } else { 0.0 },
            io_lag_p99_ms,
            io_lag_max_ms,
            decode_backlog_peak_frames: frames,
            decode_backlog_peak_mib: bytes as f64 / f64::from(1u32 << 20),
            missed_for_backlog: missed.backlog,
            missed_for_io: missed.io,
        }
    }
}

/// Arrivals a stage missed for want of the client's own capacity, by cause.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Missed {
    /// The decode backlog was past `max_decode_backlog_mib`.
    pub backlog: u64,
    /// The I/O runtime was behind ([`io_behind`]).
    pub io: u64,
}
