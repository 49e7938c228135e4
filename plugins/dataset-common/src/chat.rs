//! ShareGPT conversations: `{"id": …, "conversations": [{"from": "human", "value": …}, {"from": "gpt", …}]}`.

use barrage_sdk::dataset::Message;
use serde::Deserialize;

use crate::input::Item;

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    conversations: Option<Vec<RawTurn>>,
    /// Some exports use `conversation` or `messages`.
    #[serde(default)]
    conversation: Option<Vec<RawTurn>>,
    #[serde(default)]
    messages: Option<Vec<RawTurn>>,
}

#[derive(Deserialize)]
struct RawTurn {
    #[serde(alias = "role")]
    from: String,
    #[serde(alias = "content")]
    value: String,
}

/// A conversation as chat messages (`system`, `user`, `assistant`).
pub struct Conversation {
    /// A system message, if the conversation opens with one.
    pub system: Option<String>,
    /// Alternating user and assistant messages, user first.
    pub turns: Vec<Message>,
}

impl Conversation {
    /// Parse one ShareGPT item. Roles `human`/`user` and `gpt`/`assistant`/
    /// `chatgpt`/`bard`/`bing` are understood; a conversation is cut at the
    /// first place where users and assistants stop alternating.
    pub fn parse(item: &Item) -> Result<Conversation, barrage_sdk::dataset::DatasetError> {
        let raw: Raw =
            serde_json::from_str(&item.text).map_err(|e| item.error(format!("not a ShareGPT conversation: {e}")))?;
        let turns = raw.conversations.or(raw.conversation).or(raw.messages).ok_or_else(|| {
            item.error("no `conversations` list: ShareGPT items look like {\"conversations\": [{\"from\": \"human\", \"value\": \"…\"}, …]}")
        })?;
        let mut system = None;
        let mut out: Vec<Message> = Vec::new();
        for t in turns {
            let role = match t.from.to_ascii_lowercase().as_str() {
                "human" | "user" => "user",
                "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" => "assistant",
                "system" if out.is_empty() => {
                    system = Some(t.value);
                    continue;
                }
                _ => break,
            };
            let expected = if out.len().is_multiple_of(2) {
                "user"
            } else {
                "assistant"
            };
            if role != expected {
                break;
            }
            out.push(Message::text(role, t.value));
        }
        Ok(Conversation { system, turns: out })
    }

    /// Complete user–assistant exchanges.
    pub fn exchanges(&self) -> usize {
        self.turns.len() / 2
    }

    /// The messages sent for exchange `k` (0-based): the system message, the
    /// history of the earlier exchanges, and the user message of exchange `k`.
    pub fn prompt(&self, k: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        if let Some(s) = &self.system {
            messages.push(Message::text("system", s.clone()));
        }
        messages.extend(self.turns[..2 * k + 1].iter().cloned());
        messages
    }

    /// The dataset's answer to exchange `k`.
    pub fn answer(&self, k: usize) -> String {
        self.turns[2 * k + 1].text_content()
    }
}

/// Tokens in a list of messages: the sum over their contents (the server's
/// chat template adds a few more; the host can count with the template).
pub fn message_tokens(messages: &[Message]) -> u32 {
    messages
        .iter()
        .map(|m| barrage_sdk::dataset::tokenizer::count(&m.text_content()))
        .sum()
}
