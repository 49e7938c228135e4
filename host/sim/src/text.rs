//! Deterministic output text and prompt accounting.
//!
//! Without a configured tokenizer one whitespace-separated word is one
//! token, on both sides: the simulator emits one word per token and counts
//! prompts in words, so token counts are exact and checkable.

use barrage_core::rng::splitmix64;

/// Words the simulator says. Plain ASCII, so chunks need no JSON escaping.
const VOCAB: &[&str] = &[
    "the",
    "model",
    "server",
    "token",
    "stream",
    "latency",
    "batch",
    "cache",
    "prefill",
    "decode",
    "request",
    "answer",
    "queue",
    "replica",
    "throughput",
    "benchmark",
    "prompt",
    "kernel",
    "tensor",
    "memory",
    "schedule",
    "rate",
    "load",
    "signal",
    "measure",
    "result",
    "value",
    "system",
    "engine",
    "output",
    "input",
    "context",
];

/// The `i`-th output word of a response whose text is seeded by `seed`,
/// with its leading space.
pub fn word(seed: u64, i: u32) -> &'static str {
    let mut s = seed ^ (u64::from(i) << 32 | u64::from(i));
    let w = VOCAB[(splitmix64(&mut s) % VOCAB.len() as u64) as usize];
    // Every word but the first gets a leading space, built in as a static
    // string to keep chunk formatting allocation-free.
    if i == 0 {
        w
    } else {
        SPACED[VOCAB.iter().position(|v| *v == w).unwrap_or(0)]
    }
}

const SPACED: &[&str] = &[
    " the",
    " model",
    " server",
    " token",
    " stream",
    " latency",
    " batch",
    " cache",
    " prefill",
    " decode",
    " request",
    " answer",
    " queue",
    " replica",
    " throughput",
    " benchmark",
    " prompt",
    " kernel",
    " tensor",
    " memory",
    " schedule",
    " rate",
    " load",
    " signal",
    " measure",
    " result",
    " value",
    " system",
    " engine",
    " output",
    " input",
    " context",
];

/// A stable 64-bit hash (FNV-1a), for seeding text from the prompt and for
/// prefix-cache blocks.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The prompt as the simulator sees it: its token count and the hashes of
/// its prefix-cache blocks (each hash covers the whole prefix up to and
/// including its block, so equal hashes mean equal prefixes).
#[derive(Debug, Clone, Default)]
pub struct PromptShape {
    /// Prompt tokens.
    pub tokens: u32,
    /// One hash per full block.
    pub block_hashes: Vec<u64>,
    /// Hash of the whole prompt, to seed the output text.
    pub hash: u64,
}

impl PromptShape {
    /// Shape of a prompt given as words (text or chat contents).
    pub fn from_words<'a>(words: impl Iterator<Item = &'a str>, block: usize) -> PromptShape {
        let mut shape = PromptShape::default();
        let mut h = 0u64;
        for (i, w) in words.enumerate() {
            h = hash_bytes(h, w.as_bytes());
            shape.tokens += 1;
            if (i + 1) % block == 0 {
                shape.block_hashes.push(h);
            }
        }
        shape.hash = h;
        shape
    }

    /// Shape of a prompt given as token ids.
    pub fn from_ids(ids: &[u32], block: usize) -> PromptShape {
        let mut shape = PromptShape::default();
        let mut h = 0u64;
        for (i, id) in ids.iter().enumerate() {
            h = hash_bytes(h, &id.to_le_bytes());
            shape.tokens += 1;
            if (i + 1) % block == 0 {
                shape.block_hashes.push(h);
            }
        }
        shape.hash = h;
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_deterministic_and_one_token_each() {
        let a: String = (0..10).map(|i| word(42, i)).collect();
        let b: String = (0..10).map(|i| word(42, i)).collect();
        assert_eq!(a, b);
        assert_eq!(a.split_whitespace().count(), 10);
        assert!(!a.starts_with(' '));
        assert_ne!(a, (0..10).map(|i| word(43, i)).collect::<String>());
    }

    #[test]
    fn equal_prefixes_share_block_hashes() {
        let a = PromptShape::from_words("a b c d e f g".split_whitespace(), 2);
        let b = PromptShape::from_words("a b c d x y".split_whitespace(), 2);
        assert_eq!(a.tokens, 7);
        assert_eq!(a.block_hashes.len(), 3);
        assert_eq!(a.block_hashes[..2], b.block_hashes[..2]);
        assert_ne!(a.block_hashes[2], b.block_hashes[2]);
    }
}
