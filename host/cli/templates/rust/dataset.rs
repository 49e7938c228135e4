//! {{name}}: a Barrage dataset: a prompt per line of each input file.
//! Blank lines and lines starting with `#` are passed over; a line longer
//! than `max_chars`, or with a control character (binary junk, not text),
//! is skipped and reported with its file and line.
//! Settings: `output_tokens` (each request's output length), `max_chars`
//! (default 20000), `shuffle` (order the prompts by the run's seed).

use barrage_sdk::dataset::{Batch, Dataset, DatasetError, PluginInfo, Sample, files, random, tokenizer};
use barrage_sdk::{ConfigError, config};
use serde::Deserialize;
use std::io::BufRead;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    output_tokens: Option<u32>,
    #[serde(default = "default_max_chars")]
    max_chars: usize,
    #[serde(default)]
    shuffle: bool,
}

fn default_max_chars() -> usize {
    20_000
}

pub struct Plugin {
    samples: Vec<Sample>,
    skipped: Vec<DatasetError>,
    next: usize,
}

impl Dataset for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a prompt per line of each input file".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(value: &serde_json::Value) -> Result<(), ConfigError> {
        config::parse::<Settings>(value).map(|_| ())
    }

    fn open() -> Result<Self, DatasetError> {
        let settings: Settings = config::get().map_err(DatasetError::new)?;
        let mut prompts = Vec::new();
        let mut skipped = Vec::new();
        for name in files::names() {
            let reader = std::io::BufReader::new(files::Reader::open(&name));
            for (i, line) in reader.lines().enumerate() {
                let number = i as u64 + 1;
                let line = line.map_err(|e| DatasetError::at(&name, number, e.to_string()))?;
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                if let Some((column, c)) = line.chars().enumerate().find(|(_, c)| c.is_control() && *c != '\t') {
                    let message = format!("a control character (U+{:04X}) at column {}: not text", c as u32, column + 1);
                    skipped.push(DatasetError::at(&name, number, message));
                    continue;
                }
                if line.chars().count() > settings.max_chars {
                    let message = format!("a prompt of more than {} characters (max_chars)", settings.max_chars);
                    skipped.push(DatasetError::at(&name, number, message));
                    continue;
                }
                prompts.push(line.to_string());
            }
        }
        if settings.shuffle {
            // Fisher-Yates on the run's seeded stream: the same seed, the same order.
            for i in (1..prompts.len()).rev() {
                let j = (random::next_u64() % (i as u64 + 1)) as usize;
                prompts.swap(i, j);
            }
        }
        let samples = prompts
            .into_iter()
            .enumerate()
            .map(|(id, prompt)| {
                let mut sample = Sample::text(id as u64, prompt.clone());
                sample.prompt_tokens = Some(tokenizer::count(&prompt));
                sample.output_tokens = settings.output_tokens;
                sample
            })
            .collect();
        Ok(Plugin {
            samples,
            skipped,
            next: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let end = (self.next + max as usize).min(self.samples.len());
        let batch = Batch {
            samples: self.samples[self.next..end].to_vec(),
            skipped: std::mem::take(&mut self.skipped),
            done: end == self.samples.len(),
        };
        self.next = end;
        Ok(batch)
    }
}

barrage_sdk::export_dataset!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::Prompt;
    use barrage_sdk::testing::Harness;

    const PROMPTS: &str = "# greetings\nSay hi\n\nSay hello to the world\nwho are you\n";

    fn texts(samples: &[Sample]) -> Vec<String> {
        samples
            .iter()
            .map(|s| match &s.prompt {
                Prompt::Text(t) => t.clone(),
                _ => panic!("a text prompt"),
            })
            .collect()
    }

    #[test]
    fn a_prompt_per_line_with_its_token_count() {
        let prepared = Harness::new()
            .config(serde_json::json!({"output_tokens": 16}))
            .file("prompts.txt", PROMPTS)
            .run::<Plugin>()
            .unwrap();
        assert_eq!(texts(&prepared.samples), ["Say hi", "Say hello to the world", "who are you"]);
        assert_eq!(prepared.samples[1].prompt_tokens, Some(5));
        assert_eq!(prepared.samples[1].output_tokens, Some(16));
    }

    #[test]
    fn a_line_too_long_is_skipped_with_its_file_and_line() {
        let prepared = Harness::new()
            .config(serde_json::json!({"max_chars": 11}))
            .file("prompts.txt", PROMPTS)
            .run::<Plugin>()
            .unwrap();
        assert_eq!(texts(&prepared.samples), ["Say hi", "who are you"]);
        assert_eq!(prepared.skipped[0].file.as_deref(), Some("prompts.txt"));
        assert_eq!(prepared.skipped[0].line, Some(4));
    }

    #[test]
    fn the_seed_decides_the_shuffled_order() {
        let order = |seed| {
            let prepared = Harness::new()
                .config(serde_json::json!({"shuffle": true}))
                .seed(seed)
                .file("prompts.txt", PROMPTS)
                .run::<Plugin>()
                .unwrap();
            texts(&prepared.samples)
        };
        assert_eq!(order(7), order(7));
        let mut sorted = order(7);
        sorted.sort();
        assert_eq!(sorted, ["Say hello to the world", "Say hi", "who are you"]);
    }
}
