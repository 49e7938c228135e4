//! The load engine: turns stages into requests at exact times, sends them,
//! and streams every result to disk.
//!
//! Threads: a **pacer** thread (plain OS thread) sleeps and then spins to
//! each scheduled send time and hands the request to the tokio runtime; a
//! **feeder** thread keeps encoded requests ready ahead of the schedule
//! (encoding runs on the plugin threads); the **records** thread writes
//! `records.jsonl` and keeps the aggregates. Request tasks on the runtime do
//! the I/O and only the I/O.

pub mod expr;
pub mod shape;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config;
pub use crate::config::{RunConfig, RunConfigError, Stage};
use shape::ShapeKind;

use crate::metrics::{Record, RunFacts, ScheduleCounts, Summary};
use crate::results::RecordSink;
use crate::transport::Transport;
use barrage_core::types::{DecodeOptions, EncodedRequest, Generation, Prompt, RequestSpec};
use barrage_plugin_host::prepare::{Prepared, Sample};
use barrage_plugin_host::{CodecPlugin, CodecWorkers};

/// Why a run could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results directory could not be written.
    #[error("cannot write results to {path}: {source}")]
    Output {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Shared state of a run.
struct Ctx {
    origin: Instant,
    transport: Transport,
    workers: CodecWorkers,
    options: DecodeOptions,
    records: mpsc::Sender<Record>,
    cancel: watch::Receiver<bool>,
    stopping: Arc<AtomicBool>,
    sent: AtomicU64,
    done: AtomicU64,
    failed: Arc<AtomicU64>,
    in_flight: AtomicU64,
    workload: Workload,
    /// Per stage: turns after a session's first, sent by the session's own
    /// task; they add to the stage's schedule.
    followups: Vec<AtomicU64>,
}

/// What requests carry: the built-in synthetic prompt, or a dataset's samples.
pub struct Workload {
    dataset: Option<Arc<Prepared>>,
    /// Units of the dataset: a session's turns or a single sample.
    units: Vec<std::ops::Range<usize>>,
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

    /// The samples of unit `n` (counting on past the end wraps around).
    fn unit(&self, n: u64) -> &[Sample] {
        match &self.dataset {
            Some(d) if !self.units.is_empty() => &d.samples[self.units[(n % self.units.len() as u64) as usize].clone()],
            _ => &[],
        }
    }

    /// Requests in unit `n`.
    fn unit_len(&self, n: u64) -> u64 {
        if self.dataset.is_none() {
            1
        } else {
            self.unit(n).len() as u64
        }
    }
}

/// A unit of work ready to send: one request, or a session's turns, encoded.
struct Ready {
    /// Position in the feed (dataset units wrap around after the last).
    unit: u64,
    /// Id of the first request; turns take the next ones.
    first_id: u64,
    encoded: Vec<Option<EncodedRequest>>,
}

/// How the run learns it should stop.
#[derive(Clone)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
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

    fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `words` words drawn from request `id`'s seeded stream; a longer draw
/// starts with the shorter one.
fn words(seed: u64, id: u64, words: usize) -> String {
    const WORDS: &[&str] = &[
        "explain",
        "how",
        "a",
        "server",
        "schedules",
        "requests",
        "under",
        "load",
        "and",
        "why",
        "latency",
        "grows",
        "when",
        "the",
        "queue",
        "fills",
        "with",
        "long",
        "prompts",
        "from",
        "many",
        "users",
        "at",
        "once",
    ];
    let mut rng = barrage_core::rng::Rng::stream(seed ^ 0x5EED, id);
    (0..words)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The synthetic prompt of request `id`: `tokens` tokens of the run's
/// tokenizer, made of words from a seeded stream (datasets replace this).
/// With the approximate `words` tokenizer a word is a token; with a real one
/// the words are encoded, cut at `tokens` ids and decoded, and the cut is
/// moved by a token or two in the rare case the text re-encodes to another
/// length. Runs ahead of the schedule (the feeder thread), never on the
/// timed path of an open-loop request.
fn prompt(seed: u64, id: u64, tokens: u32, tokenizer: &dyn barrage_plugin_host::tokenizer::Tokenizer) -> String {
    let n = tokens as usize;
    if !tokenizer.exact() || n == 0 {
        return words(seed, id, n);
    }
    let mut draw = n + 8;
    let ids = loop {
        let ids = tokenizer.encode(&words(seed, id, draw));
        if ids.len() >= n + 3 {
            break ids;
        }
        draw *= 2;
    };
    let candidates = [n, n + 1, n.saturating_sub(1), n + 2, n.saturating_sub(2), n + 3];
    candidates
        .iter()
        .map(|&k| tokenizer.decode(&ids[..k]))
        .find(|text| tokenizer.count(text) == tokens)
        .unwrap_or_else(|| tokenizer.decode(&ids[..n]))
}

/// What request `id` asks: `sample`'s prompt and output length, or the synthetic prompt.
fn spec(
    config: &RunConfig,
    tokenizer: &dyn barrage_plugin_host::tokenizer::Tokenizer,
    id: u64,
    sample: Option<&Sample>,
) -> RequestSpec {
    let r = &config.request;
    let (prompt, max_tokens, extra) = match sample {
        Some(s) => (
            s.prompt.clone(),
            s.output_tokens.unwrap_or(r.max_tokens),
            s.extra.clone(),
        ),
        // A plain text prompt: chat codecs wrap it in a user message themselves,
        // so the engine need not guess the codec's kind from its name.
        None => (
            Prompt::Text(prompt(config.seed, id, r.prompt_tokens, tokenizer)),
            r.max_tokens,
            None,
        ),
    };
    RequestSpec {
        id,
        model: config.model.clone(),
        prompt,
        generation: Generation {
            max_tokens: Some(max_tokens),
            min_tokens: None,
            ignore_eos: r.ignore_eos,
            temperature: None,
            stream: r.stream,
            include_usage: true,
        },
        extra,
    }
}

/// How long before a send time the pacer stops sleeping and spins. Its
/// sleeps have a 1 ns timer slack and (where allowed) a raised priority
/// ([`raise_pacer_priority`]), so they wake within tens of microseconds; a
/// longer spin bought no accuracy in `tests/bench/loadgen.sh` and cost up
/// to half a core at 5,000 req/s.
const SPIN: Duration = Duration::from_micros(25);

/// Give the calling thread the default scheduling policy and priority. The
/// runtime's threads start with it: tokio starts blocking-pool threads from
/// whichever thread first needs one, possibly the pacer, and a thread
/// inherits its creator's priority.
pub fn normal_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call on the calling thread with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    let _ = rustix::process::setpriority_process(None, 0);
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
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system call on the calling thread with a valid parameter.
    let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    if !fifo {
        let _ = rustix::process::setpriority_process(None, -20);
    }
}

/// Take two slow kernel paths out of the run, where they would stall the
/// pacer (it opens connections, and allocates): both were seen blocking it
/// for milliseconds with `perf record -e sched:sched_switch`.
/// - The descriptor table grows by doubling when a new descriptor does not
///   fit, and each growth waits for an RCU grace period. It is grown once,
///   here, to the descriptor limit (at most 65,536 entries, 512 KiB).
/// - A page fault in memory eligible for transparent huge pages zeroes 2 MiB
///   at once. Huge pages are turned off for this process.
///
/// Both are best efforts: without them the run is merely less exact.
fn quiet_kernel_paths() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536)
        .min(65_536);
    if let Some(top) = limit.checked_sub(1).and_then(|t| libc::c_int::try_from(t).ok()) {
        // SAFETY: duplicates stderr to the lowest free descriptor >= `top`
        // and closes that new descriptor again; no other descriptor is touched.
        unsafe {
            let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, top);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
    // SAFETY: a plain prctl on this process with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Sleep to within [`SPIN`] of `t`, then busy-wait the rest. The pacer
/// thread runs with a 1 ns timer slack (see [`pace_stages`]), so its sleeps
/// wake within tens of microseconds instead of the default 50 µs slack plus
/// scheduling; the spin covers the remainder without burning a core between
/// widely spaced arrivals.
fn pace_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SPIN + Duration::from_micros(50) {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Run `config` against `target` with `plugin`, writing into `dir`.
pub async fn run(
    config: RunConfig,
    plugin: Arc<CodecPlugin>,
    workload: Workload,
    target: &str,
    dir: &Path,
    stop: StopSignal,
    progress: bool,
) -> Result<Summary, anyhow::Error> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Output {
        path: dir.display().to_string(),
        source,
    })?;
    let api_key = match &config.api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .map_err(|_| anyhow::anyhow!("api_key_env: the environment variable `{var}` is not set"))?,
        ),
        None => None,
    };
    let transport = Transport::new(
        target,
        &crate::transport::TransportOptions {
            headers: config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            api_key,
            max_idle_per_host: config.connections,
            max_connections: config.max_connections,
            timeout: Duration::from_secs_f64(config.request.timeout_s),
            http2: config.http2,
            tls: config.tls.clone(),
        },
    )?;
    quiet_kernel_paths();
    let workers = CodecWorkers::start(plugin.clone(), config.plugin_threads).map_err(RunError::Thread)?;
    let (records_tx, records_rx) = mpsc::channel::<Record>();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    // Instant and CLOCK_MONOTONIC are the same clock on Linux; noting both
    // lets records be compared with another process's monotonic times.
    let origin = Instant::now();
    let origin_ns = barrage_core::clock::monotonic_ns();
    let metrics_options = config.report.metrics_options().map_err(|m| anyhow::anyhow!(m))?;
    let dataset = workload.dataset.as_ref().map(|d| d.stats());
    let meta = write_meta(dir, &config, &plugin, target, origin_ns, dataset)?;
    let ctx = Arc::new(Ctx {
        origin,
        transport,
        workers,
        options: DecodeOptions { want_text: false },
        records: records_tx,
        cancel: cancel_rx,
        stopping: stop.flag.clone(),
        sent: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: Arc::new(AtomicU64::new(0)),
        in_flight: AtomicU64::new(0),
        workload,
        followups: config.stages.iter().map(|_| AtomicU64::new(0)).collect(),
    });

    // The records thread: writes each record as it completes.
    let mut sink = RecordSink::create(dir, config.stages.len(), metrics_options)?;
    let ttft_p50 = Arc::new(AtomicU64::new(u64::MAX));
    let writer = {
        // Not the whole context: the records channel closes when the last
        // context goes, and this thread waits for that.
        let failed_count = ctx.failed.clone();
        let stop = stop.clone();
        let max_error_rate = config.max_error_rate;
        let ttft_p50 = ttft_p50.clone();
        std::thread::Builder::new()
            .name("barrage-records".into())
            .spawn(move || {
                let mut io_error = None;
                let (mut finished, mut failed) = (0u64, 0u64);
                loop {
                    let record = match records_rx.try_recv() {
                        Ok(r) => r,
                        Err(mpsc::TryRecvError::Empty) => {
                            // Idle: put everything on disk, so a hard stop loses nothing.
                            let _ = sink.flush();
                            match records_rx.recv() {
                                Ok(r) => r,
                                Err(_) => break,
                            }
                        }
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    };
                    finished += 1;
                    if record.status.is_failure() {
                        failed += 1;
                        failed_count.fetch_add(1, Ordering::Relaxed);
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
            .map_err(RunError::Thread)?
    };

    let progress_task = progress.then(|| {
        let ctx = ctx.clone();
        let ttft = ttft_p50.clone();
        tokio::spawn(async move {
            use std::io::IsTerminal;
            let tty = std::io::stderr().is_terminal();
            let mut tick = tokio::time::interval(Duration::from_millis(if tty { 250 } else { 1000 }));
            tick.tick().await;
            loop {
                tick.tick().await;
                let elapsed = ctx.origin.elapsed().as_secs_f64();
                let sent = ctx.sent.load(Ordering::Relaxed);
                let p50 = ttft.load(Ordering::Relaxed);
                let p50 = if p50 == u64::MAX {
                    "-".to_string()
                } else {
                    format!("{:.1} ms", p50 as f64 / 1000.0)
                };
                let line = format!(
                    "[{elapsed:7.1}s] sent {sent}  done {}  failed {}  rate {:.1}/s  in flight {}  ttft p50 {p50}",
                    ctx.done.load(Ordering::Relaxed),
                    ctx.failed.load(Ordering::Relaxed),
                    sent as f64 / elapsed.max(1e-9),
                    ctx.in_flight.load(Ordering::Relaxed),
                );
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        })
    });

    // The pacer runs on its own thread; it hands requests to this runtime.
    let handle = tokio::runtime::Handle::current();
    let pacer = {
        let ctx = ctx.clone();
        let config = config.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("barrage-pacer".into())
            .spawn(move || pace_stages(&config, &ctx, &handle, &stop))
            .map_err(RunError::Thread)?
    };
    let mut scheduled = tokio::task::spawn_blocking(move || pacer.join().unwrap_or_default())
        .await
        .unwrap_or_default();

    // Drain: let in-flight requests finish; after a stop, only for the grace period.
    let grace = Duration::from_secs_f64(config.grace_period_s);
    let drain_start = Instant::now();
    while ctx.in_flight.load(Ordering::SeqCst) > 0 {
        if stop.is_stopped() && drain_start.elapsed() >= grace {
            let _ = cancel_tx.send(true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(p) = progress_task {
        p.abort();
        eprintln!();
    }
    let duration_s = origin.elapsed().as_secs_f64();
    for (counts, followups) in scheduled.iter_mut().zip(&ctx.followups) {
        counts.scheduled += followups.load(Ordering::Relaxed);
    }
    // The last context closes the records channel (the feeder thread drops
    // its copy once the pacer is gone).
    drop(ctx);
    let (sink, io_error) = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the records thread panicked"))?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    let infos: Vec<_> = config.stages.iter().map(Stage::info).collect();
    let facts = RunFacts {
        started_unix_ms: meta.started_unix_ms,
        duration_s,
        stopped: stop.is_stopped(),
        stop_reason: stop.reason(),
        complete: true,
        target: meta.target.clone(),
        codec: meta.plugin.name.clone(),
        seed: config.seed,
        shards: 1,
    };
    let summary = sink
        .aggregator
        .summary(&dir.display().to_string(), facts, &infos, &scheduled);
    crate::results::write_json(&dir.join(crate::results::SUMMARY), &summary)?;
    Ok(summary)
}

/// The part of a stage whose requests are measured (warm-up and cool-down excluded).
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Option<Instant>,
}

impl Window {
    fn of(stage: &Stage, start: Instant) -> Window {
        Window {
            from: start + Duration::from_secs_f64(stage.warmup_s),
            until: stage
                .duration_s
                .map(|d| start + Duration::from_secs_f64((d - stage.cooldown_s).max(0.0))),
        }
    }

    fn contains(&self, t: Instant) -> bool {
        t >= self.from && self.until.is_none_or(|u| t < u)
    }
}

/// A request's place under an open-loop stage's concurrency cap.
enum Slot {
    /// No cap.
    Free,
    /// A slot taken at arrival.
    Held(tokio::sync::OwnedSemaphorePermit),
    /// Wait for a slot before sending.
    Wait(Arc<tokio::sync::Semaphore>),
}

/// Offer every stage's load; returns what each stage's schedule produced.
fn pace_stages(
    config: &RunConfig,
    ctx: &Arc<Ctx>,
    handle: &tokio::runtime::Handle,
    stop: &StopSignal,
) -> Vec<ScheduleCounts> {
    // Precise wake-ups for this thread only; without the privilege it is
    // merely less precise.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let mut scheduled = Vec::new();
    // Encoding runs ahead of the schedule, on the feeder thread, fed by this channel.
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Ready>(1024);
    {
        let ctx = ctx.clone();
        let config = config.clone();
        let _ = std::thread::Builder::new()
            .name("barrage-feeder".into())
            .spawn(move || {
                let tokenizer = ctx.workers.plugin().tokenizer();
                // The feeder encodes with an instance of its own: a round
                // trip per request through the plugin threads, busy decoding
                // streams, could not keep up with thousands of arrivals a second.
                let mut instance: Option<barrage_plugin_host::codec::CodecInstance> = None;
                let mut next_id = 0u64;
                for unit in 0.. {
                    let samples = ctx.workload.unit(unit);
                    let n = ctx.workload.unit_len(unit);
                    let encoded = (0..n)
                        .map(|k| {
                            let sample = samples.get(k as usize);
                            let spec = spec(&config, tokenizer.as_ref(), next_id + k, sample);
                            // A trap poisons the instance; the next request gets a new one.
                            if instance.as_ref().is_none_or(|i| i.is_poisoned()) {
                                instance = ctx.workers.plugin().instance().ok();
                            }
                            instance.as_mut().and_then(|i| i.encode(spec).ok())
                        })
                        .collect();
                    let ready = Ready {
                        unit,
                        first_id: next_id,
                        encoded,
                    };
                    next_id += n;
                    if ready_tx.send(ready).is_err() {
                        return;
                    }
                }
            });
    }
    // After the feeder is started: threads inherit their creator's priority.
    raise_pacer_priority();
    let units = ctx.workload.units.len() as u64;
    // A unit taken off the feed by a trace stage that turned out to belong to
    // the next pass over the dataset: the next stage sends it.
    let mut held: Option<Ready> = None;
    for (index, stage) in config.stages.iter().enumerate() {
        let closed_loop = stage.shape == ShapeKind::Concurrency
            || (stage.shape == ShapeKind::Ramp && stage.from_concurrency.is_some());
        if stop.is_stopped() {
            // Stopped before this stage began: its whole schedule is not sent.
            let left = match stage.shape {
                _ if closed_loop => 0,
                ShapeKind::Trace => stage.requests.map_or(units, |r| r.min(units)),
                _ => shape::stage_arrivals(stage, config.seed, index).count() as u64,
            };
            scheduled.push(ScheduleCounts {
                scheduled: left,
                dropped: 0,
                not_sent: left,
            });
            continue;
        }
        let start = Instant::now();
        let window = Window::of(stage, start);
        let mut counts = ScheduleCounts::default();
        if closed_loop {
            counts.scheduled = run_closed_loop(config, ctx, handle, index, stage, start);
        } else {
            let cap = stage.max_concurrency.map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
            let mut arrivals = shape::stage_arrivals(stage, config.seed, index);
            let trace_end = stage.duration_s.map(|d| start + Duration::from_secs_f64(d));
            let mut trace_base: Option<(u64, f64)> = None;
            let mut sent_in_stage = 0u64;
            loop {
                let (at, ready) = if stage.shape == ShapeKind::Trace {
                    if stage.requests.is_some_and(|r| sent_in_stage >= r) {
                        break;
                    }
                    let Some(ready) = held.take().or_else(|| ready_rx.recv().ok()) else {
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
                    let (first_unit, base) = *trace_base
                        .get_or_insert((ready.unit, if ready.unit % units.max(1) == 0 { 0.0 } else { at_ms }));
                    let at = start + Duration::from_secs_f64(((at_ms - base).max(0.0)) / 1000.0);
                    if ready.unit >= first_unit + units || trace_end.is_some_and(|e| at >= e) {
                        held = Some(ready);
                        break;
                    }
                    (at, Ok(ready))
                } else {
                    let Some(offset) = arrivals.next() else { break };
                    (start + offset, held.take().map_or_else(|| ready_rx.recv(), Ok))
                };
                pace_until(at);
                let Ok(ready) = ready else {
                    counts.not_sent = 1 + arrivals.count() as u64;
                    break;
                };
                if stop.is_stopped() {
                    counts.not_sent = 1 + match stage.shape {
                        ShapeKind::Trace => stage
                            .requests
                            .map_or(units, |r| r.min(units))
                            .saturating_sub(sent_in_stage + 1),
                        _ => arrivals.count() as u64,
                    };
                    break;
                }
                counts.scheduled += 1;
                sent_in_stage += 1;
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
                launch(ctx, handle, ready, index, stage, at, window, slot);
            }
            counts.scheduled += counts.not_sent;
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

/// Where a request came from in the dataset, for its record.
#[derive(Clone, Copy)]
struct Origin {
    sample: Option<u64>,
    session: Option<u64>,
}

impl Origin {
    fn of(sample: Option<&Sample>) -> Origin {
        Origin {
            sample: sample.map(|s| s.id),
            session: sample.and_then(|s| s.session).map(|t| t.session),
        }
    }
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
async fn think(ctx: &Ctx, pause: Duration) -> bool {
    let mut cancel = ctx.cancel.clone();
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = cancel.wait_for(|c| *c) => false,
    }
}

/// Start a unit on the runtime: its first request now, a session's further
/// turns each after the previous response and the think time.
#[allow(clippy::too_many_arguments)]
fn launch(
    ctx: &Arc<Ctx>,
    handle: &tokio::runtime::Handle,
    ready: Ready,
    stage_index: usize,
    stage: &Stage,
    at: Instant,
    window: Window,
    slot: Slot,
) {
    ctx.in_flight.fetch_add(1, Ordering::SeqCst);
    ctx.sent.fetch_add(1, Ordering::Relaxed);
    let ctx = ctx.clone();
    let stage = stage.clone();
    start_here(handle, async move {
        let (_permit, queue_wait) = match slot {
            Slot::Free => (None, None),
            Slot::Held(p) => (Some(p), None),
            Slot::Wait(sem) => {
                let p = sem.acquire_owned().await.ok();
                (p, Some(at.elapsed()))
            }
        };
        let samples = ctx.workload.unit(ready.unit);
        let mut scheduled = at;
        for (k, encoded) in ready.encoded.into_iter().enumerate() {
            let sample = samples.get(k);
            if k > 0 {
                if !think(&ctx, think_time(sample, &stage)).await || ctx.stopping.load(Ordering::SeqCst) {
                    break;
                }
                scheduled = Instant::now();
                ctx.followups[stage_index].fetch_add(1, Ordering::Relaxed);
                ctx.sent.fetch_add(1, Ordering::Relaxed);
            }
            let wait = if k == 0 { queue_wait } else { None };
            let id = ready.first_id + k as u64;
            send_one(
                &ctx,
                id,
                stage_index,
                scheduled,
                window,
                wait,
                encoded,
                Origin::of(sample),
            )
            .await;
        }
        ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Poll `task` once on this thread, then hand it to the runtime. On the
/// pacer this writes the request to its connection at the scheduled time
/// (a direct HTTP/1.1 connection is driven by the exchange itself), instead
/// of whenever a busy runtime worker gets to a newly spawned task: under
/// load that wait, not the pacer, was most of the send lag. The first poll
/// uses a no-op waker; the runtime polls the task again at once, with its
/// own, so no wake-up is lost.
fn start_here(handle: &tokio::runtime::Handle, task: impl std::future::Future<Output = ()> + Send + 'static) {
    let _runtime = handle.enter();
    let mut task = Box::pin(task);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if task.as_mut().poll(&mut cx).is_pending() {
        handle.spawn(task);
    }
}

/// Send one request and hand its record to the records thread.
#[allow(clippy::too_many_arguments)]
async fn send_one(
    ctx: &Ctx,
    id: u64,
    stage: usize,
    scheduled: Instant,
    window: Window,
    queue_wait: Option<Duration>,
    encoded: Option<EncodedRequest>,
    origin: Origin,
) {
    let record = match encoded {
        Some(req) => {
            let mut cancel = ctx.cancel.clone();
            let ex = ctx
                .transport
                .execute(&req, id, &ctx.workers, ctx.options, &mut cancel)
                .await;
            Record::from_exchange(id, stage, ctx.origin, scheduled, &ex)
        }
        None => {
            let now = Instant::now();
            let ex = crate::transport::Exchange {
                sent: now,
                slot_wait: None,
                connection: None,
                headers_at: None,
                first_byte: None,
                end: now,
                status: None,
                version: None,
                ending: crate::transport::Ending::Complete,
                bytes_received: 0,
                bytes_sent: 0,
                decoded: barrage_plugin_host::StreamOutcome {
                    failure: Some(barrage_plugin_host::PluginFailure {
                        plugin: ctx.workers.plugin().name().to_string(),
                        kind: barrage_plugin_host::FailureKind::Returned,
                        message: "the codec could not encode this request".into(),
                    }),
                    ..Default::default()
                },
            };
            Record::from_exchange(id, stage, ctx.origin, scheduled, &ex)
        }
    };
    let mut record = record;
    record.measured = window.contains(scheduled);
    record.queue_wait_ms = queue_wait.map(|d| d.as_secs_f64() * 1000.0);
    record.sample = origin.sample;
    record.session = origin.session;
    let _ = ctx.records.send(record);
    ctx.done.fetch_add(1, Ordering::Relaxed);
}

/// `concurrency` virtual users until the stage's duration or request count.
/// With a dataset, each user takes the next unit and sends a session's
/// turns in order.
fn run_closed_loop(
    config: &RunConfig,
    ctx: &Arc<Ctx>,
    handle: &tokio::runtime::Handle,
    index: usize,
    stage: &Stage,
    start: Instant,
) -> u64 {
    let users = stage.concurrency.unwrap_or(1).max(stage.from_concurrency.unwrap_or(0));
    let window = Window::of(stage, start);
    let deadline = stage.duration_s.map(|d| start + Duration::from_secs_f64(d));
    let budget = Arc::new(AtomicU64::new(stage.requests.unwrap_or(u64::MAX)));
    // Ids for this stage come after every id the open-loop feeder could have
    // handed out so far; they only need to be unique.
    let ids = Arc::new(AtomicU64::new((1u64 << 40) + ((index as u64) << 32)));
    let next_unit = Arc::new(AtomicU64::new(0));
    let launched = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for user in 0..users {
        let ctx = ctx.clone();
        let config = config.clone();
        let stage_cfg = stage.clone();
        let budget = budget.clone();
        let ids = ids.clone();
        let next_unit = next_unit.clone();
        let launched = launched.clone();
        let stopping = ctx.stopping.clone();
        tasks.push(handle.spawn(async move {
            let over = || stopping.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d);
            let mut first = true;
            loop {
                if !first {
                    let think = Duration::from_secs_f64(stage_cfg.think_time_ms / 1000.0);
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
                first = false;
                if over() {
                    return;
                }
                // A concurrency ramp: users above the current target wait.
                if user >= shape::users_at(&stage_cfg, start.elapsed().as_secs_f64()) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    first = true;
                    continue;
                }
                let unit = next_unit.fetch_add(1, Ordering::Relaxed);
                let samples = ctx.workload.unit(unit);
                for k in 0..ctx.workload.unit_len(unit) as usize {
                    let sample = samples.get(k);
                    if k > 0 && (!think(&ctx, think_time(sample, &stage_cfg)).await || over()) {
                        return;
                    }
                    if budget
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                        .is_err()
                    {
                        return;
                    }
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let encoded = ctx
                        .workers
                        .encode(spec(&config, ctx.workers.plugin().tokenizer().as_ref(), id, sample))
                        .await
                        .ok()
                        .and_then(Result::ok);
                    launched.fetch_add(1, Ordering::Relaxed);
                    ctx.in_flight.fetch_add(1, Ordering::SeqCst);
                    ctx.sent.fetch_add(1, Ordering::Relaxed);
                    send_one(
                        &ctx,
                        id,
                        index,
                        Instant::now(),
                        window,
                        None,
                        encoded,
                        Origin::of(sample),
                    )
                    .await;
                    ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        let _ = handle.block_on(t);
    }
    launched.load(Ordering::Relaxed)
}

fn write_meta(
    dir: &Path,
    config: &RunConfig,
    plugin: &CodecPlugin,
    target: &str,
    origin_ns: u64,
    dataset: Option<barrage_plugin_host::prepare::DatasetStats>,
) -> Result<crate::results::Meta, RunError> {
    let out = |name: &str, bytes: Vec<u8>| {
        std::fs::write(dir.join(name), bytes).map_err(|source| RunError::Output {
            path: dir.join(name).display().to_string(),
            source,
        })
    };
    // The resolved config. API keys never appear: only the variable's name is in it.
    out(
        "config.yaml",
        serde_yaml_ng::to_string(config).unwrap_or_default().into_bytes(),
    )?;
    let meta = crate::results::Meta {
        barrage_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: config.seed,
        origin_monotonic_ns: origin_ns,
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        target: target.to_string(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        plugin: crate::results::PluginMeta {
            name: plugin.name().to_string(),
            version: plugin.info.version.clone(),
            sha256: plugin.sha256.clone(),
            contract: plugin.contract_version.clone(),
            source: plugin.source.location(),
        },
        shards: Vec::new(),
        tokenizer: crate::results::TokenizerMeta {
            name: plugin.tokenizer().name().to_string(),
            exact: plugin.tokenizer().exact(),
        },
        dataset,
    };
    out("meta.json", serde_json::to_vec_pretty(&meta).unwrap_or_default())?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_have_exactly_the_asked_tokens() {
        for spec in ["cl100k_base", "o200k_base"] {
            let t = barrage_plugin_host::tokenizer::load(spec).unwrap();
            for (id, n) in [(0, 1), (1, 7), (2, 64), (3, 513), (4, 2048)] {
                let text = prompt(42, id, n, t.as_ref());
                assert_eq!(t.count(&text), n, "{spec}: request {id} asked {n} tokens: {text:?}");
                assert_eq!(text, prompt(42, id, n, t.as_ref()), "seeded");
            }
            assert_ne!(prompt(42, 0, 64, t.as_ref()), prompt(42, 1, 64, t.as_ref()));
        }
        let w = barrage_plugin_host::tokenizer::load("words").unwrap();
        assert_eq!(prompt(1, 2, 30, w.as_ref()).split_whitespace().count(), 30);
    }
}
