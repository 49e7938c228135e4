//! `barrage plugin list | inspect | decode | new | lock | push | pull |
//! test | record`; the bigger subcommands have files of their own.

mod lock;
mod new;
mod oci;
mod test;

pub(crate) use lock::lock;
pub(crate) use new::new;
pub(crate) use oci::{pull, push};
pub(crate) use test::{record, test};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use barrage_core::body::ResponseSink;
use barrage_core::framing::Framing;
use barrage_core::types::{DecodeOptions, ResponseHead};
use barrage_engine::metrics::{MalformedFrames, Status, Verdict};
use barrage_plugin_host::describe::{Description, describe};
use barrage_plugin_host::stream::DecodeSink;
use barrage_plugin_host::{CodecPlugin, CodecWorkers, Registry, contract};

use crate::options::{PluginOptions, read_plugin_config};

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// List built-in and installed plugins with kind, version and sha256.
    List(ListArgs),
    /// Show a plugin file's world, contract version, imports and exports.
    Inspect(InspectArgs),
    /// Decode recorded response bodies with a codec, one file per response,
    /// through the same framing and plugin threads a run uses.
    Decode(DecodeArgs),
    /// Make a plugin project (Rust, Python or JavaScript; a codec, dataset
    /// or reporter) that builds and passes its own tests as generated.
    New(new::NewArgs),
    /// Write a lockfile approving a set of plugins (by name, sha256 and
    /// signer), for runs with --locked.
    Lock(lock::LockArgs),
    /// Push a plugin to an OCI registry (the Wasm OCI layout; its signature
    /// travels with it).
    Push(oci::PushArgs),
    /// Pull a plugin from an OCI registry into the plugin directory, or
    /// every registry plugin a lockfile lists.
    Pull(oci::PullArgs),
    /// Check a plugin before anyone relies on it: the conformance kit for
    /// its world (a table; --junit for CI; exit 1 when a check fails).
    Test(test::TestArgs),
    /// Record golden transcripts of a codec against a server (or the
    /// simulator), for `plugin test`.
    Record(test::RecordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The plugin: a .wasm file, or the name of a built-in or installed plugin.
    plugin: String,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The codec: a built-in or installed name, or a .wasm file.
    #[arg(long)]
    codec: String,
    /// The codec's configuration: a JSON object, or @FILE with JSON or TOML.
    #[arg(long, value_name = "JSON|@FILE")]
    codec_config: Option<String>,
    /// How the bodies are framed: sse, ndjson, raw or grpc.
    #[arg(long, default_value = "sse")]
    framing: Framing,
    /// Include the text of content and reasoning deltas.
    #[arg(long)]
    text: bool,
    /// Feed each body to the framer in reads of this many bytes, as a socket would.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    read_size: usize,
    /// Plugin threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// What a frame the codec cannot parse does, as in `run`: fail the
    /// response, or count it and judge the response on the rest.
    #[arg(long, value_name = "WHAT", default_value = "fail")]
    malformed_frames: MalformedFrames,
    /// Most MiB in one frame, as in `run`: a response with a longer one is `too_large`.
    #[arg(long, value_name = "MIB", default_value_t = (barrage_core::framing::DEFAULT_MAX_FRAME >> 20) as f64)]
    max_frame_mib: f64,
    /// Recorded response bodies, one response per file.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    plugins: PluginOptions,
}

pub(crate) fn list(args: ListArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let registry = args.plugins.registry();
    let ctx = args.plugins.context("{}".into(), 0)?;
    println!(
        "{:<22} {:<9} {:<9} {:<9} {:<64} SOURCE",
        "NAME", "KIND", "VERSION", "CONTRACT", "SHA256"
    );
    let sources = Registry::builtins().chain(registry.installed());
    for source in sources {
        let overridden = matches!(source, barrage_plugin_host::PluginSource::Builtin { name, .. } if registry.overrides_builtin(name));
        let mut location = source.location();
        if overridden {
            location.push_str(" (overridden by the installed plugin)");
        }
        match describe(&engine, &source, ctx.clone()) {
            Ok(d) => {
                // The name `--codec` (and every message) knows it by.
                let name = source.label();
                let version = d.info.as_ref().map_or("?".into(), |info| info.version.clone());
                let kind = d.contract.world.map(|w| w.name()).unwrap_or("?");
                let contract = d.contract.versions.join(",");
                println!(
                    "{name:<22} {kind:<9} {version:<9} {contract:<9} {:<64} {location}",
                    d.sha256
                );
                match &d.info {
                    Err(e) => println!("  ! {e}"),
                    Ok(info) if info.name != name => println!(
                        "  note: it calls itself '{}'; it is picked (--codec, --dataset, --reporter) \
                         and named in messages by its file name, '{name}'",
                        info.name
                    ),
                    Ok(_) => {}
                }
            }
            Err(e) => println!(
                "{:<22} {:<9} {:<9} {:<9} {:<64} {location}\n  ! {e}",
                source.label(),
                "?",
                "?",
                "?",
                "?"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let source = args.plugins.registry().resolve(&args.plugin)?;
    let ctx = args.plugins.context("{}".into(), 0)?;
    let d: Description = describe(&engine, &source, ctx)?;
    println!("plugin:    {}", source.location());
    println!("size:      {} bytes", d.size);
    println!("sha256:    {}", d.sha256);
    println!(
        "world:     {}",
        d.contract
            .world
            .map(|w| w.name())
            .unwrap_or("none (not a Barrage plugin)")
    );
    let versions = if d.contract.versions.is_empty() {
        "none".to_string()
    } else {
        d.contract.versions.join(", ")
    };
    println!("contract:  {} {versions}", contract::PACKAGE);
    match d.contract.supported_version() {
        Ok(_) => println!("supported: yes (this host supports {})", contract::supported_list()),
        Err(found) => println!(
            "supported: no: it targets {found}; this host supports {}",
            contract::supported_list()
        ),
    }
    match &d.info {
        Ok(info) => {
            println!("name:      {}", info.name);
            println!("version:   {}", info.version);
            println!("about:     {}", info.description);
            for s in &info.secrets {
                let need = if s.required { "required" } else { "optional" };
                println!("secret:    {} ({need}): {}", s.name, s.description);
            }
        }
        Err(e) => println!("info:      unavailable: {e}"),
    }
    println!("imports:");
    let mut traps = 0;
    for i in &d.contract.imports {
        let note = if i.starts_with(contract::PACKAGE) {
            String::new()
        } else if let Some(stub) = barrage_plugin_host::sandbox::stub(i) {
            format!("  (stub: {stub})")
        } else {
            traps += 1;
            "  (not provided: traps if called)".to_string()
        };
        println!("  {i}{note}");
    }
    if traps > 0 {
        println!(
            "  ({traps} imports neither in the contract nor WASI 0.2: each is a trap that fails only the call \
             that reaches it.)"
        );
    }
    println!("exports:");
    for e in &d.contract.exports {
        println!("  {e}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn decode(args: DecodeArgs) -> Result<ExitCode> {
    if args.read_size == 0 {
        bail!("--read-size must be at least 1");
    }
    let engine = args.plugins.engine()?;
    let source = args
        .plugins
        .registry()
        .resolve_in(barrage_plugin_host::World::Codec, &args.codec)?;
    let config = read_plugin_config(args.codec_config.as_deref(), "--codec-config")?;
    let ctx = args.plugins.context(config, 0)?;
    let plugin = CodecPlugin::load(&engine, &source, ctx)?;
    let workers = CodecWorkers::start(plugin.clone(), args.threads).context("starting plugin threads")?;
    let options = DecodeOptions { want_text: args.text };
    let Some(max_frame) = barrage_engine::config::max_frame_bytes(args.max_frame_mib) else {
        bail!(
            "--max-frame-mib {} is out of range: from {} (1 KiB) to {}",
            args.max_frame_mib,
            barrage_engine::config::MIN_FRAME_MIB,
            barrage_engine::config::MAX_FRAME_MIB
        );
    };

    // Every response is opened first and fed interleaved, as concurrent
    // responses arrive, so one failing stream visibly leaves the others be;
    // each goes through the same sink a run reads responses into.
    let mut bodies = Vec::new();
    for path in &args.files {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut sink = DecodeSink::stream(&workers, args.framing, options).max_frame(max_frame);
        sink.head(ResponseHead {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
        });
        bodies.push((path, body, sink));
    }
    let longest = bodies.iter().map(|b| b.1.len()).max().unwrap_or(0);
    let mut offset = 0;
    while offset < longest {
        for (_, body, sink) in &mut bodies {
            if offset < body.len() && sink.refused().is_none() {
                let end = (offset + args.read_size).min(body.len());
                sink.data(&body[offset..end], Instant::now());
                sink.read_done();
            }
        }
        offset += args.read_size;
    }
    let mut failed = 0;
    let mut by_kind = std::collections::BTreeMap::new();
    let responses = bodies.len();
    for (path, _, sink) in bodies {
        let refused = sink.refused();
        let outcome = match refused {
            Some(_) => sink.cut(Instant::now()),
            None => sink.end(Instant::now()),
        }
        .blocking_outcome();
        println!("# {}", path.display());
        for e in &outcome.events {
            println!("{} {}", e.frame, e.event);
        }
        if let Some(r) = refused {
            failed += 1;
            *by_kind.entry(Status::TooLarge.name().to_string()).or_insert(0) += 1;
            println!(
                "{}: {r}, past --max-frame-mib {}; the rest was not read",
                Status::TooLarge.name(),
                args.max_frame_mib
            );
            continue;
        }
        // Judged as a run judges a complete 200 response, so a stream `run`
        // would count as truncated or malformed is not called ok here.
        let verdict = Verdict::of(&outcome);
        let counts = format!("{} frames, {} events", outcome.frames, outcome.events.len());
        match (
            &outcome.failure,
            verdict.judge(Some(200), &outcome, args.malformed_frames),
        ) {
            (Some(f), _) => {
                failed += 1;
                *by_kind.entry(format!("plugin {}", f.kind)).or_insert(0) += 1;
                println!("failed: {f}");
            }
            (None, (Status::Ok, _)) => match verdict.malformed_frames {
                0 => println!("ok: {counts}"),
                n => println!("ok: {counts} ({n} malformed frames counted and skipped)"),
            },
            (None, (status, why)) => {
                failed += 1;
                *by_kind.entry(status.name().to_string()).or_insert(0) += 1;
                println!("{}: {counts}: {}", status.name(), why.unwrap_or_default());
            }
        }
    }
    let summary: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "{} responses: {} decoded, {} failed{}",
        responses,
        responses - failed,
        failed,
        if summary.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.join(", "))
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
