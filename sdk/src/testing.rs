//! A native stand-in for the host, so plugin logic runs under `cargo test`
//! without wasm.
//!
//! In a native build the SDK's host functions ([`crate::log`],
//! [`crate::config`], [`crate::random`], [`crate::tokenizer`]) are answered by
//! a per-thread [`TestHost`]: set its configuration and seed, drive a codec
//! with [`decode_stream`] and read what it logged.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::codec::{Codec, DecodeOptions, Decoder, Event, Frame, ResponseHead};
use crate::log::Level;

/// The host as seen by plugin code in a native test.
#[derive(Debug)]
pub struct TestHost {
    /// What `config::raw` returns.
    pub config: serde_json::Value,
    /// Everything logged, in order.
    pub logs: Vec<(Level, String)>,
    rng_state: u64,
    vocab: BTreeMap<String, u32>,
    words: Vec<String>,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost {
            config: serde_json::json!({}),
            logs: Vec::new(),
            rng_state: 0,
            vocab: BTreeMap::new(),
            words: Vec::new(),
        }
    }
}

impl TestHost {
    /// SplitMix64, the same generator the host uses for `random`.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

thread_local! {
    static HOST: RefCell<TestHost> = RefCell::new(TestHost::default());
}

/// Run `f` with this thread's test host.
pub fn with_host<R>(f: impl FnOnce(&mut TestHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Set the configuration the plugin sees.
pub fn set_config(config: serde_json::Value) {
    with_host(|h| h.config = config);
}

/// Seed the random source.
pub fn set_seed(seed: u64) {
    with_host(|h| h.rng_state = seed);
}

/// Take everything logged so far.
pub fn take_logs() -> Vec<(Level, String)> {
    with_host(|h| std::mem::take(&mut h.logs))
}

pub(crate) fn words_encode(text: &str) -> Vec<u32> {
    with_host(|h| {
        text.split_whitespace()
            .map(|w| {
                let next = h.words.len() as u32;
                *h.vocab.entry(w.to_string()).or_insert_with(|| {
                    h.words.push(w.to_string());
                    next
                })
            })
            .collect()
    })
}

pub(crate) fn words_decode(tokens: &[u32]) -> String {
    with_host(|h| {
        tokens
            .iter()
            .map(|&t| h.words.get(t as usize).map(String::as_str).unwrap_or("<unk>"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// A frame holding `data`, as the host hands SSE `data:` payloads and NDJSON lines.
pub fn frame(data: &str) -> Frame {
    Frame {
        event: None,
        data: data.as_bytes().to_vec(),
    }
}

/// Cut a complete SSE body into frames the way the host does: events are
/// separated by a blank line, `data:` lines are joined by `\n`, comment lines
/// (starting with `:`) make a keep-alive frame with empty data.
pub fn sse_frames(body: &str) -> Vec<Frame> {
    let body = body.replace("\r\n", "\n");
    let mut frames = Vec::new();
    for block in body.split("\n\n") {
        let mut event = None;
        let mut data: Option<String> = None;
        let mut comment = false;
        for line in block.lines() {
            if line.starts_with(':') {
                comment = true;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                "event" => event = Some(value.to_string()),
                _ => {}
            }
        }
        match data {
            Some(d) => frames.push(Frame {
                event,
                data: d.into_bytes(),
            }),
            None if comment => frames.push(Frame {
                event: None,
                data: Vec::new(),
            }),
            None => {}
        }
    }
    frames
}

/// Decode `frames` as one streamed 200 response with codec `C`, one frame per
/// `push` call, and return every event in order followed by those of `finish`.
pub fn decode_stream<C: Codec>(frames: Vec<Frame>, options: DecodeOptions) -> Result<Vec<Event>, String> {
    let head = ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    };
    let mut decoder = C::decoder(head, options);
    let mut events = Vec::new();
    for frame in frames {
        for fe in decoder.push(vec![frame])? {
            events.push(fe.event);
        }
    }
    events.extend(decoder.finish()?);
    Ok(events)
}
