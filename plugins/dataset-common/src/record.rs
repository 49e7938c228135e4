//! One custom request record (a JSON Lines object or a CSV row) and the
//! sample it makes. Shared by the `jsonl` and `csv` datasets so both accept
//! the same fields. A record's prompt tokens count its text (a server
//! counts its images and audio by its own rule, and reports them).

use barrage_sdk::ContentPart;
use barrage_sdk::dataset::{DatasetError, Message, Prompt, Sample, SessionTurn, tokenizer};
use serde::Deserialize;

use crate::input::Item;
use crate::media::{self, Kind};

/// The fields a record may have. Exactly one of `prompt`, `messages`,
/// `inputs`, and `query` with `documents`.
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
    /// Images sent with `prompt` (making it a chat): files under the
    /// dataset's `media_dir`, or URLs.
    #[serde(default)]
    pub images: OneOrMany,
    /// Audio sent with `prompt`, likewise.
    #[serde(default)]
    pub audio: OneOrMany,
    /// Texts to embed in one request (an embeddings batch).
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    /// A query to rank `documents` against.
    #[serde(default)]
    pub query: Option<String>,
    /// Documents to rank against `query`.
    #[serde(default)]
    pub documents: Option<Vec<String>>,
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

/// A path or URL, or a list of them.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "OneOrManyField")]
pub struct OneOrMany(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyField {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyField> for OneOrMany {
    fn from(f: OneOrManyField) -> OneOrMany {
        match f {
            OneOrManyField::One(s) => OneOrMany(vec![s]),
            OneOrManyField::Many(v) => OneOrMany(v),
        }
    }
}

/// A chat message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageField {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text, or its parts.
    pub content: Content,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Text alone.
    Text(String),
    /// Text, images and audio, in order.
    Parts(Vec<PartField>),
}

/// One part of a message: `{"type": "text", "text": …}`, or
/// `{"type": "image" | "audio", "path" | "url": …}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PartField {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// A file under `media_dir`.
        path: Option<String>,
        /// A URL the server fetches.
        url: Option<String>,
    },
    /// Audio.
    Audio {
        /// A file under `media_dir`.
        path: Option<String>,
        /// A URL the server fetches.
        url: Option<String>,
    },
}

fn media_part(
    kind: Kind,
    path: Option<String>,
    url: Option<String>,
    max_mib: f64,
    item: &Item,
) -> Result<ContentPart, DatasetError> {
    let reference = match (path, url) {
        (Some(p), None) => p,
        (None, Some(u)) => u,
        _ => return Err(item.error("a media part takes `path` (a file under media_dir) or `url`, one of them")),
    };
    media::load(&reference, kind, max_mib, item)
}

impl MessageField {
    fn into_message(self, max_mib: f64, item: &Item) -> Result<Message, DatasetError> {
        let parts = match self.content {
            Content::Text(text) => return Ok(Message::text(self.role, text)),
            Content::Parts(parts) => parts,
        };
        let content = parts
            .into_iter()
            .map(|p| match p {
                PartField::Text { text } => Ok(ContentPart::Text(text)),
                PartField::Image { path, url } => media_part(Kind::Image, path, url, max_mib, item),
                PartField::Audio { path, url } => media_part(Kind::Audio, path, url, max_mib, item),
            })
            .collect::<Result<_, _>>()?;
        Ok(Message {
            content,
            ..Message::text(self.role, String::new())
        })
    }
}

impl Fields {
    /// The sample `id` of these fields, or what is wrong with them. Media
    /// files larger than `max_media_mib` are refused.
    pub fn into_sample(self, id: u64, item: &Item, max_media_mib: f64) -> Result<Sample, DatasetError> {
        let media = !self.images.0.is_empty() || !self.audio.0.is_empty();
        let given = [
            self.prompt.is_some(),
            self.messages.is_some(),
            self.inputs.is_some(),
            self.query.is_some() || self.documents.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(item.error(
                "give one of `prompt` (text), `messages` (a chat), `inputs` (texts to embed) or `query` with `documents` (to rank)",
            ));
        }
        if media && !(given[0] || given[1]) {
            return Err(item.error("`images` and `audio` go with `prompt`"));
        }
        let prompt = match (self.prompt, self.messages) {
            (None, None) => match (self.inputs, self.query, self.documents) {
                (Some(inputs), ..) if inputs.is_empty() => return Err(item.error("`inputs` is empty")),
                (Some(inputs), ..) => Prompt::Inputs(inputs),
                (None, Some(query), Some(documents)) if !documents.is_empty() => {
                    Prompt::Rerank(barrage_sdk::RerankQuery { query, documents })
                }
                (None, Some(_), _) => return Err(item.error("`query` needs `documents` to rank, at least one")),
                (None, None, Some(_)) => return Err(item.error("`documents` need a `query` to rank them against")),
                (None, None, None) => {
                    return Err(item.error(
                        "no prompt: give `prompt` (text), `messages` (a chat), `inputs` (texts to embed) or `query` and `documents`",
                    ));
                }
            },
            (Some(_), Some(_)) => unreachable!("refused above"),
            (Some(text), None) if !media && self.system.is_none() => Prompt::Text(text),
            (Some(text), None) => {
                let mut user = Message::text("user", text);
                let images = self.images.0.into_iter().map(|r| (r, Kind::Image));
                for (reference, kind) in images.chain(self.audio.0.into_iter().map(|r| (r, Kind::Audio))) {
                    user.content.push(media::load(&reference, kind, max_media_mib, item)?);
                }
                let system = self.system.map(|s| Message::text("system", s));
                Prompt::Messages(system.into_iter().chain(std::iter::once(user)).collect())
            }
            (None, Some(_)) if media => {
                return Err(item.error(
                    "`images` and `audio` go with `prompt`; in `messages`, give them as parts of a message's content",
                ));
            }
            (None, Some(messages)) => {
                if messages.is_empty() {
                    return Err(item.error("`messages` is empty"));
                }
                Prompt::Messages(
                    messages
                        .into_iter()
                        .map(|m| m.into_message(max_media_mib, item))
                        .collect::<Result<_, _>>()?,
                )
            }
        };
        let prompt_tokens = match &prompt {
            Prompt::Text(t) => tokenizer::count(t),
            Prompt::Messages(m) => m.iter().map(|m| tokenizer::count(&m.text_content())).sum(),
            Prompt::TokenIds(ids) => ids.len() as u32,
            Prompt::Inputs(inputs) => inputs.iter().map(|i| tokenizer::count(i)).sum(),
            // A cross-encoder reads the query with every document.
            Prompt::Rerank(r) => {
                let query = tokenizer::count(&r.query);
                r.documents.iter().map(|d| tokenizer::count(d) + query).sum()
            }
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
