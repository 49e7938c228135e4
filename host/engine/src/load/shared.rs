//! What the run's threads and request tasks share: the run's state, what
//! requests carry, and how a run is stopped.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrage_core::types::DecodeOptions;
use barrage_plugin_host::CodecWorkers;
use barrage_plugin_host::prepare::{Prepared, Sample};
use tokio::sync::watch;

use crate::config::Stage;
use crate::metrics::Record;
use crate::transport::Transport;

/// Shared state of a run.
pub(super) struct Ctx {
    pub origin: Instant,
    pub transport: Transport,
    pub workers: CodecWorkers,
    pub options: DecodeOptions,
    pub malformed: crate::metrics::MalformedFrames,
    /// Most bytes in one frame of a response.
    pub max_frame: usize,
    pub records: tokio::sync::mpsc::Sender<Record>,
    pub cancel: watch::Receiver<bool>,
    pub stopping: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    pub workload: Workload,
    /// Per stage: turns after a session's first, sent by the session's own
    /// task; they add to the stage's schedule.
    pub followups: Vec<AtomicU64>,
    /// How late an arrival may still be sent (`max_send_lag_ms`).
    pub max_send_lag: Duration,
    /// Bytes of frames waiting for the plugin threads past which arrivals
    /// are missed (`max_decode_backlog_mib`).
    pub max_backlog: u64,
    /// Per stage: requests missed by their task (no slot or connection in
    /// time), beside those the pacer missed itself.
    pub missed: Vec<AtomicU64>,
    /// The live export's view of the stages, if there is one.
    pub export: Option<crate::export::StageHooks>,
    /// A synthetic prompt's length, by the run's tokenizer (what a record
    /// says when the server reports no prompt count).
    pub synthetic_prompt_tokens: u32,
    /// `start_at`: when the pacer is to begin the schedule, ms since the
    /// Unix epoch.
    pub start_at_unix_ms: Option<f64>,
    /// When the pacer began the schedule, on the wall clock: `start_at`,
    /// as nearly as it could.
    pub schedule_start_unix_ms: std::sync::OnceLock<f64>,
    /// Spawns on the runtime the requests the pacer wrote.
    pub adopter: super::adopt::Adopter,
}

impl Ctx {
    /// A request of stage `stage` that its task had counted as sent was
    /// missed after all: no slot or connection within `max_send_lag`.
    pub fn missed(&self, stage: usize) {
        self.missed[stage].fetch_add(1, Ordering::Relaxed);
        self.counters.missed.fetch_add(1, Ordering::Relaxed);
        self.counters.sent.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live counts, for progress lines, the live export and the drain at the end.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub in_flight: AtomicU64,
    pub missed: AtomicU64,
}

impl Counters {
    /// A request (or a session's turn) begins.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// What requests carry: the built-in synthetic prompt, or a dataset's samples.
#[derive(Clone)]
pub struct Workload {
    pub(super) dataset: Option<Arc<Prepared>>,
    /// Units of the dataset: a session's turns or a single sample.
    pub(super) units: Vec<Range<usize>>,
}

impl Workload {
    /// Synthetic prompts of `request.prompt_tokens`.
    pub fn synthetic() -> Workload {
        Workload {
            dataset: None,
            units: Vec::new(),
        }
    }

    /// The samples of a prepared dataset.
    pub fn dataset(prepared: Arc<Prepared>) -> Workload {
        Workload {
            units: prepared.units(),
            dataset: Some(prepared),
        }
    }

    /// Only `shard`'s part of the units: unit I, I + N, … of the dataset's
    /// order (which the seed fixed), so the shards send disjoint prompts
    /// and a trace's samples keep their times. The synthetic prompt is
    /// every shard's.
    pub fn for_shard(mut self, shard: Option<crate::config::Shard>) -> Result<Workload, String> {
        let Some(shard) = shard.filter(|s| s.count > 1 && self.dataset.is_some()) else {
            return Ok(self);
        };
        let all = self.units.len();
        self.units = std::mem::take(&mut self.units)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| shard.owns(*i as u64))
            .map(|(_, u)| u)
            .collect();
        if self.units.is_empty() {
            return Err(format!(
                "shard {}/{}: the dataset has {all} units (samples or sessions), fewer than the shards",
                shard.index, shard.count
            ));
        }
        Ok(self)
    }

    /// The samples of unit `n` (counting on past the end wraps around).
    pub(super) fn unit(&self, n: u64) -> &[Sample] {
        match &self.dataset {
            Some(d) if !self.units.is_empty() => &d.samples[self.units[(n % self.units.len() as u64) as usize].clone()],
            _ => &[],
        }
    }

    /// Requests in unit `n`.
    pub(super) fn unit_len(&self, n: u64) -> u64 {
        if self.dataset.is_none() {
            1
        } else {
            self.unit(n).len() as u64
        }
    }
}

/// How the run learns it should stop.
#[derive(Clone)]
pub struct StopSignal {
    pub(super) flag: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            flag: Arc::new(AtomicBool::new(false)),
            reason: Arc::new(Mutex::new(None)),
        }
    }
}

impl StopSignal {
    /// Ask the run to stop sending, for `reason`.
    pub fn stop(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.to_string());
        }
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Why it was asked, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The part of a stage whose requests are measured (warm-up and cool-down excluded).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    from: Instant,
    until: Option<Instant>,
}

impl Window {
    pub fn of(stage: &Stage, start: Instant) -> Window {
        Window {
            from: start + Duration::from_secs_f64(stage.warmup_s),
            until: stage
                .duration_s
                .map(|d| start + Duration::from_secs_f64((d - stage.cooldown_s).max(0.0))),
        }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && self.until.is_none_or(|u| t < u)
    }
}
