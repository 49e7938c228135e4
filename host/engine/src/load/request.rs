//! One unit of work on the runtime: its requests sent in order (a
//! session's later turns each after the previous response and its think
//! time), each turned into one record for the records thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use barrage_plugin_host::StreamOutcome;
use barrage_plugin_host::prepare::Sample;
use barrage_plugin_host::stream::DecodeSink;

use super::adopt;
use super::feeder::Ready;
use super::shared::{Ctx, Window};
use crate::config::Stage;
use crate::metrics::{Record, RequestInfo, Response};

/// A unit's place in the schedule, fixed when it is launched.
pub(super) struct Launch {
    pub stage_index: usize,
    pub stage: Arc<Stage>,
    /// When its first request was due.
    pub at: Instant,
    pub window: Window,
    pub slot: Slot,
}

/// How a unit's sending ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnitEnd {
    /// Every request of the unit was sent.
    Sent,
    /// It stopped early: a stop, a think time cut by cancellation, or
    /// `place` saying no.
    Stopped,
    /// A request could not be sent within `max_send_lag_ms` (no slot or
    /// connection came free): it and the unit's later turns were not sent.
    Missed,
}

/// A request's place under an open-loop stage's concurrency cap.
pub(super) enum Slot {
    /// No cap.
    Free,
    /// A slot taken at arrival.
    Held(tokio::sync::OwnedSemaphorePermit),
    /// Wait for a slot before sending.
    Wait(Arc<tokio::sync::Semaphore>),
}

/// Start a unit on the runtime: its first request now (see [`start_here`]),
/// a session's further turns each after the previous response and the think time.
pub(super) fn launch(ctx: &Arc<Ctx>, handle: &tokio::runtime::Handle, ready: Ready, launch: Launch) {
    ctx.counters.start();
    let adopter = &ctx.adopter;
    let ctx = ctx.clone();
    adopt::start_here(handle, adopter, async move {
        let send_by = launch.at + ctx.max_send_lag;
        let (_permit, mut queue_wait) = match launch.slot {
            Slot::Free => (None, None),
            Slot::Held(p) => (Some(p), None),
            Slot::Wait(sem) => match tokio::time::timeout_at(send_by.into(), sem.acquire_owned()).await {
                Ok(p) => (p.ok(), Some(launch.at.elapsed())),
                Err(_) => {
                    ctx.missed(launch.stage_index);
                    ctx.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            },
        };
        send_unit(&ctx, ready, &launch.stage, |k| {
            let scheduled = if k == 0 {
                launch.at
            } else {
                ctx.followups[launch.stage_index].fetch_add(1, Ordering::Relaxed);
                ctx.counters.sent.fetch_add(1, Ordering::Relaxed);
                Instant::now()
            };
            Some(Turn {
                stage: launch.stage_index,
                scheduled,
                window: launch.window,
                queue_wait: queue_wait.take(),
            })
        })
        .await;
        ctx.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Where a unit's turn sits when it is about to go.
pub(super) struct Turn {
    pub stage: usize,
    pub scheduled: Instant,
    pub window: Window,
    pub queue_wait: Option<Duration>,
}

/// Send a unit's requests in order; `place(k)` says where turn `k` sits
/// when it is about to go, or that it must not go.
pub(super) async fn send_unit(
    ctx: &Ctx,
    ready: Ready,
    stage: &Stage,
    mut place: impl FnMut(usize) -> Option<Turn>,
) -> UnitEnd {
    let samples = ctx.workload.unit(ready.unit);
    for (k, encoded) in ready.encoded.into_iter().enumerate() {
        let sample = samples.get(k);
        if k > 0 && (!think(ctx, think_time(sample, stage)).await || ctx.stopping.load(Ordering::SeqCst)) {
            return UnitEnd::Stopped;
        }
        let Some(turn) = place(k) else {
            return UnitEnd::Stopped;
        };
        let info = RequestInfo {
            id: ready.first_id + k as u64,
            stage: turn.stage,
            scheduled: turn.scheduled,
            measured: turn.window.contains(turn.scheduled),
            queue_wait: turn.queue_wait,
            sample: sample.map(|s| s.id),
            session: sample.and_then(|s| s.session).map(|t| t.session),
            prompt_tokens: match sample {
                Some(s) => s.prompt_tokens,
                None => Some(ctx.synthetic_prompt_tokens),
            },
            // What the encode said, filled in as it is sent.
            codec_prompt_tokens: None,
            output: barrage_core::types::OutputKind::Tokens,
        };
        if !send_one(ctx, &info, encoded).await {
            ctx.missed(info.stage);
            return UnitEnd::Missed;
        }
    }
    UnitEnd::Sent
}

/// The pause before a session's turn after the first: the sample's think
/// time, else the stage's.
fn think_time(sample: Option<&Sample>, stage: &Stage) -> Duration {
    let ms = sample
        .and_then(|s| s.session)
        .and_then(|t| t.think_time_ms)
        .unwrap_or(stage.think_time_ms);
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// Sleep `pause` before a session's next turn; false if the run's in-flight
/// requests were cancelled meanwhile (the grace period after a stop ran
/// out), so a long think time never holds up the end of a run.
pub(super) async fn think(ctx: &Ctx, pause: Duration) -> bool {
    let mut cancel = ctx.cancel.clone();
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = cancel.wait_for(|c| *c) => false,
    }
}

/// Send one request and hand its record to the records thread; false
/// when it was not sent within `max_send_lag_ms` of its time (no record).
async fn send_one(
    ctx: &Ctx,
    info: &RequestInfo,
    encoded: Result<barrage_core::types::EncodedRequest, barrage_plugin_host::PluginFailure>,
) -> bool {
    let record = match encoded {
        Ok(req) => {
            let info = &RequestInfo {
                output: req.output,
                codec_prompt_tokens: req.prompt_tokens,
                ..*info
            };
            let mut cancel = ctx.cancel.clone();
            let sink = DecodeSink::new(&ctx.workers, &req, ctx.options).max_frame(ctx.max_frame);
            // A session's later turn, or a virtual user's request, is
            // scheduled when it is placed: its wait is bounded from then.
            let send_by = info.scheduled + ctx.max_send_lag;
            let (exchange, decoding) = ctx.transport.execute(&req, info.id, sink, send_by, &mut cancel).await;
            if matches!(exchange.ending, crate::transport::Ending::Missed) {
                return false;
            }
            // A stream's record is made on the plugin thread that finishes
            // it: waking this task for it cost the client more than any
            // other hand-over. It counts as in flight until it is handed on,
            // so the drain at the end of a run waits for it.
            let (origin, malformed) = (ctx.origin, ctx.malformed);
            let records = ctx.records.clone();
            let counters = ctx.counters.clone();
            let info = *info;
            counters.in_flight.fetch_add(1, Ordering::SeqCst);
            let emit = move |decoded| {
                let response = Response {
                    exchange,
                    decoded,
                    malformed,
                };
                deliver(&records, Record::sent(&info, origin, &response));
                counters.done.fetch_add(1, Ordering::Relaxed);
                counters.in_flight.fetch_sub(1, Ordering::SeqCst);
            };
            match decoding {
                Some(d) => {
                    if let Err((d, emit)) = d.then(emit) {
                        emit(d.outcome().await);
                    }
                }
                None => emit(StreamOutcome::default()),
            }
            return true;
        }
        Err(failure) => Record::not_encoded(info, ctx.origin, &failure),
    };
    let _ = ctx.records.send(record).await;
    ctx.counters.done.fetch_add(1, Ordering::Relaxed);
    true
}

/// Hand `record` to the records thread from wherever it was made: a plugin
/// thread waits while the queue is full (the records thread is behind, and
/// decoding more would only add to what waits), a runtime task sends it on
/// a task of its own rather than block the runtime.
fn deliver(records: &tokio::sync::mpsc::Sender<Record>, record: Record) {
    use tokio::sync::mpsc::error::TrySendError;
    match records.try_send(record) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(record)) => match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let records = records.clone();
                runtime.spawn(async move {
                    let _ = records.send(record).await;
                });
            }
            Err(_) => {
                let _ = records.blocking_send(record);
            }
        },
    }
}
