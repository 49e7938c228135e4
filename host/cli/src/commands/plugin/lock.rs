//! `barrage plugin lock`: write the lockfile that approves a set of
//! plugins (see `barrage_plugin_host::lock`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use barrage_plugin_host::describe::describe;
use barrage_plugin_host::lock::{self, Approved, Lockfile, TrustedKey};
use barrage_plugin_host::{PluginSource, Registry};

use crate::options::PluginOptions;

#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// The plugins to approve: names (built-in or installed), .wasm files,
    /// or oci://REFERENCEs, pulled into the plugin directory and locked at
    /// their pinned digests (default: every built-in and installed plugin).
    plugins: Vec<String>,
    /// The lockfile to write. Keys, signers and limits already in it are
    /// kept for the plugins it lists again.
    #[arg(long, short, value_name = "FILE", default_value = lock::DEFAULT_LOCKFILE)]
    output: PathBuf,
    /// A key plugins may be signed with: NAME=FILE, FILE a minisign public
    /// key (.pub). A plugin whose FILE.wasm.minisig verifies with one of the
    /// keys is locked as signed by it (repeatable).
    #[arg(long = "key", value_name = "NAME=FILE")]
    keys: Vec<String>,
    /// Refuse to lock a plugin (other than a built-in) that no key signed,
    /// and have the lockfile require signatures.
    #[arg(long)]
    require_signatures: bool,
    #[command(flatten)]
    plugins_options: PluginOptions,
}

fn read_key(arg: &str) -> Result<TrustedKey> {
    let (name, file) = arg
        .split_once('=')
        .with_context(|| format!("--key `{arg}`: give NAME=FILE, FILE a minisign public key"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("--key {name}: reading {file}"))?;
    let public_key =
        lock::read_public_key(&text).with_context(|| format!("--key {name}: {file} holds no minisign public key"))?;
    Ok(TrustedKey {
        name: name.to_string(),
        public_key,
        not_after: None,
        revoked: false,
    })
}

pub(crate) fn lock(args: LockArgs) -> Result<ExitCode> {
    if args.plugins_options.locked {
        bail!("--locked: `plugin lock` writes a lockfile; it does not load plugins under one");
    }
    let engine = args.plugins_options.engine()?;
    let registry = args.plugins_options.registry();
    let ctx = args.plugins_options.context("{}".into(), 0)?;
    let previous = match std::fs::read_to_string(&args.output) {
        Ok(text) => Some(lock::Lock::parse(&args.output, &text)?.file().clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.output.display())),
    };
    let mut file = previous.clone().unwrap_or(Lockfile {
        version: lock::LOCKFILE_VERSION,
        ..Lockfile::default()
    });
    file.require_signatures |= args.require_signatures;
    for arg in &args.keys {
        let key = read_key(arg)?;
        file.keys.retain(|k| k.name != key.name);
        file.keys.push(key);
    }
    // Each plugin, and where the lockfile says it comes from.
    let sources: Vec<(PluginSource, String)> = if args.plugins.is_empty() {
        Registry::builtins()
            .filter(|b| !registry.overrides_builtin(&b.label()))
            .chain(registry.installed())
            .map(|s| {
                let location = s.location();
                (s, location)
            })
            .collect()
    } else {
        let mut sources = Vec::new();
        for p in &args.plugins {
            if p.starts_with("oci://") {
                let dir = registry
                    .plugin_dir
                    .clone()
                    .context("no plugin directory to pull into: set BARRAGE_PLUGIN_DIR or --plugin-dir")?;
                let (path, pinned) = super::oci::pull_for_lock(p, &dir)?;
                sources.push((PluginSource::File(path.into()), pinned));
            } else {
                let s = registry.resolve(p)?;
                let location = s.location();
                sources.push((s, location));
            }
        }
        sources
    };
    let mut plugins = Vec::new();
    for (source, location) in &sources {
        let name = source.label();
        let d = describe(&engine, source, ctx.clone()).with_context(|| format!("plugin {name}"))?;
        let info = d.info.map_err(|e| anyhow::anyhow!("plugin {name}: {e}"))?;
        let Some(world) = d.contract.world else {
            bail!("{name} is not a Barrage plugin: it implements no codec, dataset or reporter world");
        };
        let signed_by = match source {
            PluginSource::File(path) => {
                let bytes = source.bytes()?;
                lock::signer(&file.keys, path, &bytes).map_err(|e| anyhow::anyhow!("plugin {name}: {e}"))?
            }
            PluginSource::Builtin { .. } => None,
        };
        let builtin = matches!(source, PluginSource::Builtin { .. });
        if file.require_signatures && !builtin && signed_by.is_none() {
            bail!(
                "plugin {name} is not signed by any key given (its .minisig beside it, checked against --key), \
                 and signatures are required"
            );
        }
        // What a previous lock said of it besides its identity is kept.
        let kept = previous
            .as_ref()
            .and_then(|p| p.plugins.iter().find(|e| e.name == name && e.kind == world.name()));
        plugins.push(Approved {
            name,
            kind: world.name().to_string(),
            version: info.version,
            contract: d.contract.versions.first().cloned().unwrap_or_default(),
            sha256: d.sha256,
            source: location.clone(),
            signed_by,
            memory_mib: kept.and_then(|e| e.memory_mib),
            deadline_ms: kept.and_then(|e| e.deadline_ms),
        });
    }
    // Entries for plugins not locked this time stay.
    for old in previous.iter().flat_map(|p| &p.plugins) {
        if !plugins.iter().any(|p| p.name == old.name && p.kind == old.kind) {
            plugins.push(old.clone());
        }
    }
    plugins.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    file.plugins = plugins;
    let text = lock::render(&file);
    // What is written must read back: a lockfile nobody can use is no lock.
    lock::Lock::parse(&args.output, &text)?;
    std::fs::write(&args.output, &text).with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "{:<22} {:<9} {:<9} {:<12} SHA256",
        "NAME", "KIND", "VERSION", "SIGNED BY"
    );
    for p in &file.plugins {
        println!(
            "{:<22} {:<9} {:<9} {:<12} {}",
            p.name,
            p.kind,
            p.version,
            p.signed_by.as_deref().unwrap_or("-"),
            p.sha256
        );
    }
    println!(
        "wrote {} ({} plugins, {} keys)",
        args.output.display(),
        file.plugins.len(),
        file.keys.len()
    );
    Ok(ExitCode::SUCCESS)
}
