//! `sharegpt`: prompts from ShareGPT conversation files (a JSON array or
//! JSON Lines of `{"conversations": [{"from": "human", "value": …}, …]}`),
//! read item by item so a full ShareGPT dump never sits in memory whole.
//!
//! The output length asked for is the length of the dataset's own answer
//! (as counted by the run's tokenizer) unless `output_tokens` is given.
//! Length filters drop conversations outside the bounds (counted, logged).

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, PluginInfo, Prompt, Sample, tokenizer};
use dataset_common::chat::{Conversation, message_tokens};
use dataset_common::dist::Length;
use dataset_common::input::{FileSeq, JsonItems, OnError, file_names};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `first_turn`: the first user message; `conversation`: the whole
    /// conversation up to its last user message.
    #[serde(default)]
    mode: Mode,
    /// `messages` (chat) or `text` (the user message alone; `first_turn` only).
    #[serde(default)]
    format: Format,
    #[serde(default)]
    min_prompt_tokens: Option<u32>,
    #[serde(default)]
    max_prompt_tokens: Option<u32>,
    #[serde(default)]
    min_output_tokens: Option<u32>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    /// Most prompt + output tokens.
    #[serde(default)]
    max_total_tokens: Option<u32>,
    /// Stop after this many samples.
    #[serde(default)]
    max_samples: Option<u64>,
    /// Ask for this output length instead of the dataset answer's.
    #[serde(default)]
    output_tokens: Option<Length>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    FirstTurn,
    Conversation,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Messages,
    Text,
}

/// The plugin.
pub struct ShareGpt {
    config: Config,
    items: FileSeq<JsonItems>,
    next_id: u64,
    filtered: u64,
}

impl Dataset for ShareGpt {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "sharegpt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "ShareGPT conversations, first turns or whole conversations, filtered by length".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check::<Config>(config)
    }

    fn open() -> Result<Self, DatasetError> {
        let config: Config = dataset_common::config()?;
        if config.format == Format::Text && config.mode == Mode::Conversation {
            return Err(DatasetError::new(
                "format: text sends one user message; with mode: conversation use format: messages",
            ));
        }
        if let Some(l) = &config.output_tokens {
            l.validate("output_tokens").map_err(DatasetError::new)?;
        }
        Ok(ShareGpt {
            config,
            items: FileSeq::new(file_names()?, JsonItems::open),
            next_id: 0,
            filtered: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        while batch.samples.len() < max as usize {
            if self.config.max_samples.is_some_and(|m| self.next_id >= m) {
                batch.done = true;
                break;
            }
            let Some(item) = self.items.next() else {
                batch.done = true;
                break;
            };
            let conv = match item.and_then(|i| Conversation::parse(&i)) {
                Ok(c) => c,
                Err(e) => {
                    self.config.on_error.handle(e, &mut batch.skipped)?;
                    continue;
                }
            };
            if let Some(s) = self.sample(&conv) {
                batch.samples.push(s);
            } else {
                self.filtered += 1;
            }
        }
        if batch.done && self.filtered > 0 {
            barrage_sdk::log::info(&format!(
                "{} conversations left out by the length filters or for having no complete exchange",
                self.filtered
            ));
        }
        Ok(batch)
    }
}

impl ShareGpt {
    /// The sample of a conversation, or none when filtered out.
    fn sample(&mut self, conv: &Conversation) -> Option<Sample> {
        if conv.exchanges() == 0 {
            return None;
        }
        let k = match self.config.mode {
            Mode::FirstTurn => 0,
            Mode::Conversation => conv.exchanges() - 1,
        };
        let messages = conv.prompt(k);
        let (prompt, prompt_tokens) = match self.config.format {
            Format::Messages => {
                let n = message_tokens(&messages);
                (Prompt::Messages(messages), n)
            }
            Format::Text => {
                let text = conv.turns[0].text_content();
                let n = tokenizer::count(&text);
                (Prompt::Text(text), n)
            }
        };
        let answer_tokens = tokenizer::count(&conv.answer(k));
        let c = &self.config;
        let out_of =
            |v: u32, min: Option<u32>, max: Option<u32>| min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m);
        if out_of(prompt_tokens, c.min_prompt_tokens, c.max_prompt_tokens)
            || out_of(answer_tokens, c.min_output_tokens, c.max_output_tokens)
            || c.max_total_tokens.is_some_and(|m| prompt_tokens + answer_tokens > m)
        {
            return None;
        }
        let output_tokens = match &c.output_tokens {
            Some(l) => l.tokens(),
            None => answer_tokens.max(1),
        };
        let id = self.next_id;
        self.next_id += 1;
        Some(Sample {
            prompt,
            prompt_tokens: Some(prompt_tokens),
            output_tokens: Some(output_tokens),
            ..Sample::text(id, String::new())
        })
    }
}

barrage_sdk::export_dataset!(ShareGpt);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::Harness;

    const DATA: &str = r#"[
      {"id": "a", "conversations": [{"from": "human", "value": "what is a cat"}, {"from": "gpt", "value": "a small animal that purrs"}, {"from": "human", "value": "and a dog"}, {"from": "gpt", "value": "a loyal animal"}]},
      {"id": "b", "conversations": [{"from": "human", "value": "hi"}]},
      {"id": "c", "conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "name three colours please"}, {"from": "gpt", "value": "red green blue"}]}
    ]"#;

    #[test]
    fn first_turns_and_conversations() {
        let first = Harness::new().file("d.json", DATA).run::<ShareGpt>().unwrap().samples;
        assert_eq!(first.len(), 2, "b has no answer");
        assert_eq!(first[0].output_tokens, Some(5));
        assert_eq!(first[0].prompt_tokens, Some(4));
        let Prompt::Messages(m) = &first[1].prompt else {
            panic!()
        };
        assert_eq!((m[0].role.as_str(), m.len()), ("system", 2));
        let conv = Harness::new()
            .file("d.json", DATA)
            .config(serde_json::json!({"mode": "conversation", "max_prompt_tokens": 20}))
            .run::<ShareGpt>()
            .unwrap()
            .samples;
        let Prompt::Messages(m) = &conv[0].prompt else { panic!() };
        assert_eq!(m.len(), 3);
        assert_eq!(conv[0].output_tokens, Some(3));
        let filtered = Harness::new()
            .file("d.json", DATA)
            .config(serde_json::json!({"min_prompt_tokens": 5}))
            .run::<ShareGpt>()
            .unwrap()
            .samples;
        assert_eq!(filtered.len(), 1);
    }

    #[test]
    fn malformed_items_fail_or_are_skipped() {
        let bad = "[{\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}, {\"from\": \"gpt\", \"value\": \"y\"}]},\n {\"conversations\": 7}]";
        let e = Harness::new().file("d.json", bad).run::<ShareGpt>().unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (Some("d.json"), Some(2)));
        let p = Harness::new()
            .file("d.json", bad)
            .config(serde_json::json!({"on_error": "skip"}))
            .run::<ShareGpt>()
            .unwrap();
        assert_eq!((p.samples.len(), p.skipped.len()), (1, 1));
    }
}
