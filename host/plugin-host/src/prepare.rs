//! Datasets: the prompts a run sends, prepared before the run by a dataset
//! plugin and cached.
//!
//! [`prepare`] loads the plugin, gives it read access to the configured
//! input files, drains its generation, optionally renders chat prompts with a
//! chat template, and keeps the result in a cache keyed by everything that
//! can change it (plugin bytes, configuration, the files' size and mtime,
//! tokenizer, seed, template). The engine then only picks prepared samples:
//! no tokenization or file reading happens while requests are being sent.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::{FileAccess, GenerateError, describe};
use crate::{DatasetPlugin, PluginContext, PluginEngine, PluginError, Registry, World};
use barrage_core::types::Prompt;

/// Bump when the cache file layout or sample preparation changes.
const CACHE_FORMAT: u32 = 2;

/// The `dataset:` section of a run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Dataset plugin: a built-in name (`synthetic`, `sharegpt`, `jsonl`,
    /// `csv`, `shared-prefix`, `multi-turn`, `trace`), an installed name or a `.wasm` path.
    pub plugin: String,
    /// Input files the plugin may read, relative to the config file's directory.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// A directory the plugin may read media files from (the images and
    /// audio its records name, relative to it), relative to the config
    /// file's directory.
    #[serde(default)]
    pub media_dir: Option<PathBuf>,
    /// The plugin's own options.
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Reuse prepared samples from the cache when nothing changed (default true).
    #[serde(default = "yes")]
    pub cache: bool,
    /// A chat template (a Jinja file, a `tokenizer_config.json`, or `auto`:
    /// the one next to the run's `tokenizer.json`) to count chat prompts'
    /// tokens as the server will see them.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Render chat prompts with the template and send them as text (for
    /// completions endpoints).
    #[serde(default)]
    pub apply_chat_template: bool,
}

fn yes() -> bool {
    true
}

/// A turn of a multi-turn session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SessionTurn {
    /// Session id.
    pub session: u64,
    /// Turn, from 0.
    pub turn: u32,
    /// Pause after the previous turn's response, ms.
    pub think_time_ms: Option<f64>,
}

/// One prepared request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The plugin's id for it.
    pub id: u64,
    /// The prompt.
    pub prompt: Prompt,
    /// Prompt tokens, as counted with the run's tokenizer (and template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// Output tokens to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    /// Send time, ms from the stage start (trace replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<f64>,
    /// Where it sits in a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTurn>,
    /// Extra request body fields, a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
    /// Tools offered with the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<barrage_core::types::Tool>,
}

/// Input the plugin skipped (with `on_error: skip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Where, as `file:line: message`.
    pub at: String,
}

/// The samples of a run, ready to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    /// The dataset plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// sha256 of its component.
    pub sha256: String,
    /// The samples, sessions' turns together and in turn order.
    pub samples: Vec<Sample>,
    /// Input left out.
    pub skipped: Vec<Skipped>,
    /// Whether they came from the cache.
    #[serde(skip)]
    pub from_cache: bool,
    /// Seconds spent preparing (or loading from the cache).
    #[serde(skip)]
    pub seconds: f64,
    /// Why the prepared samples could not be cached, if they could not
    /// (the run goes on; the caller says so).
    #[serde(skip)]
    pub cache_error: Option<String>,
}

impl Prepared {
    /// The units the engine sends: a session's turns (in order) or a single sample.
    pub fn units(&self) -> Vec<Range<usize>> {
        let mut units = Vec::new();
        let mut i = 0;
        while i < self.samples.len() {
            let start = i;
            if let Some(s) = self.samples[i].session {
                while i < self.samples.len() && self.samples[i].session.is_some_and(|t| t.session == s.session) {
                    i += 1;
                }
            } else {
                i += 1;
            }
            units.push(start..i);
        }
        units
    }

    /// Whether every sample has a send time (a trace).
    pub fn timed(&self) -> bool {
        !self.samples.is_empty() && self.samples.iter().all(|s| s.at_ms.is_some())
    }

    /// Every sample's send and think times are ones the engine can
    /// schedule, and its output length one the run would allow; the error
    /// names the first sample that is not.
    fn check_samples(&self) -> Result<(), String> {
        let bad = |ms: Option<f64>| ms.is_some_and(|ms| !(0.0..=crate::bounds::MAX_SAMPLE_MS).contains(&ms));
        for (i, s) in self.samples.iter().enumerate() {
            if let Some(n) = s.output_tokens.filter(|n| *n > crate::bounds::MAX_SAMPLE_TOKENS) {
                return Err(format!(
                    "sample {i} (id {}): output_tokens is {n}; at most {}",
                    s.id,
                    crate::bounds::MAX_SAMPLE_TOKENS
                ));
            }
            let think = s.session.and_then(|t| t.think_time_ms);
            for (name, ms) in [("at_ms", s.at_ms), ("think_time_ms", think)] {
                if bad(ms) {
                    return Err(format!(
                        "sample {i} (id {}): {name} is {:?}, not a time from 0 to {} ms (about 116 days); \
                         check the input's times and the plugin's scaling of them (e.g. time_scale)",
                        s.id,
                        ms.unwrap_or_default(),
                        crate::bounds::MAX_SAMPLE_MS
                    ));
                }
            }
        }
        Ok(())
    }

    /// Put each session's turns together, in turn order, where the session
    /// first appears; samples without a session keep their place.
    fn group_sessions(&mut self) {
        if self.samples.iter().all(|s| s.session.is_none()) {
            return;
        }
        let mut first_seen: BTreeMap<u64, usize> = BTreeMap::new();
        let key: Vec<(usize, u32)> = self
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| match s.session {
                Some(t) => (*first_seen.entry(t.session).or_insert(i), t.turn),
                None => (i, 0),
            })
            .collect();
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        order.sort_by_key(|&i| key[i]);
        let mut taken: Vec<Option<Sample>> = std::mem::take(&mut self.samples).into_iter().map(Some).collect();
        self.samples = order.into_iter().filter_map(|i| taken[i].take()).collect();
    }

    /// Figures for messages and `meta.json`.
    pub fn stats(&self) -> DatasetStats {
        let tokens = |f: fn(&Sample) -> Option<u32>| {
            let v: Vec<u32> = self.samples.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| LengthStats {
                mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
                min: *v.iter().min().unwrap_or(&0),
                max: *v.iter().max().unwrap_or(&0),
            })
        };
        DatasetStats {
            plugin: self.plugin.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
            samples: self.samples.len() as u64,
            sessions: self
                .samples
                .iter()
                .filter(|s| s.session.is_some_and(|t| t.turn == 0))
                .count() as u64,
            skipped: self.skipped.len() as u64,
            prompt_tokens: tokens(|s| s.prompt_tokens),
            output_tokens: tokens(|s| s.output_tokens),
            from_cache: self.from_cache,
        }
    }
}

/// Mean, smallest and largest of a length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthStats {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: u32,
    /// Largest.
    pub max: u32,
}

/// What a dataset produced, for `meta.json` and the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// sha256 of the plugin.
    pub sha256: String,
    /// Samples prepared.
    pub samples: u64,
    /// Multi-turn sessions among them.
    pub sessions: u64,
    /// Input records left out.
    pub skipped: u64,
    /// Prompt lengths.
    pub prompt_tokens: Option<LengthStats>,
    /// Output lengths asked for.
    pub output_tokens: Option<LengthStats>,
    /// Whether the samples came from the cache.
    pub from_cache: bool,
}

impl std::fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dataset {}: {} samples", self.plugin, self.samples)?;
        if self.sessions > 0 {
            write!(f, " in {} sessions", self.sessions)?;
        }
        for (name, l) in [("prompt", &self.prompt_tokens), ("output", &self.output_tokens)] {
            if let Some(l) = l {
                write!(f, ", {name} tokens mean {:.1} (min {}, max {})", l.mean, l.min, l.max)?;
            }
        }
        if self.skipped > 0 {
            write!(f, ", {} input records skipped", self.skipped)?;
        }
        if self.from_cache {
            f.write_str(" (from cache)")?;
        }
        Ok(())
    }
}

/// Why a dataset could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The plugin could not be found or loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// An input file is missing.
    #[error("dataset file {path}: {message}")]
    File {
        /// The path as resolved.
        path: String,
        /// Why.
        message: String,
    },
    /// The plugin reported bad input or configuration.
    #[error("dataset {plugin}: {message}")]
    Input {
        /// Plugin name.
        plugin: String,
        /// `file:line: message`.
        message: String,
    },
    /// The plugin failed (trap, deadline, memory).
    #[error("dataset {0}")]
    Failed(crate::PluginFailure),
    /// The chat template could not be read or rendered.
    #[error("chat template: {0}")]
    Template(#[from] crate::tokenizer::TemplateError),
}

/// What preparing needs besides the configuration.
pub struct PrepareEnv<'a> {
    /// The plugin engine.
    pub engine: &'a PluginEngine,
    /// Where plugins are found.
    pub registry: &'a Registry,
    /// The plugin context (tokenizer, seed, log level); its config is replaced.
    pub context: PluginContext,
    /// Directory relative input paths are resolved against.
    pub base_dir: &'a Path,
    /// Cache directory; none: no cache.
    pub cache_dir: Option<PathBuf>,
}

/// The default dataset cache: `$BARRAGE_CACHE_DIR/datasets`, else
/// `$XDG_CACHE_HOME/barrage/datasets`, else `~/.cache/barrage/datasets`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BARRAGE_CACHE_DIR") {
        return Some(PathBuf::from(dir).join("datasets"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("barrage").join("datasets"))
}

/// Prepare the samples `config` describes (from the cache when unchanged).
pub fn prepare(config: &DatasetConfig, env: PrepareEnv<'_>) -> Result<Prepared, DatasetError> {
    let started = Instant::now();
    let source = env.registry.resolve_in(World::Dataset, &config.plugin)?;
    let files: Vec<(String, PathBuf)> = config
        .files
        .iter()
        .map(|f| (f.display().to_string(), env.base_dir.join(f)))
        .collect();
    let media_dir = match &config.media_dir {
        Some(dir) => {
            let path = env.base_dir.join(dir);
            match std::fs::canonicalize(&path) {
                Ok(c) if c.is_dir() => Some(c),
                _ => {
                    return Err(DatasetError::File {
                        path: path.display().to_string(),
                        message: "media_dir is not a directory (relative paths are resolved against the config file's directory)".into(),
                    });
                }
            }
        }
        None => None,
    };
    for (_, path) in &files {
        let problem = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => continue,
            Ok(m) if m.is_dir() => "is a directory; name a file in it",
            Ok(_) => "is not a regular file",
            Err(_) => "no such file (relative paths are resolved against the config file's directory)",
        };
        return Err(DatasetError::File {
            path: path.display().to_string(),
            message: problem.into(),
        });
    }
    let config_json = serde_json::to_string(&config.config).unwrap_or_else(|_| "{}".into());
    let tokenizer = env.context.tokenizer.clone();
    let template = match &config.chat_template {
        Some(spec) => Some(
            crate::tokenizer::ChatTemplate::load(spec, env.base_dir, tokenizer.as_ref())
                .map_err(DatasetError::Template)?,
        ),
        None if config.apply_chat_template => {
            return Err(DatasetError::Template(crate::tokenizer::TemplateError(
                "apply_chat_template needs chat_template (a Jinja file, a tokenizer_config.json, or `auto`)".into(),
            )));
        }
        None => None,
    };
    let mut context = env.context;
    context.config_json = config_json.clone().into();
    let plugin = DatasetPlugin::load(env.engine, &source, context.clone())?;

    let key = {
        let mut h = Sha256::new();
        h.update(format!(
            "{CACHE_FORMAT}\0{}\0{config_json}\0{}\0{}\0",
            plugin.sha256,
            tokenizer.name(),
            context.seed
        ));
        for (name, path) in &files {
            let meta = std::fs::metadata(path).ok();
            let mtime = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            h.update(format!(
                "{name}\0{}\0{}\0{mtime}\0",
                canonical.display(),
                meta.map_or(0, |m| m.len())
            ));
        }
        if let Some(t) = &template {
            h.update(format!("template\0{}\0{}\0", t.source(), config.apply_chat_template));
        }
        if let Some(dir) = &media_dir {
            // Samples hold the media's bytes: a changed file is a changed dataset.
            h.update(format!("media\0{}\0", dir.display()));
            for (name, len, mtime) in crate::dataset::listing(dir) {
                h.update(format!("{name}\0{len}\0{mtime}\0"));
            }
        }
        hex::encode(h.finalize())
    };
    let cache_file = env
        .cache_dir
        .filter(|_| config.cache)
        .map(|d| d.join(format!("{}-{}.jsonl", plugin.name(), &key[..32])));
    if let Some(path) = &cache_file
        && let Some(mut prepared) = read_cache(path)
        && prepared.check_samples().is_ok()
    {
        prepared.from_cache = true;
        prepared.seconds = started.elapsed().as_secs_f64();
        return Ok(prepared);
    }

    let (samples, skipped) = plugin
        .generate(FileAccess::new(files).with_media(media_dir))
        .map_err(|e| match e {
            GenerateError::Input(e) => DatasetError::Input {
                plugin: plugin.name().to_string(),
                message: describe(&e),
            },
            GenerateError::Failed(f) => DatasetError::Failed(f),
        })?;
    let mut prepared = Prepared {
        plugin: plugin.name().to_string(),
        version: plugin.info.version.clone(),
        sha256: plugin.sha256.clone(),
        samples,
        skipped: skipped.iter().map(|e| Skipped { at: describe(e) }).collect(),
        from_cache: false,
        seconds: 0.0,
        cache_error: None,
    };
    if prepared.samples.is_empty() {
        return Err(DatasetError::Input {
            plugin: prepared.plugin,
            message: format!(
                "no samples: every input record was filtered out or skipped ({} skipped)",
                prepared.skipped.len()
            ),
        });
    }
    prepared.check_samples().map_err(|message| DatasetError::Input {
        plugin: prepared.plugin.clone(),
        message,
    })?;
    prepared.group_sessions();
    if let Some(t) = &template {
        for s in &mut prepared.samples {
            if let Prompt::Messages(m) = &s.prompt {
                let text = t.render(m).map_err(DatasetError::Template)?;
                s.prompt_tokens = Some(tokenizer.count(&text));
                if config.apply_chat_template {
                    s.prompt = Prompt::Text(text);
                }
            }
        }
    }
    if let Some(path) = &cache_file
        && let Err(e) = write_cache(path, &prepared)
    {
        prepared.cache_error = Some(format!("dataset cache not written to {}: {e}", path.display()));
    }
    prepared.seconds = started.elapsed().as_secs_f64();
    Ok(prepared)
}

/// The cache file: a header line (the [`Prepared`] without samples), then one sample per line.
fn write_cache(path: &Path, prepared: &Prepared) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let header = Prepared {
        samples: Vec::new(),
        ..prepared.clone()
    };
    serde_json::to_writer(&mut out, &(CACHE_FORMAT, prepared.samples.len(), header))?;
    out.write_all(b"\n")?;
    for s in &prepared.samples {
        serde_json::to_writer(&mut out, s)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The cached samples, or none if the file is missing, stale or damaged
/// (then the dataset is prepared again).
fn read_cache(path: &Path) -> Option<Prepared> {
    let mut lines = std::io::BufReader::new(std::fs::File::open(path).ok()?).lines();
    let (format, count, mut prepared): (u32, usize, Prepared) = serde_json::from_str(&lines.next()?.ok()?).ok()?;
    if format != CACHE_FORMAT {
        return None;
    }
    prepared.samples = Vec::with_capacity(count);
    for line in lines {
        prepared.samples.push(serde_json::from_str(&line.ok()?).ok()?);
    }
    (prepared.samples.len() == count).then_some(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: u64, session: Option<(u64, u32)>) -> Sample {
        Sample {
            id,
            prompt: Prompt::Text(format!("p{id}")),
            prompt_tokens: Some(1),
            output_tokens: None,
            at_ms: None,
            session: session.map(|(session, turn)| SessionTurn {
                session,
                turn,
                think_time_ms: None,
            }),
            extra: None,
            tools: Vec::new(),
        }
    }

    #[test]
    fn sessions_are_grouped_in_turn_order() {
        let mut p = Prepared {
            plugin: "x".into(),
            version: "0".into(),
            sha256: String::new(),
            samples: vec![
                sample(0, Some((7, 1))),
                sample(1, None),
                sample(2, Some((3, 0))),
                sample(3, Some((7, 0))),
                sample(4, Some((3, 1))),
            ],
            skipped: vec![],
            from_cache: false,
            seconds: 0.0,
            cache_error: None,
        };
        p.group_sessions();
        let ids: Vec<u64> = p.samples.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![3, 0, 1, 2, 4]);
        assert_eq!(p.units(), vec![0..2, 2..3, 3..5]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        write_cache(&path, &p).unwrap();
        let back = read_cache(&path).unwrap();
        assert_eq!(back.samples, p.samples);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(read_cache(&path).is_none());
    }
}
