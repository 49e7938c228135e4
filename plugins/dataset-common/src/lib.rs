//! Shared parts of Barrage's first-party dataset plugins.
//!
//! - [`dist`]: length distributions (`128`, `{dist: normal, mean: 512, stddev: 64}`, …).
//! - [`text`]: prompts of exact token lengths cut from real English text.
//! - [`input`]: reading input files as lines or JSON-array items, with the
//!   `on_error: fail | skip` policy.
//! - [`chat`]: ShareGPT conversations.
//! - [`record`], [`media`]: a custom request record, the images and audio it names.
//! - [`Queue`]: serve samples prepared up front in batches.

pub mod chat;
pub mod dist;
pub mod input;
pub mod media;
pub mod record;
pub mod text;

use std::collections::VecDeque;

use barrage_sdk::dataset::{Batch, ConfigError, DatasetError, Sample};

/// Samples prepared up front, served in batches.
#[derive(Default)]
pub struct Queue {
    samples: VecDeque<Sample>,
    skipped: Vec<DatasetError>,
}

impl Queue {
    /// Serve `samples`, reporting `skipped` with the first batch.
    pub fn new(samples: Vec<Sample>, skipped: Vec<DatasetError>) -> Queue {
        Queue {
            samples: samples.into(),
            skipped,
        }
    }

    /// The next batch of at most `max`.
    pub fn next_batch(&mut self, max: u32) -> Batch {
        let n = self.samples.len().min(max.max(1) as usize);
        Batch {
            samples: self.samples.drain(..n).collect(),
            skipped: std::mem::take(&mut self.skipped),
            done: self.samples.is_empty(),
        }
    }
}

/// Read the plugin's configuration into `T`, or a config error naming the field.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, DatasetError> {
    barrage_sdk::dataset::config::get::<T>().map_err(|e| DatasetError::new(format!("configuration: {e}")))
}

/// Check that the configuration deserializes into `T` (for `check_config`).
pub fn check<T: serde::de::DeserializeOwned>(config: &serde_json::Value) -> Result<(), ConfigError> {
    serde_json::from_value::<T>(config.clone())
        .map(|_| ())
        .map_err(|e| ConfigError {
            field: None,
            message: e.to_string(),
        })
}

/// Check that the configuration deserializes into `T` and passes `validate`
/// (for `check_config`).
pub fn check_valid<T: serde::de::DeserializeOwned>(
    config: &serde_json::Value,
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let c: T = serde_json::from_value(config.clone()).map_err(|e| ConfigError {
        field: None,
        message: e.to_string(),
    })?;
    validate(&c).map_err(|message| ConfigError { field: None, message })
}

/// A seeded shuffle (Fisher–Yates on the run's random source).
pub fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (barrage_sdk::dataset::random::next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
