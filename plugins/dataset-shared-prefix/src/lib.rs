//! `shared-prefix`: groups of requests that share a prefix (a system prompt
//! of a given length), for prefix-caching benchmarks.
//!
//! Each of `groups` groups has its own prefix, tagged so no two groups share
//! a first block of tokens; each of its `prompts_per_group` requests adds a
//! question of its own. The shared part is `prefix_tokens`, or
//! `share_ratio` × `prompt_tokens`.

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, Message, PluginInfo, Prompt, Sample, tokenizer};
use dataset_common::Queue;
use dataset_common::dist::Length;
use dataset_common::text::Corpus;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_groups")]
    groups: u32,
    #[serde(default = "default_per_group")]
    prompts_per_group: u32,
    /// Tokens of the shared prefix.
    #[serde(default)]
    prefix_tokens: Option<u32>,
    /// Tokens of each request's own question (default 64).
    #[serde(default)]
    question_tokens: Option<Length>,
    /// Total prompt tokens, with `share_ratio` instead of the two above.
    #[serde(default)]
    prompt_tokens: Option<u32>,
    /// Fraction of `prompt_tokens` that is shared, 0 to 1.
    #[serde(default)]
    share_ratio: Option<f64>,
    #[serde(default = "default_output")]
    output_tokens: Length,
    /// `shuffled` (the default; groups interleave as users' requests would)
    /// or `grouped` (each group's requests one after another).
    #[serde(default)]
    order: Order,
    /// `text` (prefix and question in one text) or `messages` (prefix as
    /// the system message, question as the user message).
    #[serde(default)]
    format: Format,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Order {
    #[default]
    Shuffled,
    Grouped,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Text,
    Messages,
}

fn default_groups() -> u32 {
    8
}
fn default_per_group() -> u32 {
    16
}
fn default_output() -> Length {
    Length::fixed(128.0)
}

impl Config {
    /// (prefix tokens, question length), or what is wrong.
    fn lengths(&self) -> Result<(u32, Length), String> {
        if self.groups == 0 || self.prompts_per_group == 0 {
            return Err("groups and prompts_per_group must be at least 1".into());
        }
        self.output_tokens.validate("output_tokens")?;
        match (self.prefix_tokens, self.share_ratio, self.prompt_tokens) {
            (Some(p), None, None) => {
                let q = self.question_tokens.clone().unwrap_or(Length::fixed(64.0));
                q.validate("question_tokens")?;
                Ok((p, q))
            }
            (None, Some(r), Some(total)) if self.question_tokens.is_none() => {
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("share_ratio is a fraction from 0 to 1, got {r}"));
                }
                let prefix = (r * total as f64).round() as u32;
                Ok((prefix, Length::fixed((total - prefix).max(1) as f64)))
            }
            _ => Err("give prefix_tokens (and optionally question_tokens), or share_ratio with prompt_tokens".into()),
        }
    }
}

/// The plugin.
pub struct SharedPrefix(Queue);

impl Dataset for SharedPrefix {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "shared-prefix".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "groups of requests sharing a system prompt, for prefix-caching benchmarks".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, |c| c.lengths().map(|_| ()))
    }

    fn open() -> Result<Self, DatasetError> {
        let c: Config = dataset_common::config()?;
        let (prefix_tokens, question) = c.lengths().map_err(DatasetError::new)?;
        let corpus = Corpus::load();
        let mut order: Vec<(u32, u32)> = (0..c.groups)
            .flat_map(|g| (0..c.prompts_per_group).map(move |i| (g, i)))
            .collect();
        if c.order == Order::Shuffled {
            dataset_common::shuffle(&mut order);
        }
        let prefixes: Vec<String> = (0..c.groups)
            .map(|g| corpus.tagged_text(&format!("Document {g}:"), corpus.random_start(), prefix_tokens))
            .collect();
        let samples = order
            .into_iter()
            .enumerate()
            .map(|(id, (g, _))| {
                let q = corpus.text(corpus.random_start(), question.tokens());
                let prefix = &prefixes[g as usize];
                let (prompt, tokens) = match c.format {
                    Format::Text => {
                        let text = format!("{prefix}\n\n{q}");
                        let n = tokenizer::count(&text);
                        (Prompt::Text(text), n)
                    }
                    Format::Messages => {
                        let n = tokenizer::count(prefix) + tokenizer::count(&q);
                        let m = vec![Message::text("system", prefix.clone()), Message::text("user", q)];
                        (Prompt::Messages(m), n)
                    }
                };
                Sample {
                    prompt,
                    prompt_tokens: Some(tokens),
                    output_tokens: Some(c.output_tokens.tokens()),
                    ..Sample::text(id as u64, String::new())
                }
            })
            .collect();
        Ok(SharedPrefix(Queue::new(samples, Vec::new())))
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        Ok(self.0.next_batch(max))
    }
}

barrage_sdk::export_dataset!(SharedPrefix);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::Harness;

    fn texts(config: serde_json::Value) -> Vec<String> {
        Harness::new()
            .config(config)
            .run::<SharedPrefix>()
            .unwrap()
            .samples
            .into_iter()
            .map(|s| match s.prompt {
                Prompt::Text(t) => t,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn groups_share_exactly_their_prefix() {
        let t =
            texts(serde_json::json!({"groups": 3, "prompts_per_group": 4, "prefix_tokens": 50, "question_tokens": 10}));
        assert_eq!(t.len(), 12);
        let prefix = |s: &str| s.split("\n\n").next().unwrap().to_string();
        let mut distinct: Vec<String> = t.iter().map(|s| prefix(s)).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        for p in &distinct {
            assert_eq!(p.split_whitespace().count(), 50);
            assert_eq!(t.iter().filter(|s| prefix(s) == *p).count(), 4);
        }
        for s in &t {
            assert_eq!(s.split_whitespace().count(), 60);
        }
        // Different groups differ from their first token.
        let firsts: Vec<&str> = distinct.iter().map(|p| p.split_whitespace().nth(1).unwrap()).collect();
        assert_ne!(firsts[0], firsts[1]);
    }

    #[test]
    fn share_ratio_and_bad_combinations() {
        let t =
            texts(serde_json::json!({"groups": 2, "prompts_per_group": 2, "prompt_tokens": 100, "share_ratio": 0.75}));
        assert_eq!(t[0].split("\n\n").next().unwrap().split_whitespace().count(), 75);
        assert_eq!(t[0].split_whitespace().count(), 100);
        let e = Harness::new()
            .config(serde_json::json!({"prefix_tokens": 10, "share_ratio": 0.5}))
            .run::<SharedPrefix>()
            .unwrap_err();
        assert!(e.message.contains("share_ratio with prompt_tokens"), "{}", e.message);
    }
}
