//! A configuration value out of range, the same for run and simulator
//! configurations.

/// A value that cannot be used: the key at fault and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidKey {
    /// The key, e.g. `stages[1].rate` or `batching.max_num_seqs`.
    pub key: String,
    /// What is wrong and what is accepted; it starts with the key.
    pub message: String,
}

impl InvalidKey {
    /// From a check's message, which starts with the key it is about.
    pub fn new(message: String) -> InvalidKey {
        let key = message
            .split([':', ' '])
            .next()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string();
        InvalidKey { key, message }
    }
}
