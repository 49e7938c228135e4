//! Prompts of exact token lengths, cut from real English text so that a
//! server sees ordinary language rather than a repeated token it could
//! compress, cache or answer trivially.
//!
//! The corpus is encoded once with the run's tokenizer; a prompt is a run of
//! its token ids (wrapping around) decoded back to text. Because decoding
//! and re-encoding can merge tokens at the cut, the cut moves by a token or
//! two until the text counts exactly as asked.

use barrage_sdk::dataset::tokenizer;

/// Public-domain prose (Melville, Austen, Lincoln, Dickens) and plain
/// technical and descriptive paragraphs.
pub const CORPUS: &str = include_str!("corpus.txt");

/// The corpus as token ids of the run's tokenizer.
pub struct Corpus {
    ids: Vec<u32>,
}

impl Corpus {
    /// Encode the corpus with the run's tokenizer.
    pub fn load() -> Corpus {
        Corpus {
            ids: tokenizer::encode(CORPUS),
        }
    }

    /// Tokens in the corpus.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the corpus has no tokens (never, with a working tokenizer).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A random start position.
    pub fn random_start(&self) -> usize {
        (barrage_sdk::dataset::random::next_u64() % self.ids.len().max(1) as u64) as usize
    }

    /// `n` token ids from position `start`, wrapping around.
    pub fn ids(&self, start: usize, n: usize) -> Vec<u32> {
        if self.ids.is_empty() {
            return Vec::new();
        }
        self.ids
            .iter()
            .cycle()
            .skip(start % self.ids.len())
            .take(n)
            .copied()
            .collect()
    }

    /// Text of exactly `tokens` tokens that starts with `tag` (e.g.
    /// `Document 7:`) and goes on with the corpus from `start`, so texts
    /// with different tags never share a first block of tokens.
    pub fn tagged_text(&self, tag: &str, start: usize, tokens: u32) -> String {
        let mut ids = tokenizer::encode(tag);
        ids.extend(self.ids(start, tokens as usize + 3));
        exact_text(&ids, tokens)
    }

    /// Text of exactly `tokens` tokens (when the tokenizer allows it), from `start`.
    pub fn text(&self, start: usize, tokens: u32) -> String {
        exact_text(&self.ids(start, tokens as usize + 3), tokens)
    }
}

/// Decode a prefix of `ids` that counts as exactly `tokens` tokens: try
/// cuts at `tokens`, then one or two either side. `ids` should hold a few
/// more than `tokens`.
pub fn exact_text(ids: &[u32], tokens: u32) -> String {
    let n = (tokens as usize).min(ids.len());
    if n == 0 {
        return String::new();
    }
    let candidates = [n, n + 1, n.saturating_sub(1), n + 2, n.saturating_sub(2), n + 3];
    candidates
        .iter()
        .filter(|&&k| k > 0 && k <= ids.len())
        .map(|&k| tokenizer::decode(&ids[..k]))
        .find(|text| tokenizer::count(text) == tokens)
        .unwrap_or_else(|| tokenizer::decode(&ids[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_have_the_asked_length_and_real_words() {
        let c = Corpus::load();
        assert!(c.len() >= 900, "corpus of {} words", c.len());
        for n in [1, 10, 100, 1000, 3000] {
            let t = c.text(17, n);
            assert_eq!(tokenizer::count(&t), n);
        }
        assert!(c.text(0, 4).starts_with("Call me Ishmael."));
        assert_ne!(c.text(0, 50), c.text(1, 50));
    }
}
