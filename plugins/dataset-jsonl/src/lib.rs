//! `jsonl`: custom requests, one JSON object per line:
//!
//! ```json
//! {"prompt": "Summarize: …", "output_tokens": 200}
//! {"messages": [{"role": "system", "content": "…"}, {"role": "user", "content": "…"}], "extra": {"temperature": 0}}
//! ```
//!
//! Images and audio (files under the dataset's `media_dir`, or URLs) go
//! with a prompt, or as parts of a message:
//!
//! ```json
//! {"prompt": "What is in this picture?", "images": ["cats/1.png"], "output_tokens": 64}
//! {"messages": [{"role": "user", "content": [{"type": "text", "text": "Transcribe:"}, {"type": "audio", "path": "clip.wav"}]}]}
//! ```
//!
//! Fields: `prompt` or `messages`, `system`, `images`, `audio`,
//! `output_tokens` (or `max_tokens`), `at_ms`, `session`, `turn`,
//! `think_time_ms`, `extra` (see `dataset_common::record::Fields`).

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, PluginInfo};
use dataset_common::input::{FileSeq, Lines, OnError, file_names};
use dataset_common::record::Fields;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    on_error: OnError,
    /// Stop after this many samples.
    #[serde(default)]
    max_samples: Option<u64>,
    /// Largest image or audio file, MiB (default 20).
    #[serde(default = "default_max_media")]
    max_media_mib: f64,
}

fn default_max_media() -> f64 {
    dataset_common::media::DEFAULT_MAX_MIB
}

/// The plugin.
pub struct Jsonl {
    config: Config,
    lines: FileSeq<Lines>,
    next_id: u64,
}

impl Dataset for Jsonl {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "jsonl".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "custom requests from JSON Lines files: a prompt or messages per line".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, |c| dataset_common::media::check_max(c.max_media_mib))
    }

    fn open() -> Result<Self, DatasetError> {
        Ok(Jsonl {
            config: dataset_common::config()?,
            lines: FileSeq::new(file_names()?, Lines::open),
            next_id: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        while batch.samples.len() < max as usize {
            if self.config.max_samples.is_some_and(|m| self.next_id >= m) {
                batch.done = true;
                break;
            }
            let Some(item) = self.lines.next() else {
                batch.done = true;
                break;
            };
            let sample = item.and_then(|item| {
                let fields: Fields = serde_json::from_str(&item.text).map_err(|e| item.error(format!("{e}")))?;
                fields.into_sample(self.next_id, &item, self.config.max_media_mib)
            });
            self.next_id += u64::from(sample.is_ok());
            self.config.on_error.keep(sample, &mut batch)?;
        }
        Ok(batch)
    }
}

barrage_sdk::export_dataset!(Jsonl);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::dataset::Prompt;
    use barrage_sdk::testing::Harness;

    #[test]
    fn prompts_messages_and_errors_by_line() {
        let data = "{\"prompt\": \"one two three\", \"output_tokens\": 7, \"extra\": {\"temperature\": 0}}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi there\"}]}\n";
        let p = Harness::new().file("a.jsonl", data).run::<Jsonl>().unwrap();
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[0].prompt_tokens, Some(3));
        assert_eq!(p.samples[0].output_tokens, Some(7));
        assert_eq!(p.samples[0].extra.as_deref(), Some("{\"temperature\":0}"));
        assert!(matches!(&p.samples[1].prompt, Prompt::Messages(m) if m.len() == 1));
        let bad = "{\"prompt\": \"ok\"}\n{\"promt\": \"typo\"}\n{\"prompt\": \"ok\", \"output_tokens\": -1}\n";
        let e = Harness::new().file("b.jsonl", bad).run::<Jsonl>().unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (Some("b.jsonl"), Some(2)));
        assert!(e.message.contains("promt"), "{}", e.message);
        let p = Harness::new()
            .file("b.jsonl", bad)
            .config(serde_json::json!({"on_error": "skip"}))
            .run::<Jsonl>()
            .unwrap();
        assert_eq!((p.samples.len(), p.skipped.len()), (1, 2));
        assert_eq!(p.skipped[1].line, Some(3));
    }

    #[test]
    fn images_and_audio_come_from_the_media_dir_or_urls() {
        use barrage_sdk::{ContentPart, MediaSource};
        let data = concat!(
            "{\"prompt\": \"what is this\", \"images\": [\"cats/1.png\", \"https://x.invalid/2.jpg\"]}\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"say\"}, {\"type\": \"audio\", \"path\": \"a.wav\"}]}]}\n",
        );
        let p = Harness::new()
            .file("m.jsonl", data)
            .media("cats/1.png", b"\x89PNG....".to_vec())
            .media("a.wav", b"RIFF".to_vec())
            .run::<Jsonl>()
            .unwrap();
        let Prompt::Messages(m) = &p.samples[0].prompt else {
            panic!()
        };
        assert!(matches!(&m[0].content[1], ContentPart::Image(i)
            if i.media_type == "image/png" && matches!(&i.source, MediaSource::Inline(b) if b.len() == 8)));
        assert!(matches!(&m[0].content[2], ContentPart::Image(i) if matches!(&i.source, MediaSource::Url(_))));
        assert_eq!(p.samples[0].prompt_tokens, Some(3), "text tokens only");
        let Prompt::Messages(m) = &p.samples[1].prompt else {
            panic!()
        };
        assert!(matches!(&m[0].content[1], ContentPart::Audio(a) if a.media_type == "audio/wav"));

        let missing = Harness::new()
            .file(
                "m.jsonl",
                "{\"prompt\": \"ok\"}\n{\"prompt\": \"x\", \"images\": \"gone.png\"}\n",
            )
            .run::<Jsonl>()
            .unwrap_err();
        assert_eq!((missing.file.as_deref(), missing.line), (Some("m.jsonl"), Some(2)));
        assert!(missing.message.contains("image `gone.png`"), "{}", missing.message);
        let big = Harness::new()
            .file("m.jsonl", "{\"prompt\": \"x\", \"images\": \"big.png\"}\n")
            .media("big.png", vec![0u8; 2 << 20])
            .config(serde_json::json!({"max_media_mib": 1}))
            .run::<Jsonl>()
            .unwrap_err();
        assert!(
            big.message.contains("2097152 bytes, more than max_media_mib (1 MiB)"),
            "{}",
            big.message
        );
        let kind = Harness::new()
            .file("m.jsonl", "{\"prompt\": \"x\", \"images\": \"pic.bmp\"}\n")
            .run::<Jsonl>()
            .unwrap_err();
        assert!(kind.message.contains("cannot tell its type"), "{}", kind.message);
    }

    #[test]
    fn a_corpus_to_embed_or_rank() {
        let data = "{\"inputs\": [\"a b\", \"c\"]}\n{\"query\": \"q r\", \"documents\": [\"x\", \"y z\"]}\n";
        let p = Harness::new().file("c.jsonl", data).run::<Jsonl>().unwrap();
        assert!(matches!(&p.samples[0].prompt, Prompt::Inputs(i) if i.len() == 2));
        assert_eq!(p.samples[0].prompt_tokens, Some(3));
        assert!(matches!(&p.samples[1].prompt, Prompt::Rerank(r) if r.documents.len() == 2));
        assert_eq!(p.samples[1].prompt_tokens, Some((1 + 2) + (2 + 2)));
        for (bad, message) in [
            ("{\"inputs\": []}", "`inputs` is empty"),
            ("{\"query\": \"q\"}", "needs `documents`"),
            ("{\"prompt\": \"p\", \"inputs\": [\"i\"]}", "give one of"),
        ] {
            let e = Harness::new().file("c.jsonl", bad).run::<Jsonl>().unwrap_err();
            assert!(e.message.contains(message), "{bad}: {}", e.message);
        }
    }
}
