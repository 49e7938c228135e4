//! One custom request record (a JSON Lines object or a CSV row) and the
//! sample it makes. Shared by the `jsonl` and `csv` datasets so both accept
//! the same fields.

use barrage_sdk::dataset::{Message, Prompt, Sample, SessionTurn, tokenizer};
use serde::Deserialize;

use crate::input::Item;

/// The fields a record may have. Exactly one of `prompt` and `messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// A text prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// A chat conversation.
    #[serde(default)]
    pub messages: Option<Vec<MessageField>>,
    /// A system message put before `prompt` (making it a chat).
    #[serde(default)]
    pub system: Option<String>,
    /// Output tokens to ask for (`max_tokens` is accepted as a synonym).
    #[serde(default, alias = "max_tokens")]
    pub output_tokens: Option<u32>,
    /// Send time, ms from the start of the stage (trace replay).
    #[serde(default)]
    pub at_ms: Option<f64>,
    /// Session id, for multi-turn records.
    #[serde(default)]
    pub session: Option<u64>,
    /// Turn within the session, from 0.
    #[serde(default)]
    pub turn: Option<u32>,
    /// Pause before this turn, ms.
    #[serde(default)]
    pub think_time_ms: Option<f64>,
    /// Extra request body fields (a JSON object), e.g. `{"temperature": 0}`.
    #[serde(default)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A chat message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageField {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

impl Fields {
    /// The sample `id` of these fields, or what is wrong with them.
    pub fn into_sample(self, id: u64, item: &Item) -> Result<Sample, barrage_sdk::dataset::DatasetError> {
        let prompt = match (self.prompt, self.messages) {
            (Some(_), Some(_)) => return Err(item.error("give `prompt` or `messages`, not both")),
            (None, None) => return Err(item.error("no prompt: give `prompt` (text) or `messages` (a chat)")),
            (Some(text), None) => match self.system {
                None => Prompt::Text(text),
                Some(system) => Prompt::Messages(vec![Message::text("system", system), Message::text("user", text)]),
            },
            (None, Some(messages)) => {
                if messages.is_empty() {
                    return Err(item.error("`messages` is empty"));
                }
                Prompt::Messages(messages.into_iter().map(|m| Message::text(m.role, m.content)).collect())
            }
        };
        let prompt_tokens = match &prompt {
            Prompt::Text(t) => tokenizer::count(t),
            Prompt::Messages(m) => m.iter().map(|m| tokenizer::count(&m.text_content())).sum(),
            Prompt::TokenIds(ids) => ids.len() as u32,
            Prompt::Inputs(_) | Prompt::Rerank(_) => unreachable!("made above as text or messages"),
        };
        if let Some(at) = self.at_ms
            && !(at >= 0.0 && at.is_finite())
        {
            return Err(item.error(format!("at_ms must be ≥ 0, got {at}")));
        }
        if self.output_tokens == Some(0) {
            return Err(item.error("output_tokens must be at least 1"));
        }
        let session = match (self.session, self.turn) {
            (Some(session), turn) => Some(SessionTurn {
                session,
                turn: turn.unwrap_or(0),
                think_time_ms: self.think_time_ms,
            }),
            (None, Some(_)) => return Err(item.error("`turn` needs `session`")),
            (None, None) => None,
        };
        Ok(Sample {
            id,
            prompt,
            prompt_tokens: Some(prompt_tokens),
            output_tokens: self.output_tokens,
            at_ms: self.at_ms,
            session,
            extra: self.extra.map(|m| serde_json::Value::Object(m).to_string()),
            tools: Vec::new(),
        })
    }
}
