//! Reading input files: lines, or the items of a top-level JSON array, one at
//! a time with their line numbers, so that a large file never has to sit in
//! the plugin's memory whole and every error names its file and line.

use std::io::BufRead;

use barrage_sdk::dataset::{DatasetError, files};
use serde::Deserialize;

/// What to do with a malformed record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop preparing with an error naming the file and line (the default).
    #[default]
    Fail,
    /// Leave the record out and count it (reported with the run).
    Skip,
}

impl OnError {
    /// Add `sample` to `batch`, or apply the policy to its error.
    pub fn keep(
        self,
        sample: Result<barrage_sdk::dataset::Sample, DatasetError>,
        batch: &mut barrage_sdk::dataset::Batch,
    ) -> Result<(), DatasetError> {
        match sample {
            Ok(s) => {
                batch.samples.push(s);
                Ok(())
            }
            Err(e) => self.handle(e, &mut batch.skipped),
        }
    }

    /// Apply the policy to a bad record: `Ok` (noted in `skipped`) or the error.
    pub fn handle(self, error: DatasetError, skipped: &mut Vec<DatasetError>) -> Result<(), DatasetError> {
        match self {
            OnError::Fail => Err(error),
            OnError::Skip => {
                skipped.push(error);
                Ok(())
            }
        }
    }
}

/// One record of an input file: where it starts and its bytes.
pub struct Item {
    /// The file's name as configured.
    pub file: String,
    /// 1-based line where the record starts.
    pub line: u64,
    /// The record's text.
    pub text: String,
}

impl Item {
    /// An error about this record.
    pub fn error(&self, message: impl Into<String>) -> DatasetError {
        DatasetError::at(&self.file, self.line, message)
    }
}

/// The files the plugin was given, checked to be at least one.
pub fn file_names() -> Result<Vec<String>, DatasetError> {
    let names = files::names();
    if names.is_empty() {
        return Err(DatasetError::new(
            "this dataset reads input files, and none was given: list them under `files:` in the dataset section",
        ));
    }
    Ok(names)
}

/// The records of several files, one file after another.
pub struct FileSeq<I> {
    files: std::vec::IntoIter<String>,
    open: fn(&str) -> I,
    current: Option<I>,
}

impl<I> FileSeq<I> {
    /// The records of `files`, each read with `open` (e.g. [`Lines::open`]).
    pub fn new(files: Vec<String>, open: fn(&str) -> I) -> FileSeq<I> {
        FileSeq {
            files: files.into_iter(),
            open,
            current: None,
        }
    }
}

impl<I: Iterator<Item = Result<Item, DatasetError>>> Iterator for FileSeq<I> {
    type Item = Result<Item, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            let file = self.files.next()?;
            self.current = Some((self.open)(&file));
        }
    }
}

/// Non-empty lines of a file.
pub struct Lines {
    file: String,
    reader: std::io::BufReader<files::Reader>,
    line: u64,
}

impl Lines {
    /// Read `file` line by line.
    pub fn open(file: &str) -> Lines {
        Lines {
            file: file.to_string(),
            reader: std::io::BufReader::with_capacity(1 << 16, files::Reader::open(file)),
            line: 0,
        }
    }
}

impl Iterator for Lines {
    type Item = Result<Item, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(DatasetError::at(
                        &self.file,
                        self.line,
                        format!("cannot read: {e}"),
                    )));
                }
            }
            let text = match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(t) => t,
                Err(_) => {
                    return Some(Err(DatasetError::at(
                        &self.file,
                        self.line,
                        "the line is not valid UTF-8",
                    )));
                }
            };
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if !trimmed.trim().is_empty() {
                return Some(Ok(Item {
                    file: self.file.clone(),
                    line: self.line,
                    text: trimmed.to_string(),
                }));
            }
        }
    }
}

/// The items of a file holding one JSON array (`[{...}, {...}]`), cut at
/// the array's top-level commas without parsing them, or, when the file does
/// not start with `[`, its non-empty lines (JSON Lines).
pub struct JsonItems {
    file: String,
    bytes: std::io::Bytes<std::io::BufReader<files::Reader>>,
    line: u64,
    /// None: JSON Lines.
    array: Option<bool>,
    lines: Option<Lines>,
    finished: bool,
}

impl JsonItems {
    /// Read `file` as a JSON array or JSON Lines.
    pub fn open(file: &str) -> JsonItems {
        use std::io::Read;
        JsonItems {
            file: file.to_string(),
            bytes: std::io::BufReader::with_capacity(1 << 16, files::Reader::open(file)).bytes(),
            line: 1,
            array: None,
            lines: None,
            finished: false,
        }
    }

    fn next_byte(&mut self) -> Option<Result<u8, DatasetError>> {
        let b = self.bytes.next()?;
        Some(
            b.inspect(|&b| {
                if b == b'\n' {
                    self.line += 1;
                }
            })
            .map_err(|e| DatasetError::at(&self.file, self.line, format!("cannot read: {e}"))),
        )
    }
}

impl Iterator for JsonItems {
    type Item = Result<Item, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(lines) = &mut self.lines {
            return lines.next();
        }
        if self.finished {
            return None;
        }
        // Find the first non-space byte of the file, then of the next item.
        let first = loop {
            match self.next_byte()? {
                Err(e) => return Some(Err(e)),
                Ok(b) if b.is_ascii_whitespace() => continue,
                Ok(b) => break b,
            }
        };
        if self.array.is_none() {
            if first != b'[' {
                self.lines = Some(Lines::open(&self.file));
                return self.lines.as_mut().and_then(Iterator::next);
            }
            self.array = Some(true);
            return self.next();
        }
        if first == b']' {
            self.finished = true;
            return None;
        }
        let start_line = self.line;
        let mut text = vec![first];
        let (mut depth, mut in_string, mut escaped) = (0i64, first == b'"', false);
        if first == b'{' || first == b'[' {
            depth = 1;
        }
        loop {
            let b = match self.next_byte() {
                None => {
                    self.finished = true;
                    return Some(Err(DatasetError::at(
                        &self.file,
                        start_line,
                        "the JSON array is cut short: this item or the closing `]` is missing",
                    )));
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(b)) => b,
            };
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                text.push(b);
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b']' => {
                    self.finished = true;
                    break;
                }
                b',' if depth == 0 => break,
                _ => {}
            }
            text.push(b);
        }
        let text = String::from_utf8_lossy(&text).trim().to_string();
        Some(Ok(Item {
            file: self.file.clone(),
            line: start_line,
            text,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::dataset::{Batch, Dataset, PluginInfo, Sample};
    use barrage_sdk::testing::Harness;

    /// A dataset echoing each item's line and text, to drive the readers under the harness.
    struct Echo(std::vec::IntoIter<Result<Item, DatasetError>>);

    impl Dataset for Echo {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "echo".into(),
                version: "0".into(),
                description: String::new(),
                secrets: Vec::new(),
            }
        }
        fn open() -> Result<Self, DatasetError> {
            Ok(Echo(JsonItems::open("in").collect::<Vec<_>>().into_iter()))
        }
        fn next_batch(&mut self, _max: u32) -> Result<Batch, DatasetError> {
            let samples = self
                .0
                .by_ref()
                .map(|r| r.map(|i| Sample::text(i.line, i.text)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Batch {
                samples,
                skipped: vec![],
                done: true,
            })
        }
    }

    fn items(input: &str) -> Result<Vec<(u64, String)>, DatasetError> {
        let p = Harness::new().file("in", input).run::<Echo>()?;
        Ok(p.samples
            .into_iter()
            .map(|s| match s.prompt {
                barrage_sdk::dataset::Prompt::Text(t) => (s.id, t),
                _ => unreachable!(),
            })
            .collect())
    }

    #[test]
    fn array_items_with_nested_brackets_strings_and_lines() {
        let got = items("[\n {\"a\": \"x],{\\\"\"},\n {\"b\": [1, {\"c\": 2}]}\n]\n").unwrap();
        assert_eq!(
            got,
            vec![
                (2, "{\"a\": \"x],{\\\"\"}".to_string()),
                (3, "{\"b\": [1, {\"c\": 2}]}".to_string())
            ]
        );
        assert_eq!(items("[]").unwrap(), vec![]);
    }

    #[test]
    fn json_lines_and_a_cut_array() {
        assert_eq!(
            items("{\"a\":1}\n\n{\"a\":2}\n").unwrap(),
            vec![(1, "{\"a\":1}".into()), (3, "{\"a\":2}".into())]
        );
        let e = items("[{\"a\":1},\n{\"a\":").unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (Some("in"), Some(2)));
        assert!(e.message.contains("cut short"), "{}", e.message);
    }
}
