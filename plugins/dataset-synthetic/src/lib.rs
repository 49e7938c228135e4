//! `synthetic`: prompts of exact token lengths cut from real text, with
//! prompt and output lengths drawn from configured distributions.
//!
//! ```yaml
//! dataset:
//!   plugin: synthetic
//!   count: 1000
//!   prompt_tokens: {dist: normal, mean: 512, stddev: 64, min: 16}
//!   output_tokens: {dist: lognormal, mean: 200, stddev: 100}
//! ```
//!
//! `format: inputs` makes batches to embed instead: `batch` inputs a
//! request, each of `prompt_tokens`; `format: rerank` a query of
//! `query_tokens` and `batch` documents of `prompt_tokens` to rank.
//!
//! `images: {count, width, height, format: jpeg|png, quality}` and
//! `audio: {count, seconds, sample_rate}` send media with each prompt,
//! made here (see `media`): the prompt becomes one user message of the
//! text and then the media.

mod media;

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, Message, PluginInfo, Prompt, Sample};
use barrage_sdk::{ContentPart, Media, MediaSource};
use dataset_common::dist::Length;
use dataset_common::media::Kind;
use dataset_common::text::Corpus;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Samples to make.
    #[serde(default = "default_count")]
    count: u64,
    /// Prompt length in tokens of the run's tokenizer.
    #[serde(default = "default_prompt")]
    prompt_tokens: Length,
    /// Output length asked for.
    #[serde(default = "default_output")]
    output_tokens: Length,
    /// Send each prompt as one user message of a chat (`messages`) rather
    /// than plain text (`text`, which chat codecs wrap in a user message),
    /// or as `batch` inputs to embed (`inputs`).
    #[serde(default)]
    format: Format,
    /// Inputs per request with `format: inputs` (an embeddings batch), or
    /// documents with `format: rerank`.
    #[serde(default = "default_batch")]
    batch: Length,
    /// The query's length with `format: rerank`.
    #[serde(default = "default_query")]
    query_tokens: Length,
    /// Images with each prompt.
    #[serde(default)]
    images: Option<media::ImageSpec>,
    /// Audio with each prompt.
    #[serde(default)]
    audio: Option<media::AudioSpec>,
}

/// Media bytes a batch may hold before it is handed over: each batch
/// crosses into the host whole, and a plugin's memory is bounded.
const BATCH_MEDIA_BYTES: usize = 32 << 20;

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Text,
    Messages,
    Inputs,
    Rerank,
}

fn default_count() -> u64 {
    1000
}
fn default_batch() -> Length {
    Length::fixed(1.0)
}
fn default_query() -> Length {
    Length::fixed(16.0)
}
fn default_prompt() -> Length {
    Length::fixed(256.0)
}
fn default_output() -> Length {
    Length::fixed(128.0)
}

/// The plugin.
pub struct Synthetic {
    config: Config,
    corpus: Corpus,
    next: u64,
}

impl Config {
    fn validate(&self) -> Result<(), String> {
        self.prompt_tokens.validate("prompt_tokens")?;
        self.batch.validate("batch")?;
        self.query_tokens.validate("query_tokens")?;
        if let Some(i) = &self.images {
            i.validate()?;
        }
        if let Some(a) = &self.audio {
            a.validate()?;
        }
        if (self.images.is_some() || self.audio.is_some()) && matches!(self.format, Format::Inputs | Format::Rerank) {
            return Err("images and audio go with a prompt to generate from, not with format: inputs or rerank".into());
        }
        self.output_tokens.validate("output_tokens")
    }

    /// The media parts of one prompt, and their bytes.
    fn media(&self) -> Result<(Vec<ContentPart>, usize), DatasetError> {
        let mut parts = Vec::new();
        let mut bytes = 0;
        let mut add = |media_type: &str, data: Vec<u8>, kind: Kind| {
            bytes += data.len();
            parts.push(kind.part(Media {
                media_type: media_type.into(),
                source: MediaSource::Inline(data),
                tokens: None,
            }));
        };
        if let Some(spec) = &self.images {
            for _ in 0..spec.count {
                add(spec.media_type(), spec.make().map_err(DatasetError::new)?, Kind::Image);
            }
        }
        if let Some(spec) = &self.audio {
            for _ in 0..spec.count {
                add("audio/wav", spec.make(), Kind::Audio);
            }
        }
        Ok((parts, bytes))
    }
}

impl Dataset for Synthetic {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "synthetic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "prompts of exact token lengths from real text, lengths drawn from distributions".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, Config::validate)
    }

    fn open() -> Result<Self, DatasetError> {
        let config: Config = dataset_common::config()?;
        config.validate().map_err(DatasetError::new)?;
        Ok(Synthetic {
            config,
            corpus: Corpus::load(),
            next: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        let mut media_bytes = 0;
        while self.next < self.config.count && batch.samples.len() < max as usize && media_bytes < BATCH_MEDIA_BYTES {
            let text = || {
                let text = self
                    .corpus
                    .text(self.corpus.random_start(), self.config.prompt_tokens.tokens());
                let tokens = barrage_sdk::dataset::tokenizer::count(&text);
                (text, tokens)
            };
            let with_media = self.config.images.is_some() || self.config.audio.is_some();
            let (prompt, prompt_tokens) = match self.config.format {
                Format::Text | Format::Messages if with_media => {
                    let (t, n) = text();
                    let (parts, bytes) = self.config.media()?;
                    media_bytes += bytes;
                    let mut user = Message::text("user", t);
                    user.content.extend(parts);
                    (Prompt::Messages(vec![user]), n)
                }
                Format::Text => {
                    let (t, n) = text();
                    (Prompt::Text(t), n)
                }
                Format::Messages => {
                    let (t, n) = text();
                    (Prompt::Messages(vec![Message::text("user", t)]), n)
                }
                Format::Inputs => {
                    let (inputs, counts): (Vec<String>, Vec<u32>) =
                        (0..self.config.batch.tokens()).map(|_| text()).unzip();
                    (Prompt::Inputs(inputs), counts.iter().sum())
                }
                Format::Rerank => {
                    let query = self
                        .corpus
                        .text(self.corpus.random_start(), self.config.query_tokens.tokens());
                    let query_tokens = barrage_sdk::dataset::tokenizer::count(&query);
                    let (documents, counts): (Vec<String>, Vec<u32>) =
                        (0..self.config.batch.tokens()).map(|_| text()).unzip();
                    // A cross-encoder reads the query with every document.
                    let tokens = counts.iter().map(|c| c + query_tokens).sum();
                    (Prompt::Rerank(barrage_sdk::RerankQuery { query, documents }), tokens)
                }
            };
            batch.samples.push(Sample {
                prompt,
                prompt_tokens: Some(prompt_tokens),
                output_tokens: Some(self.config.output_tokens.tokens()),
                ..Sample::text(self.next, String::new())
            });
            self.next += 1;
        }
        batch.done = self.next >= self.config.count;
        Ok(batch)
    }
}

barrage_sdk::export_dataset!(Synthetic);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::Harness;

    #[test]
    fn prompts_carry_images_and_audio_of_the_sizes_asked() {
        let samples = Harness::new()
            .config(serde_json::json!({"count": 3, "prompt_tokens": 5,
                "images": {"count": 2, "width": 64, "height": 32, "format": "png"},
                "audio": {"seconds": 0.5, "sample_rate": 8000}}))
            .run::<Synthetic>()
            .unwrap()
            .samples;
        assert_eq!(samples.len(), 3);
        for s in &samples {
            let Prompt::Messages(m) = &s.prompt else { panic!() };
            assert_eq!(m[0].content.len(), 4, "text, two images, a clip");
            assert_eq!(s.prompt_tokens, Some(5), "the text's tokens");
            let ContentPart::Image(Media {
                media_type,
                source: MediaSource::Inline(png),
                ..
            }) = &m[0].content[1]
            else {
                panic!()
            };
            assert_eq!(media_type, "image/png");
            assert_eq!(&png[16..24], [0, 0, 0, 64, 0, 0, 0, 32], "IHDR's width and height");
            // Stored blocks: the pixels, a filter byte a row, and the framing.
            assert!(png.len() > (64 * 3 + 1) * 32, "{}", png.len());
            let ContentPart::Audio(Media {
                source: MediaSource::Inline(wav),
                ..
            }) = &m[0].content[3]
            else {
                panic!()
            };
            assert_eq!(wav.len(), 44 + 4000 * 2);
            assert_eq!(&wav[..4], b"RIFF");
        }
        let jpeg = Harness::new()
            .config(serde_json::json!({"count": 1, "images": {"width": 320, "height": 240, "quality": 70}}))
            .run::<Synthetic>()
            .unwrap()
            .samples;
        let Prompt::Messages(m) = &jpeg[0].prompt else { panic!() };
        let ContentPart::Image(Media {
            media_type,
            source: MediaSource::Inline(bytes),
            ..
        }) = &m[0].content[1]
        else {
            panic!()
        };
        assert_eq!(media_type, "image/jpeg");
        assert_eq!(
            (&bytes[..2], &bytes[bytes.len() - 2..]),
            (&[0xff, 0xd8][..], &[0xff, 0xd9][..])
        );
        assert!(bytes.len() < 320 * 240 * 3 / 4, "compressed: {}", bytes.len());
        let e = Harness::new()
            .config(serde_json::json!({"images": {"width": 0, "height": 5}}))
            .run::<Synthetic>()
            .unwrap_err();
        assert!(e.message.contains("images.width"), "{}", e.message);
    }

    #[test]
    fn lengths_are_exact_and_seeded() {
        let run = |seed| {
            Harness::new()
                .seed(seed)
                .config(serde_json::json!({"count": 50, "prompt_tokens": {"dist": "uniform", "min": 5, "max": 40}, "output_tokens": 9}))
                .run::<Synthetic>()
                .unwrap()
                .samples
        };
        let a = run(1);
        assert_eq!(a.len(), 50);
        for s in &a {
            let Prompt::Text(t) = &s.prompt else { panic!() };
            assert_eq!(Some(t.split_whitespace().count() as u32), s.prompt_tokens);
            assert_eq!(s.output_tokens, Some(9));
        }
        let b = run(1);
        assert_eq!(format!("{:?}", a[7].prompt), format!("{:?}", b[7].prompt));
        assert_ne!(format!("{:?}", a[7].prompt), format!("{:?}", run(2)[7].prompt));
    }

    #[test]
    fn bad_config_names_the_problem() {
        let e = Harness::new()
            .config(serde_json::json!({"count": 1, "prompt_tokenz": 3}))
            .run::<Synthetic>()
            .unwrap_err();
        assert!(e.message.contains("prompt_tokenz"), "{}", e.message);
    }

    #[test]
    fn batches_to_embed_and_queries_to_rank_have_exact_lengths() {
        let run = |config| Harness::new().config(config).run::<Synthetic>().unwrap().samples;
        for s in run(serde_json::json!({"count": 5, "format": "inputs", "batch": 3, "prompt_tokens": 7})) {
            let Prompt::Inputs(inputs) = &s.prompt else {
                panic!("{s:?}")
            };
            assert_eq!(inputs.len(), 3);
            assert!(inputs.iter().all(|i| i.split_whitespace().count() == 7), "{inputs:?}");
            assert_eq!(s.prompt_tokens, Some(21));
        }
        for s in
            run(serde_json::json!({"count": 5, "format": "rerank", "batch": 4, "prompt_tokens": 6, "query_tokens": 2}))
        {
            let Prompt::Rerank(r) = &s.prompt else { panic!("{s:?}") };
            assert_eq!(r.query.split_whitespace().count(), 2);
            assert_eq!(r.documents.len(), 4);
            // The query is read with each document.
            assert_eq!(s.prompt_tokens, Some(4 * (6 + 2)));
        }
    }
}
