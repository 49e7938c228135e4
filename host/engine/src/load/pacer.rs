//! The pacer thread: walks the stages and sends each open-loop arrival at
//! its scheduled time (sleep, then spin), taking the next encoded unit from
//! the feed; closed-loop stages are handed to their virtual users.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::closed_loop;
use super::feeder::{Feed, Ready};
use super::gauge::{IoProbe, Missed, StageGauge, io_behind};
use super::request::{Launch, Slot, launch};
use super::shape;
use super::shared::{Ctx, StopSignal, Window};
use crate::config::{self, Plan, Stage, StageKind};
use crate::metrics::ScheduleCounts;

/// How long before a send time the pacer stops sleeping and spins. Its
/// sleeps have a 1 ns timer slack and (where allowed) a raised priority
/// ([`raise_pacer_priority`]), so they wake within tens of microseconds; a
/// longer spin bought no accuracy in `tests/bench/loadgen.sh` and cost up
/// to half a core at 5,000 req/s.
const SPIN: Duration = Duration::from_micros(25);

/// Give the calling thread the default scheduling policy and the nice
/// value the process was started with (`nice -n 10 barrage run` stays at
/// 10). The runtime's threads start with it: tokio starts blocking-pool
/// threads from whichever thread first needs one, possibly the pacer, and a
/// thread inherits its creator's priority.
pub fn normal_priority() {
    let param = sched_param(0);
    // SAFETY: plain system call on the calling thread with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    let _ = rustix::process::setpriority_process(None, started_nice());
}

/// A scheduling parameter of `priority`. musl's `sched_param` has more
/// fields than glibc's (for `SCHED_SPORADIC`), which stay zero.
fn sched_param(priority: i32) -> libc::sched_param {
    // SAFETY: `sched_param` is a plain C struct of integers (and, on musl,
    // timespecs), for which all zeros is a valid value.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    param
}

/// The nice value the process was started with: read by the first thread
/// to ask, which is a runtime worker or the pacer before it raises itself,
/// both still at the priority they inherited.
fn started_nice() -> i32 {
    static STARTED: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| rustix::process::getpriority_process(None).unwrap_or(0))
}

/// Put the calling thread (the pacer) ahead of the run's other threads
/// where the process may (root or `CAP_SYS_NICE`): on a busy machine a
/// woken pacer otherwise waits behind the plugin threads or a co-located
/// server, and that wait is send lag. First choice is `SCHED_FIFO` at the
/// lowest real-time priority: it is never preempted by ordinary threads,
/// and its time on the CPU is bounded (a spin of at most [`SPIN`] and one
/// request write per arrival; the kernel's real-time throttling caps the
/// rest). Else nice −20; else the default priority, merely less exact.
fn raise_pacer_priority() {
    started_nice();
    let param = sched_param(1);
    // SAFETY: plain system call on the calling thread with a valid parameter.
    let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    if !fifo {
        let _ = rustix::process::setpriority_process(None, -20);
    }
}

/// Descriptors kept back from connections for everything else the process
/// opens (results files, the plugin engine, the runtime), at most half the limit.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How many connections the process can hold open: the soft descriptor
/// limit, raised to the hard one first (allowed for any user), less what the
/// rest of the process needs. Without such a bound, a client outrunning the
/// server opens connections until `accept`… `connect` fails with "too many
/// open files", and those failures would look like the server's.
pub(super) fn connection_budget() -> usize {
    let soft = barrage_core::descriptors::raise_limit().unwrap_or(1 << 20);
    let budget = soft - RESERVED_DESCRIPTORS.min(soft / 2);
    usize::try_from(budget).unwrap_or(usize::MAX).max(1)
}

/// Take two slow kernel paths out of the run, where they would stall the
/// pacer (it opens connections, and allocates): both were seen blocking it
/// for milliseconds with `perf record -e sched:sched_switch`.
/// - The descriptor table is grown once, here, rather than by doubling as
///   connections open ([`barrage_core::descriptors::grow_table`]).
/// - A page fault in memory eligible for transparent huge pages zeroes 2 MiB
///   at once. Huge pages are turned off for this process.
///
/// Both are best efforts: without them the run is merely less exact.
pub(super) fn quiet_kernel_paths() {
    barrage_core::descriptors::grow_table();
    // SAFETY: a plain prctl on this process with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Sleep to within [`SPIN`] of `t`, then busy-wait the rest. The pacer
/// thread runs with a 1 ns timer slack (see [`pace_stages`]), so its sleeps
/// wake within tens of microseconds instead of the default 50 µs slack plus
/// scheduling; the spin covers the remainder without burning a core between
/// widely spaced arrivals.
/// Returns early once the run is stopped (seen within [`STOP_CHECK`]), so
/// a long gap between arrivals never holds up a stop.
fn pace_until(t: Instant, stop: &StopSignal) {
    loop {
        let now = Instant::now();
        if now >= t || stop.is_stopped() {
            return;
        }
        let left = t - now;
        if left > SPIN + Duration::from_micros(50) {
            std::thread::sleep((left - SPIN).min(STOP_CHECK));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Longest the pacer sleeps without looking for a stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// The next arrival of `arrivals` after `start`, waiting (in schedule time)
/// over stretches where a varying rate has none; none when the schedule is
/// over or the run was stopped meanwhile.
fn next_arrival(arrivals: &mut shape::Arrivals, start: Instant, stop: &StopSignal) -> Option<Duration> {
    loop {
        match arrivals.poll_next() {
            shape::Next::At(offset) => return Some(offset),
            shape::Next::End => return None,
            shape::Next::NotBefore(offset) => {
                pace_until(start + offset, stop);
                if stop.is_stopped() {
                    return None;
                }
            }
        }
    }
}

/// The pacer's state across stages.
struct Pacer<'a> {
    plan: &'a Plan,
    ctx: &'a Arc<Ctx>,
    feed: Arc<Feed>,
    handle: &'a tokio::runtime::Handle,
    stop: &'a StopSignal,
    /// Units of the dataset (0 without one).
    units: u64,
    /// A unit taken off the feed and not sent: a trace stage's that turned
    /// out to belong to the next pass over the dataset (the next stage
    /// sends it), or one an arrival that was missed did not use.
    held: Option<Ready>,
    probe: &'a IoProbe,
}

/// Offer every stage's load; returns what each stage's schedule produced.
pub(super) fn pace_stages(
    plan: &Plan,
    ctx: &Arc<Ctx>,
    feed: Feed,
    handle: &tokio::runtime::Handle,
    stop: &StopSignal,
    probe: &IoProbe,
) -> Vec<ScheduleCounts> {
    // Precise wake-ups for this thread only; without the privilege it is
    // merely less precise.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    // After the feeder is started: threads inherit their creator's priority.
    raise_pacer_priority();
    let mut pacer = Pacer {
        plan,
        ctx,
        feed: Arc::new(feed),
        handle,
        stop,
        units: ctx.workload.units.len() as u64,
        held: None,
        probe,
    };
    // A distributed run's shards all begin their schedules at one instant.
    if let Some(at) = ctx.start_at_unix_ms {
        let left = (at - barrage_core::clock::unix_ms()) / 1000.0;
        if left > 0.0 {
            pace_until(Instant::now() + Duration::from_secs_f64(left), stop);
        }
    }
    let _ = ctx.schedule_start_unix_ms.set(barrage_core::clock::unix_ms());
    let mut scheduled = Vec::new();
    for ((index, stage), &kind) in plan.config.stages.iter().enumerate().zip(&plan.kinds) {
        if let Some(e) = &ctx.export {
            e.started(index);
        }
        let counts = pacer.stage(index, stage, kind);
        if let Some(e) = &ctx.export {
            let mut so_far = counts;
            so_far.scheduled += ctx.followups[index].load(Ordering::Relaxed);
            so_far.missed += ctx.missed[index].load(Ordering::Relaxed);
            e.ended(index, &so_far);
        }
        scheduled.push(counts);
        if stage.pause_after_s > 0.0 && !stop.is_stopped() {
            let until = Instant::now() + Duration::from_secs_f64(stage.pause_after_s);
            while Instant::now() < until && !stop.is_stopped() {
                std::thread::sleep(Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())));
            }
        }
    }
    scheduled
}

impl Pacer<'_> {
    /// Offer stage `index`'s load.
    fn stage(&mut self, index: usize, stage: &Stage, kind: StageKind) -> ScheduleCounts {
        if self.stop.is_stopped() {
            // Stopped before this stage began: its whole schedule is not sent.
            let left = match kind {
                StageKind::Users => 0,
                StageKind::Trace => self.trace_len(stage),
                StageKind::Arrivals => self.arrivals(stage, index).left(),
            };
            return ScheduleCounts {
                scheduled: left,
                not_sent: left,
                ..ScheduleCounts::default()
            };
        }
        let backlog = self.ctx.workers.backlog();
        let gauge = StageGauge::start(self.probe, backlog);
        let start = Instant::now();
        let (mut counts, missed) = match kind {
            StageKind::Users => (
                ScheduleCounts {
                    scheduled: closed_loop::run(
                        self.ctx,
                        &self.feed,
                        self.handle,
                        (index, stage),
                        self.plan.config.shard,
                        start,
                    ),
                    ..ScheduleCounts::default()
                },
                Missed::default(),
            ),
            StageKind::Arrivals | StageKind::Trace => self.open_loop(index, stage, kind, start),
        };
        counts.client = gauge.finish(self.probe, backlog, missed);
        counts
    }

    /// Requests a trace stage sends: one pass over the dataset (this
    /// shard's part of it), or fewer.
    fn trace_len(&self, stage: &Stage) -> u64 {
        let requests = stage.requests.map(|r| match self.plan.config.shard {
            Some(s) => s.owned_in(0, r),
            None => r,
        });
        requests.map_or(self.units, |r| r.min(self.units))
    }

    /// Stage `index`'s arrivals, this shard's part of them.
    fn arrivals(&self, stage: &Stage, index: usize) -> shape::Arrivals {
        let seed = self.plan.config.seed;
        shape::stage_arrivals(stage, seed, index).shard(self.plan.config.shard, seed, index as u64)
    }

    /// An open-loop stage: each arrival (or trace sample) at its time, or
    /// missed when the pacer got to it more than `max_send_lag` late or
    /// the decode backlog is past `max_decode_backlog_mib` (the plugin
    /// threads are that far behind, and each new stream would only add to
    /// what waits; streams in flight still hand their frames over, so
    /// memory stays within the bound and what they bring), or while the I/O
    /// runtime is behind ([`io_behind`]). Never sent in a
    /// burst to catch up: a client that fell behind skips what it could not
    /// send in time. Returns the counts and what was missed for want of capacity.
    fn open_loop(&mut self, index: usize, stage: &Stage, kind: StageKind, start: Instant) -> (ScheduleCounts, Missed) {
        let (ctx, units) = (self.ctx, self.units);
        let window = Window::of(stage, start);
        // Shared by the stage's launches: cloning the stage per arrival
        // would allocate on the pacer.
        let shared_stage = Arc::new(stage.clone());
        let mut counts = ScheduleCounts::default();
        let cap = stage.max_concurrency.map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        let mut arrivals = self.arrivals(stage, index);
        let trace_end = stage.duration_s.map(|d| start + Duration::from_secs_f64(d));
        let mut trace_base: Option<(u64, f64)> = None;
        let mut sent_in_stage = 0u64;
        let mut missed = Missed::default();
        let mut skip_before: Option<Instant> = None;
        let backlog = ctx.workers.backlog();
        loop {
            let (at, ready) = if kind == StageKind::Trace {
                if sent_in_stage >= self.trace_len(stage) {
                    break;
                }
                let Some(ready) = self.held.take().or_else(|| self.feed.next_blocking()) else {
                    break;
                };
                let at_ms = ctx
                    .workload
                    .unit(ready.unit)
                    .first()
                    .and_then(|s| s.at_ms)
                    .unwrap_or(0.0);
                // The stage replays one pass over the dataset; times are
                // from the first unit it sends (0 when that is the first sample).
                let (first_unit, base) =
                    *trace_base.get_or_insert((ready.unit, if ready.unit % units.max(1) == 0 { 0.0 } else { at_ms }));
                let at = start + Duration::from_secs_f64(((at_ms - base).max(0.0)) / 1000.0);
                if ready.unit >= first_unit + units || trace_end.is_some_and(|e| at >= e) {
                    self.held = Some(ready);
                    break;
                }
                (at, Some(ready))
            } else {
                let Some(offset) = next_arrival(&mut arrivals, start, self.stop) else {
                    if self.stop.is_stopped() {
                        counts.not_sent = arrivals.left();
                    }
                    break;
                };
                (start + offset, self.held.take().or_else(|| self.feed.next_blocking()))
            };
            pace_until(at, self.stop);
            let Some(ready) = ready else {
                counts.not_sent = 1 + arrivals.left();
                break;
            };
            if self.stop.is_stopped() {
                counts.not_sent = 1 + match kind {
                    StageKind::Trace => self.trace_len(stage).saturating_sub(sent_in_stage + 1),
                    _ => arrivals.left(),
                };
                break;
            }
            counts.scheduled += 1;
            sent_in_stage += 1;
            // Once one arrival is too late, so is everything due before now:
            // the pacer drops what it is behind on and goes on at the
            // schedule's present, rather than stay `max_send_lag` behind.
            let now = Instant::now();
            let late = now.saturating_duration_since(at) > ctx.max_send_lag || skip_before.is_some_and(|t| at < t);
            if late {
                skip_before = Some(now);
            }
            let full = !late && backlog.bytes() > ctx.max_backlog;
            let behind = !late && !full && io_behind(self.probe, self.handle);
            if late || full || behind {
                counts.missed += 1;
                missed.backlog += u64::from(full);
                missed.io += u64::from(behind);
                ctx.counters.missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // A trace sample is its own arrival; otherwise the unit goes
                // to the next arrival, so no prompt is skipped.
                if kind != StageKind::Trace {
                    self.held = Some(ready);
                }
                continue;
            }
            let slot = match (&cap, stage.on_cap) {
                (None, _) => Slot::Free,
                (Some(sem), config::CapPolicy::Drop) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Slot::Held(p),
                    Err(_) => {
                        counts.dropped += 1;
                        continue;
                    }
                },
                (Some(sem), config::CapPolicy::Queue) => Slot::Wait(sem.clone()),
            };
            let place = Launch {
                stage_index: index,
                stage: shared_stage.clone(),
                at,
                window,
                slot,
            };
            launch(ctx, self.handle, ready, place);
        }
        counts.scheduled += counts.not_sent;
        (counts, missed)
    }
}
