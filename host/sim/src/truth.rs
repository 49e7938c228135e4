//! Ground truth: the simulator's own record of when it sent each frame, so
//! Barrage's measured TTFT and ITL can be checked against it.
//!
//! Times are `CLOCK_MONOTONIC` nanoseconds, the clock Barrage's timestamps
//! use too and the same for every process on the machine, so records from a
//! separate `barrage sim` process compare directly with a run's.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

pub use barrage_core::clock::monotonic_ns;

/// One request's true timeline.
#[derive(Debug, Serialize)]
pub struct TruthRecord {
    /// The client's `x-request-id`, when sent.
    pub request_id: Option<String>,
    /// The simulator's request number.
    pub seq: u64,
    /// When the request arrived.
    pub arrived_ns: u64,
    /// When each frame was handed to the connection.
    pub frames_ns: Vec<u64>,
    /// Which frames carried output text.
    pub content: Vec<bool>,
    #[serde(skip)]
    pub(crate) malformed_sent: bool,
}

impl TruthRecord {
    pub(crate) fn new(request_id: Option<String>, seq: u64, arrived_ns: u64) -> TruthRecord {
        TruthRecord {
            request_id,
            seq,
            arrived_ns,
            frames_ns: Vec::new(),
            content: Vec::new(),
            malformed_sent: false,
        }
    }

    pub(crate) fn frame(&mut self, at_ns: u64, content: bool) {
        self.frames_ns.push(at_ns);
        self.content.push(content);
    }

    pub(crate) fn content_frames(&self) -> usize {
        self.content.iter().filter(|c| **c).count()
    }
}

/// Appends records as JSON Lines.
pub struct TruthWriter {
    out: Mutex<BufWriter<std::fs::File>>,
}

impl TruthWriter {
    /// Create (truncate) the file.
    pub fn create(path: &Path) -> std::io::Result<TruthWriter> {
        Ok(TruthWriter {
            out: Mutex::new(BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    /// Append one record.
    pub fn write(&self, record: TruthRecord) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(line) = serde_json::to_string(&record) {
            let _ = writeln!(out, "{line}");
        }
    }

    /// Flush to disk.
    pub fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }
}

impl Drop for TruthWriter {
    fn drop(&mut self) {
        self.flush();
    }
}
