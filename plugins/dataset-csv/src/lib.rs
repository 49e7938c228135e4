//! `csv`: custom requests, one per row of a CSV file with a header row.
//!
//! Columns (any order): `prompt` (or the column named by `prompt_column`),
//! `system`, `image` and `audio` (files under the dataset's `media_dir`, or
//! URLs; several separated by `|`), `messages` (a JSON list of `{role, content}`),
//! `inputs` (a JSON list of texts to embed), `query` and `documents` (a JSON
//! list of texts to rank), `output_tokens`
//! (or `max_tokens`, or `output_column`), `at_ms`, `session`, `turn`,
//! `think_time_ms`, and `extra.NAME` for extra request fields (a cell that
//! parses as JSON is sent as that value, otherwise as a string). Empty cells
//! are absent. Other columns are refused so a typo does not go unnoticed;
//! list them in `ignore_columns` to keep them out.

use barrage_sdk::dataset::{Batch, ConfigError, Dataset, DatasetError, PluginInfo};
use dataset_common::input::{Item, OnError, file_names};
use dataset_common::record::Fields;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    max_samples: Option<u64>,
    /// The column holding the prompt, when not `prompt`.
    #[serde(default)]
    prompt_column: Option<String>,
    /// The column holding the output length, when not `output_tokens`.
    #[serde(default)]
    output_column: Option<String>,
    /// Columns to leave out.
    #[serde(default)]
    ignore_columns: Vec<String>,
    /// Field separator, one character (default `,`).
    #[serde(default)]
    delimiter: Option<char>,
    /// Largest image or audio file, MiB (default 20).
    #[serde(default = "default_max_media")]
    max_media_mib: f64,
}

fn default_max_media() -> f64 {
    dataset_common::media::DEFAULT_MAX_MIB
}

/// Columns named as the record fields they fill.
const FIELDS: &[&str] = &[
    "prompt",
    "system",
    "messages",
    "inputs",
    "query",
    "documents",
    "at_ms",
    "session",
    "turn",
    "think_time_ms",
];

/// What a column means.
#[derive(Clone)]
enum Column {
    Field(&'static str),
    Extra(String),
    Ignored,
}

/// The plugin.
pub struct Csv {
    config: Config,
    files: std::vec::IntoIter<String>,
    current: Option<(String, Vec<Column>, csv::Reader<barrage_sdk::dataset::files::Reader>)>,
    next_id: u64,
}

impl Csv {
    fn open_file(
        &self,
        file: &str,
    ) -> Result<(Vec<Column>, csv::Reader<barrage_sdk::dataset::files::Reader>), DatasetError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.config.delimiter.unwrap_or(',') as u8)
            .flexible(false)
            .from_reader(barrage_sdk::dataset::files::Reader::open(file));
        let headers = reader
            .headers()
            .map_err(|e| DatasetError::at(file, 1, format!("cannot read the header row: {e}")))?
            .clone();
        let mut columns = Vec::new();
        for h in headers.iter() {
            let h = h.trim();
            let col = if Some(h) == self.config.prompt_column.as_deref() {
                Column::Field("prompt")
            } else if Some(h) == self.config.output_column.as_deref() {
                Column::Field("output_tokens")
            } else if self.config.ignore_columns.iter().any(|c| c == h) {
                Column::Ignored
            } else if let Some(name) = h.strip_prefix("extra.") {
                Column::Extra(name.to_string())
            } else {
                match h {
                    "output_tokens" | "max_tokens" => Column::Field("output_tokens"),
                    "image" | "images" => Column::Field("images"),
                    "audio" => Column::Field("audio"),
                    other => match FIELDS.iter().find(|f| **f == other) {
                        Some(f) => Column::Field(f),
                        None => {
                            return Err(DatasetError::at(
                                file,
                                1,
                                format!(
                                    "unknown column `{other}`: the columns are prompt, system, image, audio, messages, \
                                 inputs, query, documents, output_tokens, at_ms, session, turn, think_time_ms and \
                                 extra.NAME; name it in `prompt_column`, `output_column` or `ignore_columns`"
                                ),
                            ));
                        }
                    },
                }
            };
            columns.push(col);
        }
        Ok((columns, reader))
    }
}

/// The fields of one row.
fn fields(columns: &[Column], row: &csv::StringRecord, item: &Item) -> Result<Fields, DatasetError> {
    let mut obj = Map::new();
    let mut extra = Map::new();
    for (col, cell) in columns.iter().zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        match col {
            Column::Ignored => {}
            Column::Extra(name) => {
                extra.insert(
                    name.clone(),
                    serde_json::from_str(cell).unwrap_or_else(|_| Value::String(cell.into())),
                );
            }
            Column::Field(f @ ("prompt" | "system" | "query")) => {
                obj.insert(f.to_string(), Value::String(cell.to_string()));
            }
            Column::Field(f @ ("images" | "audio")) => {
                let refs: Vec<Value> = cell.split('|').map(|r| Value::String(r.trim().to_string())).collect();
                obj.insert(f.to_string(), Value::Array(refs));
            }
            Column::Field(f) => {
                let v: Value = serde_json::from_str(cell.trim()).map_err(|_| {
                    item.error(format!(
                        "column `{f}`: `{cell}` is not a number{}",
                        if matches!(*f, "messages" | "inputs" | "documents") {
                            " or a JSON list"
                        } else {
                            ""
                        }
                    ))
                })?;
                obj.insert(f.to_string(), v);
            }
        }
    }
    if !extra.is_empty() {
        obj.insert("extra".into(), Value::Object(extra));
    }
    serde_json::from_value(Value::Object(obj)).map_err(|e| item.error(e.to_string()))
}

impl Dataset for Csv {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "csv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "custom requests from CSV files with a header row".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        dataset_common::check_valid::<Config>(config, |c| dataset_common::media::check_max(c.max_media_mib))
    }

    fn open() -> Result<Self, DatasetError> {
        Ok(Csv {
            config: dataset_common::config()?,
            files: file_names()?.into_iter(),
            current: None,
            next_id: 0,
        })
    }

    fn next_batch(&mut self, max: u32) -> Result<Batch, DatasetError> {
        let mut batch = Batch::default();
        let mut row = csv::StringRecord::new();
        while batch.samples.len() < max as usize {
            if self.config.max_samples.is_some_and(|m| self.next_id >= m) {
                batch.done = true;
                break;
            }
            let Some((file, columns, reader)) = self.current.as_mut() else {
                match self.files.next() {
                    Some(f) => {
                        let (columns, reader) = self.open_file(&f)?;
                        self.current = Some((f, columns, reader));
                    }
                    None => {
                        batch.done = true;
                        break;
                    }
                }
                continue;
            };
            let line = reader.position().line() + 1;
            let item = Item {
                file: file.clone(),
                line,
                text: String::new(),
            };
            let sample = match reader.read_record(&mut row) {
                Ok(false) => {
                    self.current = None;
                    continue;
                }
                Ok(true) => {
                    // csv counts lines from 1 and reports the row's start.
                    let item = Item {
                        line: row.position().map_or(line, |p| p.line()),
                        ..item
                    };
                    let max_media = self.config.max_media_mib;
                    fields(columns, &row, &item).and_then(|f| f.into_sample(self.next_id, &item, max_media))
                }
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    let message = match e.kind() {
                        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("{len} cells where the header has {expected_len}")
                        }
                        _ => e.to_string(),
                    };
                    Err(DatasetError::at(file, line, message))
                }
            };
            match sample {
                Ok(s) => {
                    self.next_id += 1;
                    batch.samples.push(s);
                }
                Err(e) => self.config.on_error.handle(e, &mut batch.skipped)?,
            }
        }
        Ok(batch)
    }
}

barrage_sdk::export_dataset!(Csv);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::dataset::Prompt;
    use barrage_sdk::testing::Harness;

    #[test]
    fn rows_columns_and_errors() {
        let data = "prompt,output_tokens,extra.temperature,system\n\"one, two\",5,0.5,\nthree four five,,,be kind\n";
        let p = Harness::new().file("a.csv", data).run::<Csv>().unwrap();
        assert_eq!(p.samples.len(), 2);
        assert!(matches!(&p.samples[0].prompt, Prompt::Text(t) if t == "one, two"));
        assert_eq!(p.samples[0].output_tokens, Some(5));
        assert_eq!(p.samples[0].extra.as_deref(), Some("{\"temperature\":0.5}"));
        assert!(matches!(&p.samples[1].prompt, Prompt::Messages(m) if m[0].text_content() == "be kind"));
        let e = Harness::new()
            .file("b.csv", "prompt,lenght\nx,3\n")
            .run::<Csv>()
            .unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("lenght"), "{}", e.message);
        let bad = "prompt,output_tokens\nok,1\nbad,many\nshort\n";
        let e = Harness::new().file("c.csv", bad).run::<Csv>().unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (Some("c.csv"), Some(3)));
        let p = Harness::new()
            .file("c.csv", bad)
            .config(serde_json::json!({"on_error": "skip", "output_column": "output_tokens"}))
            .run::<Csv>()
            .unwrap();
        assert_eq!((p.samples.len(), p.skipped.len()), (1, 2));
        assert_eq!(p.skipped[1].line, Some(4));
        assert!(
            p.skipped[1].message.contains("1 cells where the header has 2"),
            "{}",
            p.skipped[1].message
        );
    }
}
