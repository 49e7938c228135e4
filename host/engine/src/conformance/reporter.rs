//! A reporter's checks, on runs made up for it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use barrage_plugin_host::PluginSource;

use super::{Check, Outcome, Setup};
use crate::config::ReportConfig;
use crate::metrics::{Record, Status, TokenSource};
use crate::report::ReporterHost;

/// Requests in the small run, and in the large one.
const SMALL: u64 = 2_000;
const LARGE: u64 = 100_000;

/// A run of `requests` at 100 req/s (each 10th failing, each 7th a stream
/// of reasoning first) written into `dir`: records, configuration and
/// meta; its summary rebuilt from them as `barrage report` does.
fn made_up_run(dir: &Path, requests: u64) -> Result<crate::metrics::Summary, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = crate::config::RunConfig {
        stages: vec![crate::config::Stage {
            shape: crate::load::shape::ShapeKind::Constant,
            rate: Some(100.0),
            requests: Some(requests),
            ..crate::config::Stage::default()
        }],
        ..crate::config::RunConfig::default()
    };
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"));
    write(
        crate::results::CONFIG,
        serde_yaml_ng::to_string(&config).unwrap_or_default().into_bytes(),
    )?;
    let meta = crate::results::Meta {
        barrage_version: env!("CARGO_PKG_VERSION").into(),
        target: "http://127.0.0.1:8000".into(),
        ..crate::results::Meta::default()
    };
    write(crate::results::META, serde_json::to_vec(&meta).unwrap_or_default())?;
    let file = std::fs::File::create(dir.join(crate::results::RECORDS)).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(file);
    for id in 0..requests {
        let sent = id as f64 * 10.0;
        let failed = id % 10 == 9;
        let frames: Vec<f64> = if failed {
            Vec::new()
        } else {
            (0..16)
                .map(|i| sent + 40.0 + i as f64 * (8.0 + (id % 5) as f64))
                .collect()
        };
        let record = Record {
            id,
            scheduled_ms: sent,
            sent_ms: sent + 0.05,
            headers_ms: Some(sent + 5.0),
            first_byte_ms: Some(sent + 6.0),
            first_token_ms: frames.first().copied(),
            last_token_ms: frames.last().copied(),
            end_ms: frames.last().map_or(sent + 7.0, |l| l + 1.0),
            content_frame_tokens: frames.iter().map(|_| Some(1)).collect(),
            content_frames_ms: frames,
            reasoning_frames: u32::from(id % 7 == 0) * 4,
            prompt_tokens: Some(64),
            prompt_tokens_source: Some(TokenSource::Usage),
            output_tokens: if failed { 0 } else { 16 },
            output_tokens_source: TokenSource::Usage,
            status: if failed { Status::HttpError } else { Status::Ok },
            http_status: Some(if failed { 503 } else { 200 }),
            http_version: Some("HTTP/1.1".into()),
            error: failed.then(|| "HTTP 503: overloaded \"<&>\"".into()),
            finish_reason: (!failed).then(|| "length".into()),
            bytes_sent: 300,
            bytes_received: 2_000,
            measured: true,
            ..Record::default()
        };
        serde_json::to_writer(&mut out, &record).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let run = crate::results::RunDir::open(dir).map_err(|e| e.to_string())?;
    let options = ReportConfig::default().metrics_options().map_err(|e| e.to_string())?;
    crate::report::rebuild(&run, options)
        .map(|(summary, _)| summary)
        .map_err(|e| e.to_string())
}

/// Render `run`'s summary with the reporter into `out`: the files written.
fn render(
    setup: &Setup<'_>,
    reporter: &str,
    summary: &crate::metrics::Summary,
    run: &Path,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    let config = ReportConfig {
        reporters: vec![reporter.to_string()],
        ..ReportConfig::default()
    };
    let host = ReporterHost {
        engine: setup.engine,
        registry: setup.registry,
        context: &setup.context,
    };
    let mut outcomes = host.render_all(&config, summary, &run.join(crate::results::RECORDS), out);
    match outcomes.pop() {
        Some((_, outcome)) => outcome.map_err(|e| e.to_string()),
        None => Err("nothing was rendered".into()),
    }
}

pub(super) fn checks(setup: &Setup<'_>) -> Vec<Check> {
    let reporter = match &setup.source {
        PluginSource::Builtin { name, .. } => name.to_string(),
        PluginSource::File(path) => path.display().to_string(),
    };
    let work = &setup.work_dir;
    let mut checks = Vec::new();
    let small = work.join("small-run");
    let summary = match made_up_run(&small, SMALL) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::new(
                "renders a run",
                Outcome::Skipped(format!("no run to render: {e}")),
            )];
        }
    };
    let (first, second) = (work.join("out-1"), work.join("out-2"));
    let files = match render(setup, &reporter, &summary, &small, &first) {
        Ok(files) => files,
        Err(e) => return vec![Check::new("renders a run", Outcome::Failed(e))],
    };
    let outside = files.iter().find(|f| !f.starts_with(&first));
    checks.push(Check::judged(
        "renders a run",
        format!(
            "{} requests into {}",
            SMALL,
            files
                .iter()
                .map(|f| f.strip_prefix(&first).unwrap_or(f).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        if files.is_empty() {
            Some("it wrote no file".into())
        } else {
            outside.map(|f| format!("it wrote {} outside its directory", f.display()))
        },
    ));
    checks.push(match render(setup, &reporter, &summary, &small, &second) {
        Ok(again) => {
            let contents = |dir: &Path, files: &[PathBuf]| -> Vec<(PathBuf, Vec<u8>)> {
                files
                    .iter()
                    .map(|f| {
                        (
                            f.strip_prefix(dir).unwrap_or(f).to_path_buf(),
                            std::fs::read(f).unwrap_or_default(),
                        )
                    })
                    .collect()
            };
            Check::judged(
                "deterministic",
                "rendered twice, the same files",
                (contents(&first, &files) != contents(&second, &again))
                    .then(|| "a second render of the same run wrote other files or contents".to_string()),
            )
        }
        Err(e) => Check::new("deterministic", Outcome::Failed(e)),
    });
    let large = work.join("large-run");
    checks.push(match made_up_run(&large, LARGE) {
        Err(e) => Check::new(
            "renders a large run",
            Outcome::Skipped(format!("no run to render: {e}")),
        ),
        Ok(summary) => {
            let started = std::time::Instant::now();
            match render(setup, &reporter, &summary, &large, &work.join("out-large")) {
                Ok(_) => Check::new(
                    "renders a large run",
                    Outcome::Passed(format!(
                        "{LARGE} requests in {:.1} s, within its deadline and memory",
                        started.elapsed().as_secs_f64()
                    )),
                ),
                Err(e) => Check::new("renders a large run", Outcome::Failed(e)),
            }
        }
    });
    checks
}
