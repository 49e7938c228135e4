//! The feeder thread: keeps units of work encoded ahead of the schedule,
//! so no codec call runs on the timed path. Open-loop stages (the pacer)
//! and closed-loop stages (virtual users) take units from the same feed.

use std::sync::Arc;

use barrage_core::types::{EncodedRequest, Generation, Prompt, RequestSpec};
use barrage_plugin_host::PluginFailure;
use barrage_plugin_host::codec::CodecInstance;
use barrage_plugin_host::prepare::Sample;
use barrage_plugin_host::tokenizer::Tokenizer;
use tokio::sync::{Mutex, mpsc};

use super::RunError;
use super::shared::Ctx;
use crate::config::RunConfig;

/// Units encoded ahead of the schedule.
const AHEAD: usize = 1024;

/// How often a full feed is looked at for room: a quarter of [`AHEAD`]
/// lasts 32 ms even at 8,000 req/s.
const REFILL_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// A unit of work ready to send: one request, or a session's turns, encoded.
pub(super) struct Ready {
    /// Position in the feed (dataset units wrap around after the last).
    pub unit: u64,
    /// Id of the first request; turns take the next ones.
    pub first_id: u64,
    pub encoded: Vec<Result<EncodedRequest, PluginFailure>>,
}

/// The receiving end of the feeder: the pacer takes from it on its thread,
/// virtual users on the runtime.
pub(super) struct Feed {
    rx: Mutex<mpsc::Receiver<Ready>>,
}

impl Feed {
    /// The next unit, waiting on this (non-runtime) thread; none once the feeder is gone.
    pub fn next_blocking(&self) -> Option<Ready> {
        self.rx.blocking_lock().blocking_recv()
    }

    /// The next unit, from a task.
    pub async fn next(&self) -> Option<Ready> {
        self.rx.lock().await.recv().await
    }
}

/// Start the feeder thread. It stops when the feed is dropped.
pub(super) fn start(config: &RunConfig, ctx: &Arc<Ctx>) -> Result<Feed, RunError> {
    let (tx, rx) = mpsc::channel::<Ready>(AHEAD);
    let ctx = ctx.clone();
    let config = config.clone();
    std::thread::Builder::new()
        .name("barrage-feeder".into())
        .spawn(move || feed(&config, &ctx, &tx))
        .map_err(RunError::Thread)?;
    Ok(Feed { rx: Mutex::new(rx) })
}

fn feed(config: &RunConfig, ctx: &Ctx, tx: &mpsc::Sender<Ready>) {
    let plugin = ctx.workers.plugin();
    let tokenizer = plugin.tokenizer();
    // The feeder encodes with an instance of its own: a round trip per
    // request through the plugin threads, busy decoding streams, could not
    // keep up with thousands of arrivals a second.
    let mut instance: Option<CodecInstance> = None;
    let mut next_id = 0u64;
    for unit in 0.. {
        if tx.capacity() == 0 {
            // Full: refill in batches. Waiting for each slot as it frees
            // woke this thread once per request sent.
            while tx.capacity() < AHEAD / 4 {
                if tx.is_closed() {
                    return;
                }
                std::thread::sleep(REFILL_POLL);
            }
        }
        let samples = ctx.workload.unit(unit);
        let n = ctx.workload.unit_len(unit);
        let encoded = (0..n)
            .map(|k| {
                // A trap poisons the instance; the next request gets a new one.
                let codec = match &mut instance {
                    Some(i) if !i.is_poisoned() => i,
                    slot => match plugin.instance() {
                        Ok(i) => slot.insert(i),
                        Err(f) => return Err(f),
                    },
                };
                // The encode deadline is CPU time, so a feeder preempted on a
                // busy machine does not fail quick encodes: one stopped at it
                // really was slow, and is counted, not retried.
                let encoded = codec.encode(spec(config, tokenizer.as_ref(), next_id + k, samples.get(k as usize)));
                encoded.map_err(|f| PluginFailure {
                    message: format!("encode failed: {}", f.message),
                    ..f
                })
            })
            .collect();
        let ready = Ready {
            unit,
            first_id: next_id,
            encoded,
        };
        next_id += n;
        if tx.blocking_send(ready).is_err() {
            return;
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

/// What request `id` asks: `sample`'s prompt and output length, or the synthetic prompt.
fn spec(config: &RunConfig, tokenizer: &dyn Tokenizer, id: u64, sample: Option<&Sample>) -> RequestSpec {
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
