//! A native stand-in for the host, so plugin logic runs under `cargo test`
//! without wasm, the same for every world.
//!
//! In a native build the SDK's host functions ([`crate::log`],
//! [`crate::config`], [`crate::random`], [`crate::tokenizer`], and a
//! dataset's `files` and a reporter's `records`) are answered by a
//! per-thread [`TestHost`]: set its configuration and seed, then drive a
//! codec with [`decode_stream`], a dataset with [`Harness`] or a reporter
//! with [`render`], and read what it logged. Its tokenizer is the
//! approximate `words` rule (one token per whitespace-separated word).

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::log::Level;

/// The host as seen by plugin code in a native test.
#[derive(Debug)]
pub struct TestHost {
    /// What `config::raw` returns.
    pub config: serde_json::Value,
    /// Everything logged, in order.
    pub logs: Vec<(Level, String)>,
    /// A dataset's input files: (name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Files under a dataset's media directory: readable, not listed.
    pub media: Vec<(String, Vec<u8>)>,
    /// A reporter's records, one JSON object each, not yet read.
    pub records: Vec<String>,
    /// Secrets answered to `secrets::get`, by name.
    pub secrets: BTreeMap<String, String>,
    rng_state: u64,
    vocab: BTreeMap<String, u32>,
    words: Vec<String>,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost {
            config: serde_json::json!({}),
            logs: Vec::new(),
            files: Vec::new(),
            media: Vec::new(),
            records: Vec::new(),
            secrets: BTreeMap::new(),
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

/// Forget this thread's configuration, seed, logs, files, records and secrets.
pub fn reset() {
    with_host(|h| *h = TestHost::default());
}

/// Set the configuration the plugin sees.
pub fn set_config(config: serde_json::Value) {
    with_host(|h| h.config = config);
}

/// Seed the random source.
/// Grant `value` under `name` to this thread's plugin.
pub fn set_secret(name: &str, value: &str) {
    with_host(|h| h.secrets.insert(name.to_string(), value.to_string()));
}

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

#[cfg(feature = "dataset")]
pub(crate) fn file_bytes(name: &str) -> Result<Vec<u8>, String> {
    with_host(|h| {
        h.files
            .iter()
            .chain(&h.media)
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| format!("`{name}`: no such file in media_dir"))
    })
}

#[cfg(feature = "codec")]
pub use codec_harness::*;
#[cfg(feature = "dataset")]
pub use dataset_harness::*;
#[cfg(feature = "reporter")]
pub use reporter_harness::*;

#[cfg(feature = "codec")]
mod codec_harness {
    use crate::codec::{Codec, DecodeOptions, Decoder, Event, FrameBuf, ResponseHead};

    /// A frame holding `data`, as the host hands SSE `data:` payloads and NDJSON lines.
    pub fn frame(data: &str) -> FrameBuf {
        FrameBuf {
            event: None,
            data: data.as_bytes().to_vec(),
        }
    }

    /// A frame holding binary `data`, as the host hands a gRPC message
    /// (without its 5-byte prefix).
    pub fn frame_bytes(data: Vec<u8>) -> FrameBuf {
        FrameBuf { event: None, data }
    }

    /// Cut a complete SSE body into frames the way the host does: events are
    /// separated by a blank line, `data:` lines are joined by `\n`, comment lines
    /// (starting with `:`) make a keep-alive frame with empty data.
    pub fn sse_frames(body: &str) -> Vec<FrameBuf> {
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
                Some(d) => frames.push(FrameBuf {
                    event,
                    data: d.into_bytes(),
                }),
                None if comment => frames.push(FrameBuf {
                    event: None,
                    data: Vec::new(),
                }),
                None => {}
            }
        }
        frames
    }

    /// Most events one call may return per frame it was given (plus this
    /// many once); the host fails a response whose codec returns more.
    pub const EVENTS_PER_FRAME: usize = 64;

    /// Decode `frames` as one streamed 200 response with codec `C` and
    /// return every event in order, followed by those of `finish`, each with
    /// the index of its frame in the stream (`finish`'s: the frame count).
    ///
    /// The host hands `push` every frame of a stream that is ready, one or
    /// more (never none), however the bytes happened to arrive: a frame at
    /// a time on a quiet stream, hundreds at once when a plugin thread was
    /// busy. So this decodes the stream three ways (a frame per call, all
    /// frames in one call, and batches of 1, 2, 3, ... frames) and fails
    /// unless all three give the same events for the same frames. It also
    /// checks what the host checks: every event names a frame of its batch,
    /// and no call returns more events than the host takes.
    pub fn decode_stream_indexed<C: Codec>(
        frames: Vec<FrameBuf>,
        options: DecodeOptions,
    ) -> Result<Vec<(u32, Event)>, String> {
        let one_by_one: Vec<usize> = vec![1; frames.len()];
        let all_at_once: Vec<usize> = if frames.is_empty() { vec![] } else { vec![frames.len()] };
        let mut growing = Vec::new();
        let (mut left, mut size) = (frames.len(), 1);
        while left > 0 {
            growing.push(size.min(left));
            left -= size.min(left);
            size += 1;
        }
        let first = decode_in_batches::<C>(&frames, &one_by_one, options)?;
        for sizes in [all_at_once, growing] {
            let other = decode_in_batches::<C>(&frames, &sizes, options)?;
            // The generated types have no PartialEq; their Debug text is exact.
            if format!("{other:?}") != format!("{first:?}") {
                return Err(format!(
                    "the decoder's events depend on how frames are batched: one frame per push gave {first:?}, \
                     batches of {sizes:?} gave {other:?}"
                ));
            }
        }
        Ok(first)
    }

    /// [`decode_stream_indexed`] without the frame indexes.
    pub fn decode_stream<C: Codec>(frames: Vec<FrameBuf>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_stream_indexed::<C>(frames, options)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    fn decode_in_batches<C: Codec>(
        frames: &[FrameBuf],
        sizes: &[usize],
        options: DecodeOptions,
    ) -> Result<Vec<(u32, Event)>, String> {
        let head = ResponseHead {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
        };
        let mut decoder = C::decoder(head, options);
        let mut events = Vec::new();
        let mut base = 0usize;
        for &n in sizes {
            let batch: Vec<_> = frames[base..base + n].iter().map(FrameBuf::as_frame).collect();
            let out = decoder.push(&batch)?;
            check_count(out.len(), n)?;
            for fe in out {
                if fe.frame as usize >= n {
                    return Err(format!(
                        "push returned an event for frame {} of a batch of {n} frames (indexes are 0-based, \
                         within the batch); the host fails such a response",
                        fe.frame
                    ));
                }
                events.push(((base + fe.frame as usize) as u32, fe.event));
            }
            base += n;
        }
        let last = decoder.finish()?;
        check_count(last.len(), 0)?;
        events.extend(last.into_iter().map(|e| (frames.len() as u32, e)));
        Ok(events)
    }

    fn check_count(events: usize, frames: usize) -> Result<(), String> {
        let max = EVENTS_PER_FRAME * (frames + 1);
        if events > max {
            return Err(format!(
                "a call given {frames} frames returned {events} events; the host takes at most {max}"
            ));
        }
        Ok(())
    }
}

#[cfg(feature = "dataset")]
mod dataset_harness {
    use super::with_host;
    use crate::dataset::{Batch, Dataset, DatasetError, Sample};

    /// What a generation produced.
    #[derive(Debug, Default)]
    pub struct Prepared {
        /// Every sample, in order.
        pub samples: Vec<Sample>,
        /// Input skipped (when the plugin skips rather than fails).
        pub skipped: Vec<DatasetError>,
    }

    /// The host's side of one generation: configuration, input files, seed.
    #[derive(Default)]
    pub struct Harness {
        config: serde_json::Value,
        seed: u64,
        files: Vec<(String, Vec<u8>)>,
        media: Vec<(String, Vec<u8>)>,
    }

    impl Harness {
        /// No configuration, no files, seed 0.
        pub fn new() -> Harness {
            Harness {
                config: serde_json::json!({}),
                ..Harness::default()
            }
        }

        /// The plugin's configuration.
        pub fn config(mut self, config: serde_json::Value) -> Harness {
            self.config = config;
            self
        }

        /// The run's seed.
        pub fn seed(mut self, seed: u64) -> Harness {
            self.seed = seed;
            self
        }

        /// An input file named `name` holding `contents`.
        pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Harness {
            self.files.push((name.to_string(), contents.into()));
            self
        }

        /// A file under the media directory, `name` its path in it.
        pub fn media(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Harness {
            self.media.push((name.to_string(), contents.into()));
            self
        }

        /// Check the configuration, open, and drain the generation as the host does.
        pub fn run<D: Dataset>(self) -> Result<Prepared, DatasetError> {
            super::set_config(self.config.clone());
            super::set_seed(self.seed);
            with_host(|h| {
                h.files = self.files;
                h.media = self.media;
            });
            D::check_config(&self.config).map_err(|e| {
                DatasetError::new(format!(
                    "config{}: {}",
                    e.field.map(|f| format!(" `{f}`")).unwrap_or_default(),
                    e.message
                ))
            })?;
            let mut d = D::open()?;
            let mut out = Prepared::default();
            loop {
                let Batch { samples, skipped, done } = d.next_batch(256)?;
                out.samples.extend(samples);
                out.skipped.extend(skipped);
                if done {
                    return Ok(out);
                }
            }
        }
    }
}

#[cfg(feature = "reporter")]
mod reporter_harness {
    use super::with_host;
    use crate::reporter::{OutputFile, ReportInput, Reporter};

    /// Render `summary` (with these records) as the host would.
    pub fn render<R: Reporter>(
        summary: serde_json::Value,
        records: Vec<serde_json::Value>,
    ) -> Result<Vec<OutputFile>, String> {
        with_host(|h| h.records = records.iter().map(ToString::to_string).collect());
        let schema_version = summary["schema_version"].as_u64().unwrap_or(0) as u32;
        R::render(ReportInput {
            schema_version,
            summary,
        })
    }
}

#[cfg(all(test, feature = "codec"))]
mod tests {
    use super::*;
    use crate::codec::{
        Codec, ContentDelta, DecodeOptions, Decoder, EncodedRequest, Event, FrameEvent, PluginInfo, RequestSpec,
        ResponseHead,
    };

    /// Decodes each frame as one token; its `ANSWER` is how it goes wrong.
    struct Counting<const ANSWER: u8>;
    struct Stream<const ANSWER: u8>;

    impl<const ANSWER: u8> Codec for Counting<ANSWER> {
        type Decoder = Stream<ANSWER>;
        fn info() -> PluginInfo {
            PluginInfo {
                name: "counting".into(),
                version: "0".into(),
                description: String::new(),
                secrets: Vec::new(),
            }
        }
        fn encode(_spec: RequestSpec) -> Result<EncodedRequest, String> {
            Err("decode only".into())
        }
        fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Stream<ANSWER> {
            Stream
        }
        fn decode_unary(_: ResponseHead, _: Vec<u8>, _: DecodeOptions) -> Result<Vec<Event>, String> {
            Ok(vec![])
        }
    }

    const RIGHT: u8 = 0;
    /// One event per batch, not per frame: its events depend on the batching.
    const PER_BATCH: u8 = 1;
    /// Names the frame after the batch's last.
    const PAST_THE_END: u8 = 2;

    impl<const ANSWER: u8> Decoder for Stream<ANSWER> {
        fn push(&mut self, frames: &[crate::codec::Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
            let token = |frame| FrameEvent {
                frame,
                event: Event::Content(ContentDelta {
                    bytes: 1,
                    tokens: Some(1),
                    text: None,
                }),
            };
            Ok(match ANSWER {
                PER_BATCH => vec![token(0)],
                PAST_THE_END => vec![token(frames.len() as u32)],
                _ => (0..frames.len() as u32).map(token).collect(),
            })
        }
    }

    #[test]
    fn the_harness_pushes_as_the_host_does_and_catches_what_the_host_refuses() {
        let frames: Vec<_> = (0..70).map(|i| frame(&i.to_string())).collect();
        let options = DecodeOptions { want_text: false };
        let events = decode_stream_indexed::<Counting<RIGHT>>(frames.clone(), options).unwrap();
        let indexes: Vec<u32> = events.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, (0..70).collect::<Vec<_>>());
        let batched = decode_stream::<Counting<PER_BATCH>>(frames.clone(), options).unwrap_err();
        assert!(batched.contains("depend on how frames are batched"), "{batched}");
        let past = decode_stream::<Counting<PAST_THE_END>>(frames, options).unwrap_err();
        assert!(
            past.contains("push returned an event for frame 1 of a batch of 1 frames"),
            "{past}"
        );
    }
}
