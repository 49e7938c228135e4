//! `multi-turn`: conversations of several turns, each turn resending the
//! growing history, with a think time before each turn after the first.
//! The engine sends a session's turns in order, each after the previous
//! response ended plus the think time.
//!
//! The history holds the dataset's answers (ShareGPT's, or synthetic text of
//! `assistant_tokens`), not the server's, so every prompt is prepared before
//! the run and identical across runs and servers.

use barrage_sdk::dataset::{
    Batch, ConfigError, Dataset, DatasetError, Message, PluginInfo, Prompt, Sample, SessionTurn, tokenizer,
};
use dataset_common::chat::{Conversation, message_tokens};
use dataset_common::dist::Length;
use dataset_common::input::{FileSeq, JsonItems, OnError, file_names};
use dataset_common::text::Corpus;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `synthetic` or `sharegpt` (conversations from the input files).
    #[serde(default)]
    source: Source,
    /// Sessions to make (synthetic) or at most to take (sharegpt).
    #[serde(default)]
    sessions: Option<u64>,
    /// Turns per session (synthetic; default 4).
    #[serde(default)]
    turns: Option<Length>,
    /// Tokens of each user message (synthetic; default 64).
    #[serde(default)]
    user_tokens: Option<Length>,
    /// Tokens of each answer: asked as the output length and put in the
    /// history (synthetic; default 128).
    #[serde(default)]
    assistant_tokens: Option<Length>,
    /// A system message of this many tokens opening every session.
    #[serde(default)]
    system_tokens: Option<u32>,
    /// Pause before each turn after the first, ms (default 0).
    #[serde(default)]
    think_time_ms: Option<Length>,
    /// ShareGPT: sessions need at least this many exchanges (default 2).
    #[serde(default)]
    min_turns: Option<u32>,
    /// ShareGPT: use at most this many exchanges of a conversation.
    #[serde(default)]
    max_turns: Option<u32>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Source {
    #[default]
    Synthetic,
    Sharegpt,
}

impl Config {
    fn validate(&self) -> Result<(), String> {
        for (name, l) in [
            ("turns", &self.turns),
            ("user_tokens", &self.user_tokens),
            ("assistant_tokens", &self.assistant_tokens),
            ("think_time_ms", &self.think_time_ms),
        ] {
            if let Some(l) = l {
                l.validate(name)?;
            }
        }
        Ok(())
    }
}

/// The plugin.
pub struct MultiTurn {
    config: Config,
    corpus: Corpus,
    system: Option<String>,
    items: FileSeq<JsonItems>,
    sessions: u64,
    next_id: u64,
}

impl Dataset for MultiTurn {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "multi-turn".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "multi-turn sessions resending the growing history, with think times".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, Config::validate)
    }

    fn open() -> Result<Self, DatasetError> {
        let config: Config = dataset_common::config()?;
        config.validate().map_err(DatasetError::new)?;
        let files = match config.source {
            Source::Sharegpt => file_names()?,
            Source::Synthetic => Vec::new(),
        };
        let corpus = Corpus::load();
        let system = config
            .system_tokens
            .map(|n| corpus.tagged_text("System:", corpus.random_start(), n));
        Ok(MultiTurn {
            config,
            corpus,
            system,
            items: FileSeq::new(files, JsonItems::open),
            sessions: 0,
            next_id: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        let limit = match self.config.source {
            Source::Synthetic => Some(self.config.sessions.unwrap_or(100)),
            Source::Sharegpt => self.config.sessions,
        };
        // Whole sessions per batch, so a batch may run over `max` by one session.
        while batch.samples.len() < max as usize {
            if limit.is_some_and(|l| self.sessions >= l) {
                batch.done = true;
                break;
            }
            let conversation = match self.config.source {
                Source::Synthetic => self.synthetic(),
                Source::Sharegpt => match self.next_sharegpt(&mut batch.skipped)? {
                    Some(c) => c,
                    None => {
                        batch.done = true;
                        break;
                    }
                },
            };
            self.push_session(&conversation, &mut batch.samples);
        }
        Ok(batch)
    }
}

impl MultiTurn {
    fn synthetic(&mut self) -> Conversation {
        let turns = self.config.turns.clone().unwrap_or(Length::fixed(4.0)).tokens();
        let user = self.config.user_tokens.clone().unwrap_or(Length::fixed(64.0));
        let assistant = self.config.assistant_tokens.clone().unwrap_or(Length::fixed(128.0));
        let mut messages = Vec::new();
        for _ in 0..turns {
            for (role, l) in [("user", &user), ("assistant", &assistant)] {
                messages.push(Message::text(
                    role,
                    self.corpus.text(self.corpus.random_start(), l.tokens()),
                ));
            }
        }
        Conversation {
            system: None,
            turns: messages,
        }
    }

    fn next_sharegpt(&mut self, skipped: &mut Vec<DatasetError>) -> Result<Option<Conversation>, DatasetError> {
        let min = self.config.min_turns.unwrap_or(2).max(1) as usize;
        loop {
            let Some(item) = self.items.next() else {
                return Ok(None);
            };
            match item.and_then(|i| Conversation::parse(&i)) {
                Ok(mut c) if c.exchanges() >= min => {
                    if let Some(max) = self.config.max_turns {
                        c.turns.truncate(2 * max as usize);
                    }
                    return Ok(Some(c));
                }
                Ok(_) => {}
                Err(e) => self.config.on_error.handle(e, skipped)?,
            }
        }
    }

    fn push_session(&mut self, c: &Conversation, out: &mut Vec<Sample>) {
        let session = self.sessions;
        self.sessions += 1;
        let think = self.config.think_time_ms.clone().unwrap_or(Length::fixed(0.0));
        for k in 0..c.exchanges() {
            let mut messages = c.prompt(k);
            if let Some(s) = &self.system
                && c.system.is_none()
            {
                messages.insert(0, Message::text("system", s.clone()));
            }
            out.push(Sample {
                id: self.next_id,
                prompt_tokens: Some(message_tokens(&messages)),
                prompt: Prompt::Messages(messages),
                output_tokens: Some(tokenizer::count(&c.answer(k)).max(1)),
                at_ms: None,
                session: Some(SessionTurn {
                    session,
                    turn: k as u32,
                    think_time_ms: (k > 0).then(|| think.sample_at_least(0.0)),
                }),
                extra: None,
                tools: Vec::new(),
            });
            self.next_id += 1;
        }
    }
}

barrage_sdk::export_dataset!(MultiTurn);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::Harness;

    #[test]
    fn synthetic_sessions_grow_their_history() {
        let p = Harness::new()
            .config(serde_json::json!({"sessions": 3, "turns": 4, "user_tokens": 5, "assistant_tokens": 7, "think_time_ms": 250, "system_tokens": 6}))
            .run::<MultiTurn>()
            .unwrap();
        assert_eq!(p.samples.len(), 12);
        for (i, s) in p.samples.iter().enumerate() {
            let t = s.session.as_ref().unwrap();
            assert_eq!((t.session, t.turn as usize), ((i / 4) as u64, i % 4));
            assert_eq!(t.think_time_ms, if i % 4 == 0 { None } else { Some(250.0) });
            let Prompt::Messages(m) = &s.prompt else { panic!() };
            assert_eq!(m.len(), 2 + 2 * (i % 4), "system + history + user");
            assert_eq!(s.prompt_tokens, Some(6 + 5 + 12 * (i % 4) as u32));
            assert_eq!(s.output_tokens, Some(7));
        }
        // Turn 2 resends turn 1's prompt and answer.
        let (Prompt::Messages(a), Prompt::Messages(b)) = (&p.samples[1].prompt, &p.samples[2].prompt) else {
            panic!()
        };
        assert_eq!(format!("{:?}", &a[..]), format!("{:?}", &b[..a.len()]));
    }

    #[test]
    fn sharegpt_sessions() {
        let data = r#"[{"conversations": [{"from": "human", "value": "a b"}, {"from": "gpt", "value": "c d e"}, {"from": "human", "value": "f"}, {"from": "gpt", "value": "g h"}]},
                       {"conversations": [{"from": "human", "value": "only one"}, {"from": "gpt", "value": "turn"}]}]"#;
        let p = Harness::new()
            .file("c.json", data)
            .config(serde_json::json!({"source": "sharegpt"}))
            .run::<MultiTurn>()
            .unwrap();
        assert_eq!(p.samples.len(), 2, "the one-exchange conversation is left out");
        assert_eq!(p.samples[1].prompt_tokens, Some(6));
        assert_eq!(p.samples[1].output_tokens, Some(2));
    }
}
