//! The results directory of a run: records streamed to `records.jsonl` as
//! they complete, and reading a directory back (`barrage report`, `merge`,
//! `compare`).
//!
//! A run directory holds `meta.json` (who, when, which plugin), `config.yaml`
//! (the resolved configuration), `records.jsonl` (one record per request),
//! `summary.json` (the aggregates) and the reporters' files.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::{Aggregator, Record, Summary};

/// Why a results directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds something else than expected.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line, for JSON Lines.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Appends records to `records.jsonl` and aggregates them.
pub struct RecordSink {
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    /// The aggregates so far.
    pub aggregator: Aggregator,
}

impl RecordSink {
    /// Create `records.jsonl` in `dir`, aggregating into `aggregator`.
    pub fn create(dir: &Path, aggregator: Aggregator) -> Result<RecordSink, ResultsError> {
        let path = dir.join(RECORDS);
        let out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(&path).map_err(io(&path))?);
        Ok(RecordSink { out, path, aggregator })
    }

    /// Write and aggregate one record. The buffer reaches the disk on
    /// [`Self::flush`] (the records thread's, whenever it has caught up) and
    /// when full, so a crash loses only what arrived in the last moments.
    pub fn add(&mut self, r: &Record) -> Result<(), ResultsError> {
        serde_json::to_writer(&mut self.out, r)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(io(&self.path))?;
        self.aggregator.add(r);
        Ok(())
    }

    /// Flush to disk.
    pub fn flush(&mut self) -> Result<(), ResultsError> {
        self.out.flush().map_err(io(&self.path))
    }
}

/// File names in a run directory.
pub const RECORDS: &str = "records.jsonl";
/// The summary.
pub const SUMMARY: &str = "summary.json";
/// Who, when, which plugin.
pub const META: &str = "meta.json";
/// The resolved configuration.
pub const CONFIG: &str = "config.yaml";

/// `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Barrage version.
    pub barrage_version: String,
    /// The run's seed.
    pub seed: u64,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// The run's time origin on CLOCK_MONOTONIC (ns): record times are ms after it.
    pub origin_monotonic_ns: u64,
    /// The server benchmarked.
    pub target: String,
    /// The machine.
    pub host: String,
    /// The codec plugin.
    pub plugin: PluginMeta,
    /// The tokenizer plugins were given, and whether it is exact (`words` is not).
    #[serde(default)]
    pub tokenizer: TokenizerMeta,
    /// How the run started: exactly when, when it was asked to, and as
    /// which shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartMeta>,
    /// For a merged run: the runs it was made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardMeta>,
    /// The dataset the prompts came from, when one was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<barrage_plugin_host::prepare::DatasetStats>,
    /// The reporter plugins the run's reports are rendered by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reporters: Vec<PluginMeta>,
    /// The lockfile that approved every plugin, for a locked run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockfile: Option<LockMeta>,
}

/// The lockfile of a locked run in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockMeta {
    /// Where it was read from.
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// A run's start in `meta.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StartMeta {
    /// The wall clock at the run's origin, ms since the Unix epoch (to the µs).
    pub unix_ms: f64,
    /// The instant `start_at` asked for, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_unix_ms: Option<f64>,
    /// When the schedule began (the pacer waits for `start_at` once the
    /// run is set up), written when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_unix_ms: Option<f64>,
    /// The run's part of a distributed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::config::Shard>,
}

/// A plugin's identity in `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginMeta {
    /// Name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// sha256 of the component.
    pub sha256: String,
    /// Contract version it targets.
    pub contract: String,
    /// Where it came from.
    pub source: String,
}

/// The run's tokenizer in `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenizerMeta {
    /// Its name (`words`, `cl100k_base`, a model id or file).
    pub name: String,
    /// False for the approximate `words` rule.
    pub exact: bool,
}

/// One input of a merged run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The run directory.
    pub dir: String,
    /// Its host.
    pub host: String,
    /// Its start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Added to its record times to put them on the merged run's clock, ms.
    pub offset_ms: f64,
}

/// A run directory, opened for reading.
pub struct RunDir {
    /// The directory.
    pub dir: PathBuf,
    /// `meta.json`.
    pub meta: Meta,
    /// `summary.json`, when the run got to write it.
    pub summary: Option<Summary>,
}

impl RunDir {
    /// Open `dir`: it must hold `meta.json` and `records.jsonl`.
    pub fn open(dir: &Path) -> Result<RunDir, ResultsError> {
        let meta_path = dir.join(META);
        if !dir.join(RECORDS).exists() {
            return Err(ResultsError::Invalid {
                path: dir.display().to_string(),
                line: None,
                message: format!("not a Barrage results directory: it has no {RECORDS}"),
            });
        }
        let meta: Meta = read_json(&meta_path)?;
        let summary_path = dir.join(SUMMARY);
        let summary = if summary_path.exists() {
            Some(read_json(&summary_path)?)
        } else {
            None
        };
        Ok(RunDir {
            dir: dir.to_path_buf(),
            meta,
            summary,
        })
    }

    /// The resolved configuration, as the run wrote it.
    pub fn config(&self) -> Result<crate::config::RunConfig, ResultsError> {
        let path = self.dir.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_yaml_ng::from_str(&text).map_err(|e| ResultsError::Invalid {
            path: path.display().to_string(),
            line: e.location().map(|l| l.line() as u64),
            message: e.to_string(),
        })
    }

    /// Visit every record in order. A line cut short by a hard stop (the
    /// last line only) is skipped and counted in the return value; any
    /// other bad line is an error naming it.
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<u64, ResultsError> {
        let mut records = self.records()?;
        for r in records.by_ref() {
            f(r?);
        }
        Ok(records.skipped())
    }

    /// The records in order, read as they are taken (see [`Self::for_each_record`]).
    pub fn records(&self) -> Result<RecordReader, ResultsError> {
        let path = self.dir.join(RECORDS);
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        Ok(RecordReader {
            reader: BufReader::with_capacity(256 * 1024, file),
            path,
            line: Vec::new(),
            number: 0,
            pending: None,
            skipped: false,
        })
    }
}

/// Reads `records.jsonl` one record at a time.
pub struct RecordReader {
    reader: BufReader<std::fs::File>,
    path: PathBuf,
    // Bytes, not a String: a line cut inside a UTF-8 character must be
    // a bad line (skipped if last), not an unreadable file.
    line: Vec<u8>,
    number: u64,
    pending: Option<(u64, String)>,
    skipped: bool,
}

impl RecordReader {
    /// Lines skipped at the end (0 or 1), once the reader is exhausted.
    pub fn skipped(&self) -> u64 {
        u64::from(self.skipped)
    }
}

impl Iterator for RecordReader {
    type Item = Result<Record, ResultsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.reader.read_until(b'\n', &mut self.line) {
                Err(e) => return Some(Err(io(&self.path)(e))),
                Ok(0) => {
                    self.skipped |= self.pending.take().is_some();
                    return None;
                }
                Ok(_) => {}
            }
            self.number += 1;
            if let Some((n, message)) = self.pending.take() {
                return Some(Err(ResultsError::Invalid {
                    path: self.path.display().to_string(),
                    line: Some(n),
                    message,
                }));
            }
            let text = self.line.trim_ascii_end();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(text) {
                Ok(r) => return Some(Ok(r)),
                // A bad line is an error unless it is the last one and cut short.
                Err(e) => self.pending = Some((self.number, format!("not a record: {e}"))),
            }
        }
    }
}

/// Read and parse a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ResultsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| ResultsError::Invalid {
        path: path.display().to_string(),
        line: Some(e.line() as u64),
        message: e.to_string(),
    })
}

/// Write `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ResultsError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ResultsError::Invalid {
        path: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(io(path))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::{MetricsOptions, Record, Status};

    fn record(id: u64, stage: usize) -> Record {
        Record {
            id,
            stage,
            sent_ms: id as f64,
            end_ms: id as f64 + 10.0,
            status: Status::Ok,
            measured: true,
            ..Record::default()
        }
    }

    /// A run directory holding `records`, as a run leaves it (meta, records).
    pub(crate) fn run_dir(dir: &Path, started_unix_ms: u64, records: &[Record]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut sink = RecordSink::create(dir, Aggregator::new(1, MetricsOptions::default(), 120.0)).unwrap();
        for r in records {
            sink.add(r).unwrap();
        }
        sink.flush().unwrap();
        let meta = Meta {
            started_unix_ms,
            host: format!("host-{started_unix_ms}"),
            ..Meta::default()
        };
        write_json(&dir.join(META), &meta).unwrap();
    }

    #[test]
    fn records_written_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Record> = (0..5).map(|i| record(i, 0)).collect();
        run_dir(dir.path(), 1, &recs);
        let run = RunDir::open(dir.path()).unwrap();
        assert!(
            run.summary.is_none(),
            "no summary: the run was killed before it wrote one"
        );
        let mut ids = Vec::new();
        assert_eq!(run.for_each_record(|r| ids.push(r.id)).unwrap(), 0);
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_any_other_bad_line_named() {
        let dir = tempfile::tempdir().unwrap();
        run_dir(dir.path(), 1, &[record(0, 0), record(1, 0)]);
        let path = dir.path().join(RECORDS);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"id\":2,\"sta");
        std::fs::write(&path, &text).unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        let mut n = 0;
        assert_eq!(run.for_each_record(|_| n += 1).unwrap(), 1, "one line skipped");
        assert_eq!(n, 2);
        text.push_str("\n{\"id\":3}\n");
        std::fs::write(&path, &text).unwrap();
        let e = run.for_each_record(|_| {}).unwrap_err().to_string();
        assert!(e.contains("records.jsonl:3"), "{e}");
    }

    #[test]
    fn a_directory_without_records_is_not_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = RunDir::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains("not a Barrage results directory"), "{e}");
    }
}
