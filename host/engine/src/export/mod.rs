//! What a run measures, exported while it runs (`export:` in a run
//! configuration; `--metrics-listen`, `--pushgateway`, `--remote-write`):
//! a scrape endpoint served during the run and for a linger after it
//! ([`serve`]), pushes to a Pushgateway and by remote write ([`push`]), all
//! from one `prometheus-client` registry ([`live`]) that the records thread
//! and the pacer keep.
//!
//! Prometheus is a live view, not the result: `summary.json`, computed
//! exactly from the records, stays the source of truth (histogram
//! quantiles are estimates, and percentiles from several shards cannot be
//! merged through Prometheus).

mod live;
mod push;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::load::shared::Counters;
use crate::metrics::ScheduleCounts;

pub(crate) use live::Observer;

/// `export:` in a run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Serve `/metrics` at this `host:port` during the run.
    pub listen: Option<String>,
    /// Seconds to go on serving after the run, for a last scrape.
    pub linger_s: f64,
    /// A Pushgateway's base URL: the registry is pushed at each stage's end
    /// and at the run's end, grouped by run id and shard.
    pub pushgateway: Option<String>,
    /// A remote-write receiver's URL (Prometheus:
    /// `http://host:9090/api/v1/write`, with `--web.enable-remote-write-receiver`).
    pub remote_write: Option<String>,
    /// Seconds between remote writes (and one at each stage's end and at
    /// the run's end).
    pub remote_write_interval_s: f64,
    /// The `run_id` label; by default the results directory's name.
    pub run_id: Option<String>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            listen: None,
            linger_s: 15.0,
            pushgateway: None,
            remote_write: None,
            remote_write_interval_s: 5.0,
            run_id: None,
        }
    }
}

/// Check `export:`; the message names the key and says what to give.
pub fn check(config: &ExportConfig) -> Result<(), String> {
    if let Some(addr) = &config.listen
        && addr.parse::<SocketAddr>().is_err()
    {
        return Err(format!(
            "export.listen `{addr}` is not an address and port: give e.g. 127.0.0.1:9464 or [::1]:9464"
        ));
    }
    for (key, url) in [
        ("export.pushgateway", &config.pushgateway),
        ("export.remote_write", &config.remote_write),
    ] {
        if let Some(url) = url {
            match url.parse::<hyper::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "{key} `{url}`: give an http:// or https:// URL, e.g. http://127.0.0.1:9091"
                    ));
                }
            }
        }
    }
    for (key, v, least) in [
        ("export.linger_s", config.linger_s, 0.0),
        ("export.remote_write_interval_s", config.remote_write_interval_s, 0.1),
    ] {
        if !(v >= least && v.is_finite()) {
            return Err(format!("{key} must be a number of seconds, at least {least}; got {v}"));
        }
    }
    if config.listen.is_none() && config.pushgateway.is_none() && config.remote_write.is_none() {
        return Err("export: give at least one of listen, pushgateway, remote_write".into());
    }
    Ok(())
}

/// Who the metrics are from: labels on every sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The run.
    pub run_id: String,
    /// The load generator's shard (`0` for a run of one).
    pub shard: String,
    /// The target's URL.
    pub target: String,
    /// The codec's name.
    pub codec: String,
}

/// How the export went, in `summary.json` (`export`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportStats {
    /// Where `/metrics` was served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Scrapes answered.
    pub scrapes: u64,
    /// Pushes to the Pushgateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<PushStats>,
    /// Remote writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<PushStats>,
}

/// Pushes to one place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushStats {
    /// Where.
    pub url: String,
    /// Pushes it took.
    pub sent: u64,
    /// Pushes that failed.
    pub failed: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

/// Why the export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The listen address could not be bound.
    #[error("export.listen {addr}: {source} (is another process serving there? pick another port)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The push client could not be built.
    #[error("export: {0}")]
    Client(String),
}

/// A run's export, started before the run (so a busy port is an error
/// before any load) and lingering after it.
pub struct Exporter {
    metrics: Arc<live::LiveMetrics>,
    linger: Duration,
    listen: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    scrapes: Arc<AtomicU64>,
    stats: Arc<Mutex<ExportStats>>,
    pushes: Option<mpsc::UnboundedSender<push::Trigger>>,
}

impl Exporter {
    /// Bind and start what `config` asks for; on the run's runtime.
    pub async fn start(config: &ExportConfig, identity: Identity) -> Result<Exporter, ExportError> {
        let metrics = Arc::new(live::LiveMetrics::new(&identity));
        let scrapes = Arc::new(AtomicU64::new(0));
        let listen = match &config.listen {
            Some(addr) => {
                let (listener, local) = serve::bind(addr).await.map_err(|source| ExportError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
                Some((local, serve::spawn(listener, metrics.clone(), scrapes.clone())))
            }
            None => None,
        };
        let stats = Arc::new(Mutex::new(ExportStats {
            listen: listen.as_ref().map(|(a, _)| a.to_string()),
            scrapes: 0,
            pushgateway: config.pushgateway.as_deref().map(|base| PushStats {
                url: push::group_url(base, &identity),
                ..PushStats::default()
            }),
            remote_write: config.remote_write.as_ref().map(|url| PushStats {
                url: url.clone(),
                ..PushStats::default()
            }),
        }));
        let pushes = if config.pushgateway.is_some() || config.remote_write.is_some() {
            Some(push::spawn(config, &identity, metrics.clone(), stats.clone()).map_err(ExportError::Client)?)
        } else {
            None
        };
        Ok(Exporter {
            metrics,
            linger: Duration::from_secs_f64(config.linger_s),
            listen,
            scrapes,
            stats,
            pushes,
        })
    }

    /// Where `/metrics` is served, if it is.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.as_ref().map(|(a, _)| *a)
    }

    /// How long [`Exporter::linger`] serves on.
    pub fn linger_time(&self) -> Option<Duration> {
        self.listen.as_ref().map(|_| self.linger)
    }

    /// The run's live counters, read at each scrape from now on.
    pub(crate) fn attach(&self, counters: Arc<Counters>) {
        let _ = self.metrics.counters.set(counters);
    }

    /// What the records thread keeps up to date.
    pub(crate) fn observer(&self) -> Observer {
        Observer::new(self.metrics.clone())
    }

    /// What the pacer tells of its stages.
    pub(crate) fn stage_hooks(&self) -> StageHooks {
        StageHooks {
            metrics: self.metrics.clone(),
            pushes: self.pushes.clone(),
        }
    }

    /// The run is over with `schedule` per stage: the last pushes, then
    /// how the export went.
    pub(crate) async fn finish(&self, schedule: &[ScheduleCounts]) -> ExportStats {
        for (index, counts) in schedule.iter().enumerate() {
            self.metrics.set_schedule(index, counts);
        }
        self.metrics.set_stage(None);
        if let Some(p) = &self.pushes {
            let (done, pushed) = tokio::sync::oneshot::channel();
            if p.send(push::Trigger::Final(done)).is_ok() {
                let _ = pushed.await;
            }
        }
        self.stats()
    }

    /// How the export has gone so far.
    pub fn stats(&self) -> ExportStats {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        stats.scrapes = self.scrapes.load(Ordering::Relaxed);
        stats
    }

    /// Serve on for the linger, or until `stop` is stopped (a Ctrl-C; one
    /// that stopped the run already does not cut the linger short), then
    /// stop serving.
    pub async fn linger(self, stop: &crate::load::StopSignal) {
        let Some((_, task)) = self.listen else {
            return;
        };
        let until = tokio::time::Instant::now() + self.linger;
        let stopped_before = stop.is_stopped();
        while tokio::time::Instant::now() < until && (stopped_before || !stop.is_stopped()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
    }
}

/// The pacer's side of the export: which stage is offered, and each
/// stage's schedule when it ends (which pushes).
#[derive(Clone)]
pub(crate) struct StageHooks {
    metrics: Arc<live::LiveMetrics>,
    pushes: Option<mpsc::UnboundedSender<push::Trigger>>,
}

impl StageHooks {
    /// The pacer begins stage `index`.
    pub fn started(&self, index: usize) {
        self.metrics.set_stage(Some(index));
    }

    /// The pacer is done with stage `index`, whose schedule is `counts`.
    pub fn ended(&self, index: usize, counts: &ScheduleCounts) {
        self.metrics.set_schedule(index, counts);
        self.metrics.set_stage(None);
        if let Some(p) = &self.pushes {
            let _ = p.send(push::Trigger::StageEnd);
        }
    }
}
