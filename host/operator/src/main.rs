//! `barrage-operator`: run the BenchmarkRun controller, or print the CRD or
//! a run's objects.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "The BenchmarkRun operator for Barrage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller with the cluster's credentials (in-cluster, or
    /// the kubeconfig's current context).
    Run {
        /// The Barrage image a run gets when its spec names none.
        #[arg(long, env = "BARRAGE_IMAGE", default_value = "")]
        image: String,
        /// Watch only this namespace (default: every namespace).
        #[arg(long)]
        namespace: Option<String>,
        /// Append every API exchange but watches to FILE, one JSON line
        /// each, as the test transcripts' `exchanges` are written.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Print the BenchmarkRun CRD (YAML).
    Crd,
    /// Print the objects a BenchmarkRun file makes (ConfigMap, claim, shard
    /// Job, merge Job), as the operator would create them.
    Render {
        file: PathBuf,
        /// The shards' start, Unix seconds (default: now + the spec's delay).
        #[arg(long)]
        start_at: Option<i64>,
        #[arg(long, env = "BARRAGE_IMAGE", default_value = "")]
        image: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", barrage_operator::crd::crd_yaml()),
        Command::Render { file, start_at, image } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let value: serde_json::Value =
                serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not YAML", file.display()))?;
            let run: barrage_operator::crd::BenchmarkRun = barrage_operator::strict::from_value(&value)
                .with_context(|| format!("{} is not a BenchmarkRun", file.display()))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let at = start_at.unwrap_or_else(|| barrage_operator::render::start_at(&run.spec, now));
            let plan = barrage_operator::render::plan(&run, &barrage_operator::render::Defaults { image }, at)
                .with_context(|| format!("{}", file.display()))?;
            let mut docs = vec![serde_yaml_ng::to_string(&plan.config_map)?];
            if let Some(claim) = &plan.claim {
                docs.push(serde_yaml_ng::to_string(claim)?);
            }
            docs.push(serde_yaml_ng::to_string(&plan.shards)?);
            if let Some(merge) = &plan.merge {
                docs.push(serde_yaml_ng::to_string(merge)?);
            }
            print!("{}", docs.join("---\n"));
        }
        Command::Run {
            image,
            namespace,
            record,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                use futures::StreamExt as _;
                let config = kube::Config::infer()
                    .await
                    .context("no Kubernetes API to talk to (in-cluster or the kubeconfig)")?;
                let builder = kube::client::ClientBuilder::try_from(config)?;
                let client = match record {
                    None => builder.build(),
                    Some(path) => {
                        let layer = barrage_operator::record::RecordLayer::create(&path)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        builder.with_layer(&layer).build()
                    }
                };
                let defaults = barrage_operator::render::Defaults { image };
                let mut outcomes = std::pin::pin!(barrage_operator::controller(client, namespace.as_deref(), defaults));
                while let Some(outcome) = outcomes.next().await {
                    match outcome {
                        Ok(line) => println!("{line}"),
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}
