//! Write Barrage dataset plugins in plain Rust.
//!
//! A dataset plugin turns input files or a synthetic specification into the
//! requests a run sends: prompts, output lengths, and optionally send times
//! (trace replay) and sessions (multi-turn). It is a WebAssembly component
//! implementing the `dataset` world of `barrage:plugin@0.1.0`. Implement
//! [`Dataset`], call [`export_dataset!`] once, and build the crate as a
//! `cdylib` for `wasm32-wasip2`.
//!
//! Plugins run before the run starts, never on the timed path; the host
//! caches what they produce per plugin, configuration, input files, seed and
//! tokenizer.
//!
//! ```
//! use barrage_dataset_sdk::{Batch, Dataset, DatasetError, PluginInfo, Prompt, Sample};
//!
//! /// `count` prompts saying hello.
//! pub struct Hello { next: u64, count: u64 }
//!
//! impl Dataset for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "hello".into(), version: "0.1.0".into(), description: "hello prompts".into() }
//!     }
//!
//!     fn open() -> Result<Self, DatasetError> {
//!         let count = barrage_dataset_sdk::config::value()["count"].as_u64().unwrap_or(3);
//!         Ok(Hello { next: 0, count })
//!     }
//!
//!     fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
//!         let mut batch = Batch::default();
//!         while self.next < self.count && batch.samples.len() < max as usize {
//!             batch.samples.push(Sample::text(self.next, format!("hello number {}", self.next)));
//!             self.next += 1;
//!         }
//!         batch.done = self.next == self.count;
//!         Ok(batch)
//!     }
//! }
//!
//! barrage_dataset_sdk::export_dataset!(Hello);
//!
//! // Natively, the same code runs under the test harness:
//! let prepared = barrage_dataset_sdk::testing::Harness::new()
//!     .config(serde_json::json!({"count": 2}))
//!     .run::<Hello>()
//!     .unwrap();
//! assert_eq!(prepared.samples.len(), 2);
//! assert!(matches!(&prepared.samples[1].prompt, Prompt::Text(t) if t == "hello number 1"));
//! ```
//!
//! Plugins have no filesystem, clock, environment or WASI randomness: read
//! inputs through [`files`], draw randomness from the seeded [`random`]
//! source, and use `BTreeMap` rather than a default-hashed `HashMap`.

use std::marker::PhantomData;

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Generated bindings. Not part of the stable surface.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        world: "dataset",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_dataset_world",
        default_bindings_module: "barrage_dataset_sdk::wit",
    });
}

pub use wit::barrage::plugin::types::{ConfigError, Message, PluginInfo, Prompt};
pub use wit::exports::barrage::plugin::dataset_source::{Batch, DatasetError, Sample, SessionTurn};
use wit::exports::barrage::plugin::{dataset_source, meta};

impl Sample {
    /// A plain text prompt with nothing else set.
    pub fn text(id: u64, prompt: String) -> Sample {
        Sample {
            id,
            prompt: Prompt::Text(prompt),
            prompt_tokens: None,
            output_tokens: None,
            at_ms: None,
            session: None,
            extra: None,
        }
    }
}

impl DatasetError {
    /// An error about the configuration or the dataset as a whole.
    pub fn new(message: impl Into<String>) -> DatasetError {
        DatasetError {
            file: None,
            line: None,
            message: message.into(),
        }
    }

    /// An error at `line` (1-based) of input file `file`.
    pub fn at(file: &str, line: u64, message: impl Into<String>) -> DatasetError {
        DatasetError {
            file: Some(file.to_string()),
            line: Some(line),
            message: message.into(),
        }
    }
}

#[allow(clippy::derivable_impls)]
impl Default for Batch {
    fn default() -> Self {
        Batch {
            samples: Vec::new(),
            skipped: Vec::new(),
            done: false,
        }
    }
}

/// A dataset: a generation of samples, started by [`open`](Dataset::open)
/// and drained by [`next_batch`](Dataset::next_batch) until a batch says
/// `done`.
pub trait Dataset: Sized + 'static {
    /// The plugin's name, version and description.
    fn info() -> PluginInfo;

    /// Check the configuration (`{}` when none was given) before anything
    /// runs. The default accepts anything.
    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Start a generation from the configuration ([`config`]) and the input files ([`files`]).
    fn open() -> Result<Self, DatasetError>;

    /// Up to `max` further samples. Set [`Batch::done`] on the last batch.
    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError>;
}

/// The configuration table the user gave this plugin.
pub mod config {
    /// The configuration as JSON text; `{}` when none was given.
    pub fn raw() -> String {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::config::get();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|h| h.config.to_string());
    }

    /// The configuration as a JSON value.
    pub fn value() -> serde_json::Value {
        serde_json::from_str(&raw()).unwrap_or(serde_json::Value::Object(Default::default()))
    }

    /// The configuration deserialized into `T`; the error names the offending field.
    pub fn get<T: serde::de::DeserializeOwned>() -> Result<T, String> {
        serde_json::from_str(&raw()).map_err(|e| e.to_string())
    }
}

/// Log a line to the run's log, tagged with the plugin's name.
pub fn log_info(message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit::barrage::plugin::log::log(wit::barrage::plugin::log::Level::Info, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
}

/// The run's seeded random source: the same seed gives the same draws.
pub mod random {
    /// The next 64 random bits.
    pub fn next_u64() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::random::next_u64();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|h| {
            // splitmix64, as the host does.
            h.rng = h.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = h.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        });
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64() -> f64 {
        (next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The run's tokenizer, so lengths are counted as the run counts them.
pub mod tokenizer {
    /// Name of the tokenizer and whether it is exact (false: the approximate `words` rule).
    pub fn info() -> (String, bool) {
        #[cfg(target_arch = "wasm32")]
        {
            let i = crate::wit::barrage::plugin::tokenizer::info();
            (i.name, i.exact)
        }
        #[cfg(not(target_arch = "wasm32"))]
        ("words".to_string(), false)
    }

    /// Number of tokens in `text`.
    pub fn count(text: &str) -> u32 {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::tokenizer::count(text);
        #[cfg(not(target_arch = "wasm32"))]
        return text.split_whitespace().count() as u32;
    }

    /// Token ids of `text`.
    pub fn encode(text: &str) -> Vec<u32> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::tokenizer::encode(text);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|h| {
            text.split_whitespace()
                .map(|w| {
                    let next = h.words.len() as u32;
                    *h.vocab.entry(w.to_string()).or_insert_with(|| {
                        h.words.push(w.to_string());
                        next
                    })
                })
                .collect()
        });
    }

    /// Text of `tokens`.
    pub fn decode(tokens: &[u32]) -> String {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::tokenizer::decode(tokens);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|h| {
            tokens
                .iter()
                .map(|&t| h.words.get(t as usize).map(String::as_str).unwrap_or("<unk>"))
                .collect::<Vec<_>>()
                .join(" ")
        });
    }
}

/// The input files named in the plugin's configuration, read-only.
pub mod files {
    /// Names of the input files, as written in the configuration, in order.
    pub fn names() -> Vec<String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::files::names();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|h| h.files.iter().map(|(n, _)| n.clone()).collect());
    }

    /// Size of a file in bytes.
    pub fn size(name: &str) -> Result<u64, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::files::size(name);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::file_bytes(name).map(|b| b.len() as u64);
    }

    /// Up to `len` bytes from `offset`; fewer only at the end of the file.
    pub fn read(name: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::barrage::plugin::files::read(name, offset, len);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::file_bytes(name).map(|b| {
            let from = (offset as usize).min(b.len());
            let to = (from + len as usize).min(b.len());
            b[from..to].to_vec()
        });
    }

    /// A file as a [`std::io::BufRead`], read in 1 MiB chunks so a large
    /// dataset never has to fit in the plugin's memory at once.
    pub struct Reader {
        name: String,
        offset: u64,
        buf: Vec<u8>,
        pos: usize,
    }

    impl Reader {
        /// Read `name` from its start.
        pub fn open(name: &str) -> Reader {
            Reader {
                name: name.to_string(),
                offset: 0,
                buf: Vec::new(),
                pos: 0,
            }
        }
    }

    impl std::io::Read for Reader {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let available = std::io::BufRead::fill_buf(self)?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            std::io::BufRead::consume(self, n);
            Ok(n)
        }
    }

    impl std::io::BufRead for Reader {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            if self.pos >= self.buf.len() {
                self.buf = read(&self.name, self.offset, 1 << 20).map_err(std::io::Error::other)?;
                self.offset += self.buf.len() as u64;
                self.pos = 0;
            }
            Ok(&self.buf[self.pos..])
        }

        fn consume(&mut self, amt: usize) {
            self.pos = (self.pos + amt).min(self.buf.len());
        }
    }
}

/// Adapts a [`Dataset`] to the generated export traits; used by [`export_dataset!`].
#[doc(hidden)]
pub struct DatasetExports<D>(PhantomData<D>);

/// The `generator` resource of a [`Dataset`].
#[doc(hidden)]
pub struct GeneratorOf<D>(std::cell::RefCell<D>);

impl<D: Dataset> meta::Guest for DatasetExports<D> {
    fn info() -> PluginInfo {
        D::info()
    }

    fn check_config() -> Result<(), ConfigError> {
        D::check_config(&config::value())
    }
}

impl<D: Dataset> dataset_source::GuestGenerator for GeneratorOf<D> {
    fn next_batch(&self, max: u32) -> Result<Batch, DatasetError> {
        self.0.borrow_mut().next_batch(max)
    }
}

impl<D: Dataset> dataset_source::Guest for DatasetExports<D> {
    type Generator = GeneratorOf<D>;

    fn open() -> Result<dataset_source::Generator, DatasetError> {
        #[cfg(target_arch = "wasm32")]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                std::panic::set_hook(Box::new(|info| {
                    wit::barrage::plugin::log::log(
                        wit::barrage::plugin::log::Level::Error,
                        &format!("plugin panicked: {info}"),
                    );
                }));
            });
        }
        Ok(dataset_source::Generator::new(GeneratorOf(std::cell::RefCell::new(
            D::open()?,
        ))))
    }
}

/// Export a [`Dataset`] as this component's `dataset` world. Call it once,
/// at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_dataset {
    ($dataset:ty) => {
        // Exports only exist in the wasm build; native builds are for tests.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __barrage_dataset_export {
            use super::*;
            type __BarrageDatasetExports = $crate::DatasetExports<$dataset>;
            $crate::wit::__export_dataset_world!(__BarrageDatasetExports with_types_in $crate::wit);
        }
    };
}

/// A native stand-in for the host, so dataset plugins run under `cargo test`.
/// Its tokenizer is the approximate `words` rule (one token per
/// whitespace-separated word).
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::{Batch, Dataset, DatasetError, Sample};

    #[derive(Default)]
    pub(crate) struct State {
        pub(crate) config: serde_json::Value,
        pub(crate) rng: u64,
        pub(crate) files: Vec<(String, Vec<u8>)>,
        pub(crate) vocab: BTreeMap<String, u32>,
        pub(crate) words: Vec<String>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    pub(crate) fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
        STATE.with(|s| f(&mut s.borrow_mut()))
    }

    pub(crate) fn file_bytes(name: &str) -> Result<Vec<u8>, String> {
        with(|h| {
            h.files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| format!("`{name}` is not one of the dataset's files"))
        })
    }

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

        /// Check the configuration, open, and drain the generation as the host does.
        pub fn run<D: Dataset>(self) -> Result<Prepared, DatasetError> {
            with(|h| {
                h.config = self.config.clone();
                h.rng = self.seed;
                h.files = self.files;
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
