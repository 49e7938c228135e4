//! `barrage sim`: the simulated model server on loopback.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use barrage_sim::SimConfig;
use barrage_sim::config::{Dist, ServerTls};

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// YAML configuration (see docs/simulator.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (0: any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Timing model.
    #[arg(long, value_enum)]
    mode: Option<barrage_sim::Mode>,
    /// Seed for text, lengths, timings and faults.
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas behind the port.
    #[arg(long)]
    replicas: Option<usize>,
    /// Plain mode: constant time to first token, ms.
    #[arg(long, value_name = "MS")]
    ttft_ms: Option<f64>,
    /// Plain mode: constant time between tokens, ms.
    #[arg(long, value_name = "MS")]
    itl_ms: Option<f64>,
    /// Batching mode: most sequences in a batch.
    #[arg(long)]
    max_num_seqs: Option<usize>,
    /// Tokens per streamed chunk.
    #[arg(long)]
    stream_interval: Option<u32>,
    /// Whose Prometheus metric names /metrics uses.
    #[arg(long, value_enum)]
    metric_names: Option<barrage_sim::config::MetricNames>,
    /// Record the true send time of every frame to this JSON Lines file.
    #[arg(long, value_name = "FILE")]
    ground_truth: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl SimArgs {
    /// Apply these flags over `config` (the file's, or the defaults).
    fn apply(self, config: &mut SimConfig) {
        if let Some(v) = self.host {
            config.host = v;
        }
        if let Some(v) = self.port {
            config.port = v;
        }
        if let Some(v) = self.mode {
            config.mode = v;
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.replicas {
            config.replicas = v;
        }
        if let Some(v) = self.ttft_ms {
            config.plain.ttft_ms = Dist::Constant(v);
        }
        if let Some(v) = self.itl_ms {
            config.plain.itl_ms = Dist::Constant(v);
        }
        if let Some(v) = self.max_num_seqs {
            config.batching.max_num_seqs = v;
        }
        if let Some(v) = self.stream_interval {
            config.stream_interval = v;
        }
        if let Some(v) = self.metric_names {
            config.metric_names = Some(v);
        }
        if let Some(v) = self.ground_truth {
            config.ground_truth = Some(v);
        }
        if let (Some(cert_file), Some(key_file)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(ServerTls { cert_file, key_file });
        }
    }
}

pub(crate) fn execute(args: SimArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => SimConfig::from_file(path)?,
        None => SimConfig::default(),
    };
    args.apply(&mut config);
    config.validate().map_err(|m| anyhow::anyhow!("simulator flags: {m}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async move {
        let sim = barrage_sim::Simulator::start(config.clone()).await?;
        // Printed on its own line so scripts and tests can find the port.
        println!(
            "barrage sim listening on http://{} (mode {:?}, model {})",
            sim.addr(),
            config.mode,
            config.model
        );
        barrage_engine::signals::wait_for_stop().await;
        eprintln!("barrage sim: stopping");
        sim.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
