//! `trace`: replay a production request trace: send times and prompt and
//! output lengths from the trace, prompts built to those lengths.
//!
//! Formats:
//! - Azure LLM inference trace CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`
//!   with wall-clock timestamps (offsets from the earliest row are used).
//! - Mooncake JSONL: `{"timestamp": ms, "input_length", "output_length",
//!   "hash_ids": [...]}`. Each hash id names a block of `block_tokens` (512)
//!   prompt tokens: requests sharing a hash id share that exact block, so a
//!   server's prefix cache sees the production reuse pattern.
//!
//! `start_s`/`end_s` cut a window of the trace (seconds from its start);
//! `time_scale` multiplies the offsets (0.5 replays twice as fast). Each
//! sample's `at_ms` is its offset from the window's start; a `trace` stage
//! sends it then.

use std::io::BufRead;

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, PluginInfo, Prompt, Sample, tokenizer};
use dataset_common::input::{Item, Lines, OnError, file_names};
use dataset_common::text::{Corpus, exact_text};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `auto` (from the file's first line), `azure` or `mooncake`.
    #[serde(default)]
    format: Format,
    /// Multiply the trace's offsets by this (0.5: twice as fast).
    #[serde(default = "one")]
    time_scale: f64,
    /// Start of the window, seconds from the trace's start.
    #[serde(default)]
    start_s: Option<f64>,
    /// End of the window, seconds from the trace's start.
    #[serde(default)]
    end_s: Option<f64>,
    /// At most this many requests (the first of the window).
    #[serde(default)]
    max_requests: Option<u64>,
    /// Ask for at most this many output tokens (the trace's lengths above it are cut).
    #[serde(default)]
    max_output_tokens: Option<u32>,
    /// Tokens per Mooncake hash block.
    #[serde(default = "block")]
    block_tokens: u32,
    #[serde(default)]
    on_error: OnError,
}

fn one() -> f64 {
    1.0
}
fn block() -> u32 {
    512
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Auto,
    Azure,
    Mooncake,
}

/// One trace row, before its prompt is built.
struct Row {
    /// Nanoseconds: absolute for Azure, from the trace start for Mooncake.
    at_ns: i64,
    input: u32,
    output: u32,
    hash_ids: Option<Vec<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MooncakeRow {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// The plugin.
pub struct Trace {
    rows: std::vec::IntoIter<Row>,
    corpus: Corpus,
    salt: u64,
    block_tokens: u32,
    base_ns: i64,
    time_scale: f64,
    max_output: u32,
    next_id: u64,
}

/// Most tokens in one hash block (Mooncake's are 512).
const MAX_BLOCK_TOKENS: u32 = 1 << 20;

/// `time_scale` from this to its inverse: a replay a million times faster
/// or slower is a typo.
const MIN_TIME_SCALE: f64 = 1e-6;

impl Config {
    fn validate(&self) -> Result<(), String> {
        if !(MIN_TIME_SCALE..=1.0 / MIN_TIME_SCALE).contains(&self.time_scale) {
            return Err(format!(
                "time_scale must be from {MIN_TIME_SCALE} to {}, got {:?}",
                1.0 / MIN_TIME_SCALE,
                self.time_scale
            ));
        }
        if let (Some(a), Some(b)) = (self.start_s, self.end_s)
            && a >= b
        {
            return Err(format!("the window start_s {a} must come before end_s {b}"));
        }
        if !(1..=MAX_BLOCK_TOKENS).contains(&self.block_tokens) {
            return Err(format!(
                "block_tokens must be from 1 to {MAX_BLOCK_TOKENS}, got {}",
                self.block_tokens
            ));
        }
        Ok(())
    }
}

/// Most prompt or output tokens a row may ask: a prompt is built up front,
/// so a row's `4000000000` must be an error, not gigabytes of text.
const MAX_TOKENS: u32 = 10_000_000;

impl Row {
    fn checked(self, item: &Item) -> Result<Row, DatasetError> {
        for (name, n) in [("prompt", self.input), ("output", self.output)] {
            if n > MAX_TOKENS {
                return Err(item.error(format!("{n} {name} tokens; at most {MAX_TOKENS} per request")));
            }
        }
        Ok(self)
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2023-11-16 18:17:03.9799600` as nanoseconds since the Unix epoch.
fn parse_timestamp(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let frac = frac.trim_end_matches('Z');
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let ns: i64 = digits.parse().ok()?;
    // Nanoseconds in an i64 reach the years 1677 to 2262; a date beyond
    // (or a year too long for the day count) is no timestamp of a trace.
    if !(1678..=2261).contains(&y) {
        return None;
    }
    Some(((days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000) + ns)
}

fn detect(file: &str) -> Result<Format, DatasetError> {
    let mut r = std::io::BufReader::new(barrage_sdk::dataset::files::Reader::open(file));
    let mut first = String::new();
    r.read_line(&mut first)
        .map_err(|e| DatasetError::at(file, 1, format!("cannot read: {e}")))?;
    let first = first.trim_start();
    if first.starts_with('{') {
        Ok(Format::Mooncake)
    } else if first.to_ascii_uppercase().starts_with("TIMESTAMP") {
        Ok(Format::Azure)
    } else {
        Err(DatasetError::at(
            file,
            1,
            "not a trace this plugin knows: Azure CSV starts with a `TIMESTAMP,ContextTokens,GeneratedTokens` header, Mooncake JSONL with `{\"timestamp\": …}`; set `format:` if the file is one of them",
        ))
    }
}

fn parse_azure(item: &Item) -> Result<Row, DatasetError> {
    let cells: Vec<&str> = item.text.split(',').map(str::trim).collect();
    if cells.len() != 3 {
        return Err(item.error(format!(
            "{} cells; Azure rows are TIMESTAMP,ContextTokens,GeneratedTokens",
            cells.len()
        )));
    }
    let at_ns = parse_timestamp(cells[0]).ok_or_else(|| {
        item.error(format!(
            "`{}` is not a timestamp like 2023-11-16 18:17:03.9799600",
            cells[0]
        ))
    })?;
    let num = |i: usize, name: &str| {
        cells[i]
            .parse::<u32>()
            .map_err(|_| item.error(format!("{name} `{}` is not a whole number", cells[i])))
    };
    Row {
        at_ns,
        input: num(1, "ContextTokens")?,
        output: num(2, "GeneratedTokens")?,
        hash_ids: None,
    }
    .checked(item)
}

fn parse_mooncake(item: &Item) -> Result<Row, DatasetError> {
    let r: MooncakeRow = serde_json::from_str(&item.text).map_err(|e| item.error(format!("{e}")))?;
    if !(r.timestamp >= 0.0 && r.timestamp.is_finite()) {
        return Err(item.error(format!("timestamp {} must be ≥ 0 ms", r.timestamp)));
    }
    Row {
        at_ns: (r.timestamp * 1e6).round() as i64,
        input: r.input_length,
        output: r.output_length,
        hash_ids: Some(r.hash_ids),
    }
    .checked(item)
}

impl Dataset for Trace {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "trace".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "replay Azure LLM inference (CSV) or Mooncake (JSONL) traces at their timestamps".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, Config::validate)
    }

    fn open() -> Result<Self, DatasetError> {
        let c: Config = dataset_common::config()?;
        c.validate().map_err(DatasetError::new)?;
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        for file in file_names()? {
            let format = match c.format {
                Format::Auto => detect(&file)?,
                f => f,
            };
            let mut lines = Lines::open(&file);
            if format == Format::Azure {
                // The header row.
                let _ = lines.next();
            }
            for item in lines {
                let row = item.and_then(|item| match format {
                    Format::Mooncake => parse_mooncake(&item),
                    _ => parse_azure(&item),
                });
                match row {
                    Ok(r) => rows.push(r),
                    Err(e) => c.on_error.handle(e, &mut skipped)?,
                }
            }
        }
        if !skipped.is_empty() {
            barrage_sdk::log::info(&format!("{} malformed trace rows skipped", skipped.len()));
        }
        rows.sort_by_key(|r| r.at_ns);
        let first = rows.first().map_or(0, |r| r.at_ns);
        let from = first.saturating_add(c.start_s.map_or(0, |s| (s * 1e9) as i64));
        let until = c.end_s.map(|s| first.saturating_add((s * 1e9) as i64));
        rows.retain(|r| r.at_ns >= from && until.is_none_or(|u| r.at_ns < u));
        if let Some(m) = c.max_requests {
            rows.truncate(m as usize);
        }
        Ok(Trace {
            rows: rows.into_iter(),
            corpus: Corpus::load(),
            salt: barrage_sdk::dataset::random::next_u64(),
            block_tokens: c.block_tokens,
            base_ns: from,
            time_scale: c.time_scale,
            max_output: c.max_output_tokens.unwrap_or(u32::MAX).max(1),
            next_id: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        for row in self.rows.by_ref().take(max.max(1) as usize) {
            let text = match &row.hash_ids {
                Some(ids) => block_prompt(&self.corpus, self.salt, self.block_tokens, ids, row.input),
                None => self.corpus.tagged_text(
                    &format!("Request {}:", self.next_id),
                    self.corpus.random_start(),
                    row.input,
                ),
            };
            batch.samples.push(Sample {
                prompt_tokens: Some(tokenizer::count(&text)),
                prompt: Prompt::Text(text),
                output_tokens: Some(row.output.clamp(1, self.max_output)),
                at_ms: Some((i128::from(row.at_ns) - i128::from(self.base_ns)) as f64 / 1e6 * self.time_scale),
                ..Sample::text(self.next_id, String::new())
            });
            self.next_id += 1;
        }
        batch.done = self.rows.len() == 0;
        Ok(batch)
    }
}

/// The token ids of hash block `h`: a tag naming the block, then the corpus
/// from a place fixed by `h`, so equal ids give equal blocks and different
/// ids differ from their first token.
fn block_ids(corpus: &Corpus, salt: u64, block_tokens: u32, h: u64) -> Vec<u32> {
    let mut ids = tokenizer::encode(&format!("Block {h}:"));
    let start = (h ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    ids.extend(corpus.ids(start as usize, block_tokens as usize));
    ids.truncate(block_tokens as usize);
    ids
}

/// A prompt of `input` tokens made of the blocks `hash_ids` (the last one
/// cut short), padded with fresh text when the blocks are fewer than the
/// length needs.
fn block_prompt(corpus: &Corpus, salt: u64, block_tokens: u32, hash_ids: &[u64], input: u32) -> String {
    let mut ids = Vec::with_capacity(input as usize + 3);
    for &h in hash_ids {
        if ids.len() >= input as usize {
            break;
        }
        ids.extend(block_ids(corpus, salt, block_tokens, h));
    }
    if ids.len() < input as usize + 3 {
        ids.extend(corpus.ids(corpus.random_start(), input as usize + 3 - ids.len()));
    }
    exact_text(&ids, input)
}

barrage_sdk::export_dataset!(Trace);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::Harness;

    #[test]
    fn azure_timestamps_become_offsets() {
        assert_eq!(parse_timestamp("1970-01-02 00:00:01.5"), Some(86_401_500_000_000));
        assert_eq!(
            parse_timestamp("2023-11-16 18:17:04.0319600").unwrap()
                - parse_timestamp("2023-11-16 18:17:03.9799600").unwrap(),
            52_000_000
        );
        assert_eq!(parse_timestamp("2023-13-01 00:00:00"), None);
        let huge = "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-01-15 09:00:00.0,4000000000,5\n";
        let e = Harness::new().file("t.csv", huge).run::<Trace>().unwrap_err();
        assert!(
            e.message
                .contains("4000000000 prompt tokens; at most 10000000 per request"),
            "{e:?}"
        );
        // Found by the datasets fuzz target: beyond what nanoseconds hold.
        assert_eq!(parse_timestamp("5205-01-15 09:00:00.0624450"), None);
        assert_eq!(parse_timestamp("-99999999999999-01-01 00:00:00"), None);
        let csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.5,40,10\n2023-11-16 18:17:03.0,30,8\n2023-11-16 18:17:05.0,20,2\n";
        let p = Harness::new()
            .file("t.csv", csv)
            .config(serde_json::json!({"time_scale": 0.5}))
            .run::<Trace>()
            .unwrap();
        let at: Vec<f64> = p.samples.iter().map(|s| s.at_ms.unwrap()).collect();
        assert_eq!(at, vec![0.0, 250.0, 1000.0]);
        assert_eq!(p.samples[0].prompt_tokens, Some(30));
        assert_eq!(p.samples[0].output_tokens, Some(8));
        let w = Harness::new()
            .file("t.csv", csv)
            .config(serde_json::json!({"start_s": 0.4, "end_s": 2.0}))
            .run::<Trace>()
            .unwrap();
        assert_eq!(w.samples.len(), 1);
        assert_eq!(w.samples[0].at_ms, Some(100.0));
    }

    #[test]
    fn mooncake_blocks_are_shared_exactly() {
        let jsonl = "{\"timestamp\": 0, \"input_length\": 1100, \"output_length\": 5, \"hash_ids\": [0, 1, 2]}\n\
                     {\"timestamp\": 20, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [0, 3]}\n\
                     {\"timestamp\": 30, \"input_length\": 100, \"output_length\": 5, \"hash_ids\": [4]}\n";
        let p = Harness::new()
            .file("m.jsonl", jsonl)
            .config(serde_json::json!({"block_tokens": 512}))
            .run::<Trace>()
            .unwrap();
        let words: Vec<Vec<String>> = p
            .samples
            .iter()
            .map(|s| match &s.prompt {
                Prompt::Text(t) => t.split_whitespace().map(String::from).collect(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(words.iter().map(Vec::len).collect::<Vec<_>>(), vec![1100, 600, 100]);
        assert_eq!(words[0][..512], words[1][..512], "block 0 shared");
        assert_ne!(words[0][512..600], words[1][512..600], "blocks 1 and 3 differ");
        assert_ne!(words[2][..2], words[0][..2]);
        assert_eq!(p.samples[1].at_ms, Some(20.0));
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let e = Harness::new()
            .file(
                "m.jsonl",
                "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{\"timestamp\": \"x\"}\n",
            )
            .run::<Trace>()
            .unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (Some("m.jsonl"), Some(2)));
        let e = Harness::new().file("x.txt", "hello\n").run::<Trace>().unwrap_err();
        assert!(e.message.contains("TIMESTAMP"), "{}", e.message);
    }
}
