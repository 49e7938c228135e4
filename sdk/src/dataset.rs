//! Dataset plugins (feature `dataset`).
//!
//! A dataset plugin turns input files or a synthetic specification into the
//! requests a run sends: prompts, output lengths, and optionally send times
//! (trace replay) and sessions (multi-turn). It is a WebAssembly component
//! implementing the `dataset` world of `barrage:plugin@0.1.0`. Implement
//! [`Dataset`], call [`export_dataset!`](crate::export_dataset) once, and
//! build the crate as a `cdylib` for `wasm32-wasip2`.
//!
//! Plugins run before the run starts, never on the timed path; the host
//! caches what they produce per plugin, configuration, input files, seed and
//! tokenizer.
//!
//! ```
//! use barrage_sdk::dataset::{Batch, Dataset, DatasetError, PluginInfo, Prompt, Sample};
//!
//! /// `count` prompts saying hello.
//! pub struct Hello { next: u64, count: u64 }
//!
//! impl Dataset for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("hello", "0.1.0", "hello prompts")
//!     }
//!
//!     fn open() -> Result<Self, DatasetError> {
//!         let count = barrage_sdk::config::value()["count"].as_u64().unwrap_or(3);
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
//! barrage_sdk::export_dataset!(Hello);
//!
//! // Natively, the same code runs under the test harness:
//! let prepared = barrage_sdk::testing::Harness::new()
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

use crate::wit::dataset::exports::barrage::plugin::{dataset_source, meta};

pub use crate::wit::dataset::exports::barrage::plugin::dataset_source::{Batch, DatasetError, Sample, SessionTurn};
// What a dataset author needs, in one module.
pub use crate::{
    ConfigError, ContentPart, Media, MediaSource, Message, PluginInfo, Prompt, RerankQuery, Tool, ToolCall, config,
    log, random, tokenizer,
};

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
            tools: Vec::new(),
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

/// The input files named in the plugin's configuration, read-only.
pub mod files {
    /// Names of the input files, as written in the configuration, in order.
    pub fn names() -> Vec<String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::dataset::barrage::plugin::files::names();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.files.iter().map(|(n, _)| n.clone()).collect());
    }

    /// Size of a file in bytes.
    pub fn size(name: &str) -> Result<u64, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::dataset::barrage::plugin::files::size(name);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::file_bytes(name).map(|b| b.len() as u64);
    }

    /// Up to `len` bytes from `offset`; fewer only at the end of the file.
    pub fn read(name: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::wit::dataset::barrage::plugin::files::read(name, offset, len);
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
        crate::__init();
        D::info()
    }

    fn check_config() -> Result<(), ConfigError> {
        crate::__init();
        D::check_config(&crate::__config_for_check()?)
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
        crate::__init();
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
            type __BarrageDatasetExports = $crate::dataset::DatasetExports<$dataset>;
            $crate::wit::dataset::__export_dataset_world!(__BarrageDatasetExports with_types_in $crate::wit::dataset);
        }
    };
}
