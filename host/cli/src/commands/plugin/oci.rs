//! `barrage plugin push` and `pull`: plugins as OCI artifacts in a
//! registry (see `barrage_oci`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use barrage_oci::{PluginFacts, RegistryOptions};
use barrage_plugin_host::describe::describe;
use barrage_plugin_host::lock;

use crate::commands::run::runtime;
use crate::options::PluginOptions;

/// How to reach the registry.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Speak plain HTTP, not HTTPS, to the registry (loopback registries
    /// always get plain HTTP). Credentials, if any, come from
    /// BARRAGE_REGISTRY_USERNAME and BARRAGE_REGISTRY_PASSWORD.
    #[arg(long)]
    plain_http: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The plugin: a .wasm file.
    file: PathBuf,
    /// Where: REGISTRY/REPOSITORY[:TAG], e.g. registry.example/plugins/my-codec:1.0.
    reference: String,
    /// Its minisign signature (default: FILE.minisig beside it, if there is one).
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// What: REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]. Without one, every
    /// plugin the lockfile (--lockfile, default barrage.lock) lists from a
    /// registry, at its pinned digest.
    reference: Option<String>,
    /// Where the plugin goes (default: the plugin directory, where runs
    /// find installed plugins by name).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// The name it is installed under (default: the artifact's title, or
    /// the repository's last segment).
    #[arg(long)]
    name: Option<String>,
    /// The largest component taken, MiB.
    #[arg(long, value_name = "MIB", default_value_t = barrage_oci::DEFAULT_MAX_LAYER >> 20)]
    max_size_mib: u64,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

pub(crate) fn push(args: PushArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let source = barrage_plugin_host::PluginSource::File(args.file.clone().into());
    let d = describe(&engine, &source, args.plugins.context("{}".into(), 0)?)
        .with_context(|| format!("plugin {}", args.file.display()))?;
    let info = d.info.map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let Some(world) = d.contract.world else {
        bail!(
            "{} is not a Barrage plugin: it implements no codec, dataset or reporter world",
            args.file.display()
        );
    };
    let signature_file = args.signature.clone().or_else(|| {
        let beside = lock::signature_path(&args.file);
        beside.exists().then_some(beside)
    });
    let signature = signature_file
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading the signature {}", p.display())))
        .transpose()?;
    let facts = PluginFacts {
        name: source.label(),
        version: info.version,
        kind: world.name().to_string(),
        contract: d.contract.versions.first().cloned().unwrap_or_default(),
        imports: d.contract.imports.clone(),
        exports: d.contract.exports.clone(),
    };
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let options = RegistryOptions::from_env(args.registry.plain_http);
    let pushed = runtime()?.block_on(barrage_oci::push(&options, &args.reference, bytes, signature, &facts))?;
    println!(
        "pushed {} ({} {}, {})",
        args.reference, facts.kind, facts.name, pushed.layer_digest
    );
    if let Some(sig) = signature_file {
        println!("  with its signature {}", sig.display());
    }
    println!("pinned: oci://{}", pushed.pinned);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn pull(args: PullArgs) -> Result<ExitCode> {
    let dir = match &args.output_dir {
        Some(d) => d.clone(),
        None => args
            .plugins
            .registry()
            .plugin_dir
            .context("no plugin directory: give --output-dir, or set BARRAGE_PLUGIN_DIR (or HOME)")?,
    };
    let options = RegistryOptions::from_env(args.registry.plain_http);
    let limit = args.max_size_mib << 20;
    let rt = runtime()?;
    match &args.reference {
        Some(reference) => {
            let pulled = rt.block_on(barrage_oci::pull(
                &options,
                reference,
                &dir,
                args.name.as_deref(),
                limit,
            ))?;
            say_pulled(&pulled);
        }
        None => {
            if args.name.is_some() {
                bail!("--name names one plugin: give its reference too");
            }
            let lockfile = args
                .plugins
                .lockfile
                .clone()
                .unwrap_or_else(|| PathBuf::from(lock::DEFAULT_LOCKFILE));
            let lock = lock::Lock::read(&lockfile)?;
            let listed: Vec<_> = lock
                .file()
                .plugins
                .iter()
                .filter(|p| p.source.starts_with("oci://"))
                .collect();
            if listed.is_empty() {
                bail!(
                    "{} lists no plugin from a registry (a source oci://...)",
                    lockfile.display()
                );
            }
            for entry in listed {
                let pulled = rt.block_on(barrage_oci::pull(
                    &options,
                    &entry.source,
                    &dir,
                    Some(&entry.name),
                    limit,
                ))?;
                // The lockfile approves bytes, not references: what came is checked now.
                if pulled.layer_digest != format!("sha256:{}", entry.sha256) {
                    let _ = std::fs::remove_file(&pulled.path);
                    bail!(
                        "{}: the registry sent a component with {}, but {} approves {} only as sha256:{}; it was removed",
                        entry.source,
                        pulled.layer_digest,
                        lockfile.display(),
                        entry.name,
                        entry.sha256
                    );
                }
                say_pulled(&pulled);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn say_pulled(pulled: &barrage_oci::Pulled) {
    println!(
        "pulled oci://{} to {} ({})",
        pulled.pinned,
        pulled.path.display(),
        pulled.layer_digest
    );
    if let Some(sig) = &pulled.signature {
        println!("  with its signature {}", sig.display());
    }
}

/// Pull `reference` into `dir` for `plugin lock`: the component's path and
/// its digest-pinned reference.
pub(crate) fn pull_for_lock(reference: &str, dir: &Path) -> Result<(PathBuf, String)> {
    let options = RegistryOptions::from_env(false);
    let pulled = runtime()?.block_on(barrage_oci::pull(
        &options,
        reference,
        dir,
        None,
        barrage_oci::DEFAULT_MAX_LAYER,
    ))?;
    Ok((pulled.path, format!("oci://{}", pulled.pinned)))
}
