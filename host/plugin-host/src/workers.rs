//! Plugin threads: where codec calls run, off the I/O tasks.
//!
//! wasmtime stores are driven synchronously here, on plain OS threads: sync
//! WASI calls inside a tokio worker panic, and plugin time must never delay
//! the task that reads a socket (and so shift a timestamp). The I/O side only
//! sends jobs; frames arrive already timestamped.
//!
//! Each streamed response gets an instance (store) of its own for its whole
//! life, taken from the thread's free list and returned when the stream ends.
//! So a trap, timeout or memory-limit hit fails exactly the one response being
//! decoded; its instance is dropped and the free list refills on demand.
//! Jobs that queue up while a thread is busy are handled as one batch: the
//! frames of one stream become a single `push` call. While jobs come more
//! often than one per [`GATHER`], a thread starts a batch at most that often,
//! parked in between, and takes what came meanwhile together: at thousands
//! of responses a second, waking once per response was a context switch per
//! request on a client short of CPU. A job someone waits for (an encode, a
//! whole body, a finish whose outcome is awaited) wakes it at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wasmtime::component::ResourceAny;

use barrage_core::framing::Frames;
use barrage_core::types::{DecodeOptions, EncodedRequest, Event, RequestSpec, ResponseHead};

use crate::codec::{CodecInstance, CodecPlugin};
use crate::{FailureKind, PluginFailure};

/// Most idle instances a thread keeps for reuse.
const MAX_IDLE_INSTANCES: usize = 64;
/// An instance whose memory grew past this is dropped rather than kept
/// idle: idle memory counts against the plugin's budget, and would leave
/// none for new streams.
const MAX_IDLE_MEMORY: usize = 16 << 20;
/// Most jobs taken off the queue at once.
const MAX_BATCH: usize = 512;
/// How long a busy plugin thread lets jobs gather between batches. Frames
/// carry their arrival times, so the wait moves no timestamp; records come
/// at most this much later.
pub const GATHER: Duration = Duration::from_millis(1);

/// How much nicer than the thread that starts them the plugin threads run.
/// Decoding is off the clock (frames carry their arrival times), reading
/// sockets is not: on a client short of CPU, a plugin thread at the I/O
/// threads' priority took their time, reads and their timestamps came
/// late, and connections were held until thousands stood open. A nice
/// thread gets about a third of the CPU of one at the default when both
/// want it, and all of it when the CPU is free.
const PLUGIN_THREAD_NICENESS: i32 = 5;

/// Lower the calling thread's priority by [`PLUGIN_THREAD_NICENESS`]
/// (always allowed; on Linux the nice value is per thread).
fn be_nicer() {
    let now = rustix::process::getpriority_process(None).unwrap_or(0);
    let _ = rustix::process::setpriority_process(None, (now + PLUGIN_THREAD_NICENESS).min(19));
}

/// A decoded event with the time and index of the frame it came from.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    /// When the host cut the frame (or, for events from `finish`, when the stream ended).
    pub at: Instant,
    /// 0-based index of the frame in the stream (frames count for `finish`).
    pub frame: u32,
    /// What the codec made of it.
    pub event: Event,
}

/// Everything decoded from one streamed response.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    /// Events in order.
    pub events: Vec<TimedEvent>,
    /// Frames received.
    pub frames: u32,
    /// Set when the plugin failed on this stream; decoding stopped there.
    pub failure: Option<PluginFailure>,
    /// The body was read as a stream (a 2xx answer to a streaming request),
    /// not gathered whole: a stream must end with `done` and `finish`.
    pub streamed: bool,
}

impl StreamOutcome {
    /// The outcome of a stream its plugin thread lost: a host bug
    /// restarted the thread, or the thread is gone.
    pub fn lost() -> StreamOutcome {
        StreamOutcome {
            failure: Some(PluginFailure {
                plugin: "?".into(),
                kind: FailureKind::Trap,
                message: "the plugin thread stopped".into(),
            }),
            ..StreamOutcome::default()
        }
    }
}

/// Where a stream's outcome goes, on the plugin thread that finished it:
/// called exactly once, with [`StreamOutcome::lost`] if the stream is
/// dropped unfinished. A run builds and hands on the request's record
/// here, so finishing a stream wakes nothing on the I/O side.
pub struct Reply {
    then: Option<Box<dyn FnOnce(StreamOutcome) + Send>>,
    /// Someone waits for it: the plugin thread is woken for it at once.
    awaited: bool,
}

impl Reply {
    /// A reply that calls `f`.
    pub fn new(f: impl FnOnce(StreamOutcome) + Send + 'static) -> Reply {
        Reply {
            then: Some(Box::new(f)),
            awaited: false,
        }
    }

    fn send(mut self, outcome: StreamOutcome) {
        if let Some(f) = self.then.take() {
            f(outcome);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(f) = self.then.take() {
            f(StreamOutcome::lost());
        }
    }
}

/// A streamed response being decoded on one plugin thread.
#[derive(Debug, Clone, Copy)]
pub struct StreamHandle {
    worker: usize,
    id: u64,
}

enum Job {
    Encode {
        spec: RequestSpec,
        reply: oneshot::Sender<Result<EncodedRequest, PluginFailure>>,
    },
    Open {
        id: u64,
        head: ResponseHead,
        options: DecodeOptions,
    },
    Push {
        id: u64,
        frames: Frames,
    },
    Finish {
        id: u64,
        /// The stream's last frames, decoded before it finishes.
        frames: Frames,
        at: Instant,
        reply: Reply,
    },
    Cancel {
        id: u64,
    },
    Unary {
        head: ResponseHead,
        body: Vec<u8>,
        options: DecodeOptions,
        reply: oneshot::Sender<Result<Vec<Event>, PluginFailure>>,
    },
    /// A host bug on the plugin thread, for the test of its restart.
    #[cfg(test)]
    Panic,
}

impl Job {
    /// Whether a caller is waiting for this job's answer.
    fn awaited(&self) -> bool {
        match self {
            Job::Encode { .. } | Job::Unary { .. } => true,
            Job::Finish { reply, .. } => reply.awaited,
            Job::Open { .. } | Job::Push { .. } | Job::Cancel { .. } => false,
            #[cfg(test)]
            Job::Panic => true,
        }
    }
}

struct Worker {
    tx: Option<mpsc::Sender<Job>>,
    join: Option<JoinHandle<()>>,
}

/// Frames handed to the plugin threads and not yet taken up by one: what
/// the threads are behind by. The load engine stops sending while it is
/// past a bound, so a client that cannot decode as fast as it reads does
/// not grow without limit.
#[derive(Default)]
pub struct Backlog {
    frames: AtomicU64,
    bytes: AtomicU64,
    peak_frames: AtomicU64,
    peak_bytes: AtomicU64,
}

impl Backlog {
    fn add(&self, frames: &Frames) {
        let bytes = frames.held_bytes() as u64;
        let n = frames.len() as u64;
        let now_frames = self.frames.fetch_add(n, Ordering::Relaxed) + n;
        let now_bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_frames.fetch_max(now_frames, Ordering::Relaxed);
        self.peak_bytes.fetch_max(now_bytes, Ordering::Relaxed);
    }

    fn taken(&self, frames: &Frames) {
        self.frames.fetch_sub(frames.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_sub(frames.held_bytes() as u64, Ordering::Relaxed);
    }

    /// Bytes waiting now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The most frames and bytes waiting at once since the last call; the
    /// next period starts from what waits now.
    pub fn take_peak(&self) -> (u64, u64) {
        let frames = self
            .peak_frames
            .swap(self.frames.load(Ordering::Relaxed), Ordering::Relaxed);
        let bytes = self
            .peak_bytes
            .swap(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        (frames, bytes)
    }
}

/// A pool of plugin threads running one codec.
pub struct CodecWorkers {
    plugin: Arc<CodecPlugin>,
    workers: Vec<Worker>,
    next_worker: AtomicUsize,
    next_id: AtomicU64,
    restarts: Arc<AtomicU64>,
    backlog: Arc<Backlog>,
}

impl CodecWorkers {
    /// Start `threads` plugin threads (at least one) for `plugin`.
    pub fn start(plugin: Arc<CodecPlugin>, threads: usize) -> std::io::Result<CodecWorkers> {
        let mut workers = Vec::new();
        let restarts = Arc::new(AtomicU64::new(0));
        let backlog = Arc::new(Backlog::default());
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            let p = plugin.clone();
            let restarted = restarts.clone();
            let backlog = backlog.clone();
            let join = std::thread::Builder::new()
                .name(format!("barrage-plugin-{i}"))
                .spawn(move || {
                    be_nicer();
                    supervise(&p, &rx, &restarted, &backlog);
                })?;
            workers.push(Worker {
                tx: Some(tx),
                join: Some(join),
            });
        }
        Ok(CodecWorkers {
            plugin,
            workers,
            next_worker: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            restarts,
            backlog,
        })
    }

    /// Frames waiting for the plugin threads.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// How often a plugin thread panicked (a host bug) and was restarted;
    /// the streams it held failed as "the plugin thread stopped".
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The codec being run.
    pub fn plugin(&self) -> &Arc<CodecPlugin> {
        &self.plugin
    }

    fn send(&self, worker: usize, job: Job) {
        let worker = &self.workers[worker];
        if let Some(tx) = &worker.tx {
            let awaited = job.awaited();
            // A worker only stops when `self` is dropped, so sending cannot
            // fail while `self` lives; if it ever did, the reply channel
            // closes and the caller sees a failure.
            let _ = tx.send(job);
            if awaited && let Some(join) = &worker.join {
                // A thread letting jobs gather is parked, not waiting on the
                // channel: a job someone waits for must not wait with them.
                join.thread().unpark();
            }
        }
    }

    fn pick(&self) -> usize {
        self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len()
    }

    /// Encode a request on a plugin thread; await or `blocking_recv` the reply.
    pub fn encode(&self, spec: RequestSpec) -> oneshot::Receiver<Result<EncodedRequest, PluginFailure>> {
        let (reply, rx) = oneshot::channel();
        self.send(self.pick(), Job::Encode { spec, reply });
        rx
    }

    /// Begin decoding a streamed response.
    pub fn open(&self, head: ResponseHead, options: DecodeOptions) -> StreamHandle {
        let handle = StreamHandle {
            worker: self.pick(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        self.send(
            handle.worker,
            Job::Open {
                id: handle.id,
                head,
                options,
            },
        );
        handle
    }

    /// Hand over frames cut from the stream (never blocks).
    pub fn push(&self, stream: StreamHandle, frames: Frames) {
        if !frames.is_empty() {
            self.backlog.add(&frames);
            self.send(stream.worker, Job::Push { id: stream.id, frames });
        }
    }

    /// The stream ended at `at`; the reply carries everything decoded.
    pub fn finish(&self, stream: StreamHandle, at: Instant) -> oneshot::Receiver<StreamOutcome> {
        self.finish_with(stream, Frames::default(), at)
    }

    /// Hand over the stream's last frames and finish it, in one job.
    pub fn finish_with(&self, stream: StreamHandle, frames: Frames, at: Instant) -> oneshot::Receiver<StreamOutcome> {
        let (tx, rx) = oneshot::channel();
        let mut reply = Reply::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        reply.awaited = true;
        self.finish_then(stream, frames, at, reply);
        rx
    }

    /// [`Self::finish_with`], the outcome going to `reply` on the plugin thread.
    pub fn finish_then(&self, stream: StreamHandle, frames: Frames, at: Instant, reply: Reply) {
        self.backlog.add(&frames);
        self.send(
            stream.worker,
            Job::Finish {
                id: stream.id,
                frames,
                at,
                reply,
            },
        );
    }

    /// Forget a stream (its request was cancelled).
    pub fn cancel(&self, stream: StreamHandle) {
        self.send(stream.worker, Job::Cancel { id: stream.id });
    }

    /// Decode a whole non-streamed body on a plugin thread.
    pub fn decode_unary(
        &self,
        head: ResponseHead,
        body: Vec<u8>,
        options: DecodeOptions,
    ) -> oneshot::Receiver<Result<Vec<Event>, PluginFailure>> {
        let (reply, rx) = oneshot::channel();
        self.send(
            self.pick(),
            Job::Unary {
                head,
                body,
                options,
                reply,
            },
        );
        rx
    }
}

impl Drop for CodecWorkers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.tx.take();
        }
        for w in &mut self.workers {
            if let Some(join) = w.join.take() {
                let _ = join.join();
            }
        }
    }
}

/// Run a plugin thread's jobs; if handling one panics (a host bug: plugin
/// misbehaviour is data, never a panic), count it and start over with a
/// fresh state, so one bad stream cannot stop every later request. The
/// streams the lost state held fail: their replies are dropped.
fn supervise(plugin: &Arc<CodecPlugin>, rx: &mpsc::Receiver<Job>, restarts: &AtomicU64, backlog: &Backlog) {
    loop {
        let thread = WorkerThread::new(plugin.clone());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread.run(rx, backlog))) {
            Ok(()) => return,
            Err(_) => {
                restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How a plugin thread waits for its next batch: on the channel, woken by
/// each job, until jobs come more often than one per `window` ([`GATHER`]);
/// then it starts a batch at most once per `window`, parked in between
/// (woken early only by a job someone waits for), until a wait brings
/// nothing. A thread whose batches take longer than that does not park.
struct Intake {
    window: Duration,
    gathering: bool,
    /// When the last batch began.
    began: Option<Instant>,
}

impl Intake {
    fn new(window: Duration) -> Intake {
        Intake {
            window,
            gathering: false,
            began: None,
        }
    }

    /// The next job; none once every sender is gone.
    fn next<T>(&mut self, rx: &mpsc::Receiver<T>) -> Option<T> {
        if self.gathering {
            if let Some(left) = self.began.and_then(|t| self.window.checked_sub(t.elapsed())) {
                std::thread::park_timeout(left);
            }
            match rx.try_recv() {
                Ok(job) => {
                    self.began = Some(Instant::now());
                    return Some(job);
                }
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => self.gathering = false,
            }
        }
        let job = rx.recv().ok()?;
        let now = Instant::now();
        self.gathering = self.began.is_some_and(|t| now - t < self.window);
        self.began = Some(now);
        Some(job)
    }
}

struct Stream {
    /// The instance and decoder, until the stream ends or fails.
    decoding: Option<(CodecInstance, ResourceAny)>,
    outcome: StreamOutcome,
}

struct WorkerThread {
    plugin: Arc<CodecPlugin>,
    idle: Vec<CodecInstance>,
    streams: HashMap<u64, Stream>,
    /// The arrival times of the frames being pushed, kept allocated.
    times: Vec<Instant>,
}

impl WorkerThread {
    fn new(plugin: Arc<CodecPlugin>) -> WorkerThread {
        WorkerThread {
            plugin,
            idle: Vec::new(),
            streams: HashMap::new(),
            times: Vec::new(),
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Job>, backlog: &Backlog) {
        let mut batch = Vec::new();
        let mut pending: HashMap<u64, Frames> = HashMap::new();
        let mut intake = Intake::new(GATHER);
        while let Some(first) = intake.next(rx) {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            for job in batch.drain(..) {
                match job {
                    // Frames wait so that all of a stream's frames in this
                    // batch go to the plugin in one call; anything else
                    // about that stream flushes them first, keeping order.
                    Job::Push { id, frames } => {
                        backlog.taken(&frames);
                        pending.entry(id).or_default().append(frames);
                    }
                    Job::Finish { id, frames, at, reply } => {
                        backlog.taken(&frames);
                        pending.entry(id).or_default().append(frames);
                        self.flush(id, &mut pending);
                        reply.send(self.finish(id, at));
                    }
                    Job::Cancel { id } => {
                        pending.remove(&id);
                        self.cancel(id);
                    }
                    Job::Open { id, head, options } => self.open(id, head, options),
                    Job::Encode { spec, reply } => {
                        let _ = reply.send(self.with_instance(|i| i.encode(spec)));
                    }
                    Job::Unary {
                        head,
                        body,
                        options,
                        reply,
                    } => {
                        let _ = reply.send(self.with_instance(|i| i.decode_unary(head, &body, options)));
                    }
                    #[cfg(test)]
                    Job::Panic => panic!("a host bug on the plugin thread"),
                }
            }
            let ids: Vec<u64> = pending.keys().copied().collect();
            for id in ids {
                self.flush(id, &mut pending);
            }
        }
    }

    fn take_instance(&mut self) -> Result<CodecInstance, PluginFailure> {
        match self.idle.pop() {
            Some(i) => Ok(i),
            None => self.plugin.instance(),
        }
    }

    fn give_back(&mut self, instance: CodecInstance) {
        if !instance.is_poisoned() && self.idle.len() < MAX_IDLE_INSTANCES && instance.memory() <= MAX_IDLE_MEMORY {
            self.idle.push(instance);
        }
    }

    fn with_instance<R>(
        &mut self,
        f: impl FnOnce(&mut CodecInstance) -> Result<R, PluginFailure>,
    ) -> Result<R, PluginFailure> {
        let mut instance = self.take_instance()?;
        let result = f(&mut instance);
        self.give_back(instance);
        result
    }

    fn open(&mut self, id: u64, head: ResponseHead, options: DecodeOptions) {
        let mut outcome = StreamOutcome {
            streamed: true,
            ..StreamOutcome::default()
        };
        let decoding = match self.take_instance() {
            Ok(mut instance) => match instance.open(head, options) {
                Ok(decoder) => Some((instance, decoder)),
                Err(f) => {
                    outcome.failure = Some(f);
                    self.give_back(instance);
                    None
                }
            },
            Err(f) => {
                outcome.failure = Some(f);
                None
            }
        };
        self.streams.insert(id, Stream { decoding, outcome });
    }

    fn flush(&mut self, id: u64, pending: &mut HashMap<u64, Frames>) {
        let Some(frames) = pending.remove(&id) else { return };
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        // A stream's last read may carry no frame: the plugin is only ever
        // given batches of at least one.
        if frames.is_empty() {
            return;
        }
        let base = stream.outcome.frames;
        stream.outcome.frames += frames.len() as u32;
        let Some((instance, decoder)) = stream.decoding.as_mut() else {
            return;
        };
        self.times.clear();
        self.times.extend(frames.spans().iter().map(|f| f.at));
        let times = &self.times;
        // `push` checked every index against the batch.
        match instance.push(*decoder, frames) {
            Ok(events) => stream
                .outcome
                .events
                .extend(events.into_iter().map(|(frame, event)| TimedEvent {
                    at: times[frame as usize],
                    frame: base + frame,
                    event,
                })),
            Err(f) => self.fail(id, f),
        }
    }

    fn fail(&mut self, id: u64, failure: PluginFailure) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.outcome.failure = Some(failure);
            if let Some((mut instance, decoder)) = stream.decoding.take() {
                // A request-level error (not a trap) leaves the instance
                // usable once its decoder is freed.
                if !instance.is_poisoned() {
                    instance.close(decoder);
                }
                self.give_back(instance);
            }
        }
    }

    fn finish(&mut self, id: u64, at: Instant) -> StreamOutcome {
        let Some(mut stream) = self.streams.remove(&id) else {
            return StreamOutcome {
                failure: Some(PluginFailure {
                    plugin: self.plugin.name().to_string(),
                    kind: FailureKind::Returned,
                    message: "stream finished twice or never opened".into(),
                }),
                ..StreamOutcome::default()
            };
        };
        if let Some((mut instance, decoder)) = stream.decoding.take() {
            let frame = stream.outcome.frames;
            match instance.finish(decoder) {
                Ok(events) => {
                    stream
                        .outcome
                        .events
                        .extend(events.into_iter().map(|event| TimedEvent { at, frame, event }))
                }
                Err(f) => stream.outcome.failure = Some(f),
            }
            self.give_back(instance);
        }
        stream.outcome
    }

    fn cancel(&mut self, id: u64) {
        if let Some(mut stream) = self.streams.remove(&id)
            && let Some((mut instance, decoder)) = stream.decoding.take()
        {
            instance.close(decoder);
            self.give_back(instance);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{EngineOptions, PluginContext, PluginEngine, Registry};

    /// A 200 answer with no headers.
    fn ok_head() -> ResponseHead {
        ResponseHead {
            status: 200,
            headers: vec![],
        }
    }

    /// The built-in chat codec, loaded as a run loads it.
    pub(crate) fn chat_plugin() -> Arc<CodecPlugin> {
        let engine = PluginEngine::new(EngineOptions {
            max_instances: 16,
            ..EngineOptions::default()
        })
        .unwrap();
        let source = Registry { plugin_dir: None }.resolve("openai-chat").unwrap();
        let ctx = PluginContext {
            name: "".into(),
            config_json: "{}".into(),
            seed: 0,
            tokenizer: crate::tokenizer::WordTokenizer::shared(),
            log_level: crate::state::LogLevel::Error,
            log: crate::state::no_log(),
            secrets: Default::default(),
        };
        CodecPlugin::load(&engine, &source, ctx).unwrap()
    }

    #[test]
    fn a_panicking_plugin_thread_is_restarted_and_later_streams_decode() {
        let workers = CodecWorkers::start(chat_plugin(), 1).unwrap();
        let lost = workers.open(ok_head(), DecodeOptions { want_text: false });
        workers.send(0, Job::Panic);
        let now = Instant::now();
        // Its reply is dropped with the state (the sink reads that as "the
        // plugin thread stopped"), or, had the finish come after the
        // restart, the stream is unknown: a failure either way.
        let reply = workers.finish(lost, now).blocking_recv();
        assert!(
            reply.map_or(true, |o| o.failure.is_some()),
            "the stream the lost state held fails"
        );
        let later = workers.open(ok_head(), DecodeOptions { want_text: false });
        let mut done = Frames::default();
        done.push(now, None, b"[DONE]");
        let outcome = workers.finish_with(later, done, now).blocking_recv().unwrap();
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert!(
            matches!(outcome.events[..], [TimedEvent { event: Event::Done, .. }]),
            "{:?}",
            outcome.events
        );
        // Counted before the fresh state took its first job.
        assert_eq!(workers.restarts(), 1);
    }

    #[test]
    fn fast_jobs_are_gathered_and_only_a_job_someone_waits_for_cuts_the_wait_short() {
        // A window far longer than the test may take: a thread left parked
        // for it would fail the `recv_timeout`s below.
        let (tx, rx) = mpsc::channel::<u32>();
        let (answers, answered) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut intake = Intake::new(Duration::from_secs(600));
            while let Some(job) = intake.next(&rx) {
                answers.send((job, intake.gathering)).unwrap();
            }
        });
        let next = || answered.recv_timeout(Duration::from_secs(300)).ok();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(next(), Some((1, false)), "one job says nothing of the rate");
        assert_eq!(next(), Some((2, true)), "two within the window: gathering");
        // Woken with nothing gathered, it waits on the channel again: a job
        // nobody waits for wakes it from there without an unpark.
        thread.thread().unpark();
        std::thread::sleep(Duration::from_millis(50));
        tx.send(3).unwrap();
        assert_eq!(next().map(|(job, _)| job), Some(3));
        // Gathering again (3 came within the window): a job someone waits
        // for is sent with an unpark, which ends the wait at once.
        tx.send(4).unwrap();
        thread.thread().unpark();
        assert_eq!(next(), Some((4, true)));
        drop(tx);
        thread.thread().unpark();
        thread.join().unwrap();
    }

    #[test]
    fn the_backlog_counts_frames_until_a_plugin_thread_takes_them() {
        let workers = CodecWorkers::start(chat_plugin(), 1).unwrap();
        let now = Instant::now();
        let frames = |data: &[u8], n| {
            let mut frames = Frames::default();
            for _ in 0..n {
                frames.push(now, None, data);
            }
            frames
        };
        let stream = workers.open(ok_head(), DecodeOptions { want_text: false });
        let chunk = br#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        workers.push(stream, frames(chunk, 100));
        let outcome = workers
            .finish_with(stream, frames(b"[DONE]", 1), now)
            .blocking_recv()
            .unwrap();
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert_eq!(outcome.frames, 101);
        assert_eq!(workers.backlog().bytes(), 0, "every frame taken up");
        // The peak is noted as frames are handed over, whenever the thread takes them.
        let (peak_frames, peak_bytes) = workers.backlog().take_peak();
        assert!(
            peak_frames >= 100 && peak_bytes >= 100 * chunk.len() as u64,
            "{peak_frames} {peak_bytes}"
        );
        assert_eq!(
            workers.backlog().take_peak(),
            (0, 0),
            "a new period starts from what waits now"
        );
    }
}
