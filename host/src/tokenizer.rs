//! Tokenizers offered to plugins through the `tokenizer` import.
//!
//! This module holds the interface and the approximate fallback; real
//! tokenizers (Hugging Face `tokenizer.json`, OpenAI BPE) plug in behind the
//! same trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A tokenizer shared by all plugin instances of a run.
pub trait Tokenizer: Send + Sync {
    /// Name shown in results, e.g. a model id or `words`.
    fn name(&self) -> &str;
    /// False for an approximate counting rule.
    fn exact(&self) -> bool;
    /// Number of tokens in `text`.
    fn count(&self, text: &str) -> u32;
    /// Token ids of `text`.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of `tokens`.
    fn decode(&self, tokens: &[u32]) -> String;
}

/// The fallback when no tokenizer is configured: one whitespace-separated
/// word is one token. Approximate, and labelled so in results.
#[derive(Default)]
pub struct WordTokenizer {
    vocab: Mutex<Vocab>,
}

#[derive(Default)]
struct Vocab {
    ids: HashMap<String, u32>,
    words: Vec<String>,
}

impl WordTokenizer {
    /// A shareable instance.
    pub fn shared() -> Arc<dyn Tokenizer> {
        Arc::new(WordTokenizer::default())
    }
}

impl Tokenizer for WordTokenizer {
    fn name(&self) -> &str {
        "words"
    }

    fn exact(&self) -> bool {
        false
    }

    fn count(&self, text: &str) -> u32 {
        text.split_whitespace().count() as u32
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut vocab = self.vocab.lock().unwrap_or_else(|p| p.into_inner());
        text.split_whitespace()
            .map(|w| match vocab.ids.get(w) {
                Some(&id) => id,
                None => {
                    let id = vocab.words.len() as u32;
                    vocab.words.push(w.to_string());
                    vocab.ids.insert(w.to_string(), id);
                    id
                }
            })
            .collect()
    }

    fn decode(&self, tokens: &[u32]) -> String {
        let vocab = self.vocab.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .map(|&t| vocab.words.get(t as usize).map(String::as_str).unwrap_or("<unk>"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_count() {
        let t = WordTokenizer::default();
        let ids = t.encode("the cat  sat on the mat");
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], ids[4]);
        assert_eq!(t.count("the cat  sat on the mat"), 6);
        assert_eq!(t.decode(&ids), "the cat sat on the mat");
        assert!(!t.exact());
    }
}
