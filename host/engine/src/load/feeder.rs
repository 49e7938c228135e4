//! The feeder thread: keeps units of work encoded ahead of the schedule,
//! so no codec call runs on the timed path. Open-loop stages (the pacer)
//! and closed-loop stages (virtual users) take units from the same feed.

use std::sync::Arc;

use std::collections::VecDeque;
use std::sync::Condvar;
use std::time::{Duration, Instant};

use barrage_core::types::{EncodedRequest, Generation, Prompt, RequestSpec};
use barrage_plugin_host::PluginFailure;
use barrage_plugin_host::codec::CodecInstance;
use barrage_plugin_host::prepare::Sample;
use barrage_plugin_host::tokenizer::Tokenizer;
use tokio::sync::Notify;

use super::RunError;
use super::shared::Ctx;
use crate::config::RunConfig;

/// Units encoded ahead of the schedule.
const AHEAD: usize = 1024;

/// How often a full feed is looked at for room and for units gone stale:
/// a quarter of [`AHEAD`] lasts 32 ms even at 8,000 req/s.
const REFILL_POLL: Duration = Duration::from_millis(2);

/// A unit of work ready to send: one request, or a session's turns, encoded.
pub(super) struct Ready {
    /// Position in the feed (dataset units wrap around after the last).
    pub unit: u64,
    /// Id of the first request; turns take the next ones.
    pub first_id: u64,
    pub encoded: Vec<Result<EncodedRequest, PluginFailure>>,
    /// When it was encoded: the `send-time` its codec was given.
    encoded_at: Instant,
}

/// Units waiting to be sent, oldest first; the feeder fills it and keeps it
/// fresh, the pacer (a thread) and virtual users (tasks) take from it.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    /// Wakes a pacer waiting on an empty queue.
    filled: Condvar,
    /// Wakes tasks waiting on an empty queue.
    filled_async: Notify,
}

#[derive(Default)]
struct QueueState {
    units: VecDeque<Ready>,
    /// The feeder has stopped: once the queue is empty, nothing more comes.
    feeder_gone: bool,
    /// The feed was dropped: the feeder stops.
    feed_gone: bool,
    /// Threads (the pacer) waiting on `filled`. A condvar's notify is a
    /// system call whether or not anyone waits: one per request, for a
    /// pacer that almost never finds the queue empty.
    blocked: usize,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A panic elsewhere cannot leave the queue half-changed: every
        // change under the lock is one push, pop or swap.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, ready: Ready) {
        let blocked = {
            let mut state = self.lock();
            state.units.push_back(ready);
            state.blocked > 0
        };
        if blocked {
            self.filled.notify_one();
        }
        self.filled_async.notify_one();
    }

    fn feeder_gone(&self) {
        self.lock().feeder_gone = true;
        self.filled.notify_all();
        self.filled_async.notify_waiters();
    }
}

/// The receiving end of the feeder: the pacer takes from it on its thread,
/// virtual users on the runtime.
pub(super) struct Feed {
    queue: Arc<Queue>,
}

impl Feed {
    /// The next unit, waiting on this (non-runtime) thread; none once the feeder is gone.
    pub fn next_blocking(&self) -> Option<Ready> {
        let mut state = self.queue.lock();
        loop {
            if let Some(ready) = state.units.pop_front() {
                return Some(ready);
            }
            if state.feeder_gone {
                return None;
            }
            state.blocked += 1;
            state = self.queue.filled.wait(state).unwrap_or_else(|p| p.into_inner());
            state.blocked -= 1;
        }
    }

    /// The next unit, from a task.
    pub async fn next(&self) -> Option<Ready> {
        loop {
            // Registered before looking, so a push in between still wakes it.
            let filled = self.queue.filled_async.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            {
                let mut state = self.queue.lock();
                if let Some(ready) = state.units.pop_front() {
                    return Some(ready);
                }
                if state.feeder_gone {
                    return None;
                }
            }
            filled.await;
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.queue.lock().feed_gone = true;
    }
}

/// Start the feeder thread. It stops when the feed is dropped.
pub(super) fn start(config: &RunConfig, ctx: &Arc<Ctx>) -> Result<Feed, RunError> {
    let queue = Arc::new(Queue {
        state: Default::default(),
        filled: Condvar::new(),
        filled_async: Notify::new(),
    });
    let ctx = ctx.clone();
    let config = config.clone();
    let feeder_queue = queue.clone();
    std::thread::Builder::new()
        .name("barrage-feeder".into())
        .spawn(move || {
            // However the thread ends, a panic included, those waiting
            // for units learn that no more will come.
            let gone = FeederGone(feeder_queue);
            Feeder::new(&config, &ctx).run(&gone.0);
        })
        .map_err(RunError::Thread)?;
    Ok(Feed { queue })
}

/// Tells the queue the feeder has stopped when dropped.
struct FeederGone(Arc<Queue>);

impl Drop for FeederGone {
    fn drop(&mut self) {
        self.0.feeder_gone();
    }
}

/// The feeder thread's state: the codec instance it encodes with and the
/// next request id.
struct Feeder<'a> {
    config: &'a RunConfig,
    ctx: &'a Ctx,
    // The feeder encodes with an instance of its own: a round trip per
    // request through the plugin threads, busy decoding streams, could not
    // keep up with thousands of arrivals a second.
    instance: Option<CodecInstance>,
    next_id: u64,
    /// Longest a unit may wait after its encode (`max_encode_lead_s`).
    max_lead: Duration,
}

impl<'a> Feeder<'a> {
    fn new(config: &'a RunConfig, ctx: &'a Ctx) -> Feeder<'a> {
        Feeder {
            config,
            ctx,
            instance: None,
            next_id: 0,
            max_lead: Duration::from_secs_f64(config.max_encode_lead_s),
        }
    }

    fn run(&mut self, queue: &Queue) {
        for unit in 0.. {
            let full = {
                let state = queue.lock();
                if state.feed_gone {
                    return;
                }
                state.units.len() >= AHEAD
            };
            if full {
                // Full: refill in batches. Waiting for each slot as it frees
                // woke this thread once per request sent.
                loop {
                    {
                        let state = queue.lock();
                        if state.feed_gone {
                            return;
                        }
                        if state.units.len() < AHEAD * 3 / 4 {
                            break;
                        }
                    }
                    self.refresh_stale(queue);
                    std::thread::sleep(REFILL_POLL);
                }
            }
            let first_id = self.next_id;
            self.next_id += self.ctx.workload.unit_len(unit);
            let ready = self.encode(unit, first_id);
            queue.push(ready);
        }
    }

    /// Encode every request of `unit`, its first being `first_id`.
    fn encode(&mut self, unit: u64, first_id: u64) -> Ready {
        let plugin = self.ctx.workers.plugin();
        let tokenizer = plugin.tokenizer();
        let samples = self.ctx.workload.unit(unit);
        let n = self.ctx.workload.unit_len(unit);
        let encoded_at = Instant::now();
        let encoded = (0..n)
            .map(|k| {
                // A trap poisons the instance; the next request gets a new one.
                let codec = match &mut self.instance {
                    Some(i) if !i.is_poisoned() => i,
                    slot => match plugin.instance() {
                        Ok(i) => slot.insert(i),
                        Err(f) => return Err(f),
                    },
                };
                // The encode deadline is CPU time, so a feeder preempted on a
                // busy machine does not fail quick encodes: one stopped at it
                // really was slow, and is counted, not retried.
                let spec = spec(self.config, tokenizer.as_ref(), first_id + k, samples.get(k as usize));
                codec.encode(spec).map_err(|f| PluginFailure {
                    message: format!("encode failed: {}", f.message),
                    ..f
                })
            })
            .collect();
        Ready {
            unit,
            first_id,
            encoded,
            encoded_at,
        }
    }

    /// Encode again the queued units encoded more than the lead ago, oldest
    /// first, so a signature made from `send-time` is still valid when its
    /// request goes out. Each is encoded outside the lock and swapped in if
    /// it is still queued.
    fn refresh_stale(&mut self, queue: &Queue) {
        loop {
            // One clock read for the whole scan: reading it per queued unit,
            // every poll, was over 1 % of the client's CPU at 6,000 req/s.
            let now = Instant::now();
            let stale = {
                let state = queue.lock();
                state
                    .units
                    .iter()
                    .find(|r| now.saturating_duration_since(r.encoded_at) > self.max_lead / 2)
                    .map(|r| (r.unit, r.first_id))
            };
            let Some((unit, first_id)) = stale else { return };
            let fresh = self.encode(unit, first_id);
            // One sent meanwhile went within the lead: it was found stale
            // at half of it.
            let mut state = queue.lock();
            if let Some(slot) = state
                .units
                .iter_mut()
                .find(|r| r.unit == unit && r.first_id == first_id)
            {
                *slot = fresh;
            }
        }
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
fn prompt(seed: u64, id: u64, tokens: u32, tokenizer: &dyn Tokenizer) -> String {
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

/// What request `id` asks: `sample`'s prompt and output length, or the
/// synthetic prompt. Its time is the encode's: the request goes out within
/// the feed's lead of it (docs/plugins.md, "Signing time").
fn spec(config: &RunConfig, tokenizer: &dyn Tokenizer, id: u64, sample: Option<&Sample>) -> RequestSpec {
    let r = &config.request;
    let (prompt, max_tokens, extra, tools) = match sample {
        Some(s) => (
            s.prompt.clone(),
            s.output_tokens.unwrap_or(r.max_tokens),
            s.extra.clone(),
            s.tools.clone(),
        ),
        // A plain text prompt: chat codecs wrap it in a user message themselves,
        // so the engine need not guess the codec's kind from its name.
        None => (
            Prompt::Text(prompt(config.seed, id, r.prompt_tokens, tokenizer)),
            r.max_tokens,
            None,
            Vec::new(),
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
        tools,
        send_time: std::time::SystemTime::now(),
    }
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
