//! Builds the first-party plugins in `plugins/` for `wasm32-wasip2` and embeds
//! them in the `barrage` binary (see `src/registry.rs`).
//!
//! A nested `cargo build` compiles them with the workspace's `plugin` profile
//! into `target/plugins`, a target directory of their own so it never waits on
//! the lock of the build that runs this script.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// First-party plugins embedded in the binary: (cargo package, plugin name, world).
/// Names are unique per world: `csv` is both a reporter and a dataset.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("openai-completions", "openai-completions", "codec"),
    ("openai-chat", "openai-chat", "codec"),
    ("tgi", "tgi", "codec"),
    ("sglang-native", "sglang-native", "codec"),
    ("kserve-v2-http", "kserve-v2-http", "codec"),
    ("kserve-v2-grpc", "kserve-v2-grpc", "codec"),
    ("vllm-grpc", "vllm-grpc", "codec"),
    ("jetstream", "jetstream", "codec"),
    ("openai-embeddings", "openai-embeddings", "codec"),
    ("rerank", "rerank", "codec"),
    ("anthropic-messages", "anthropic-messages", "codec"),
    ("openai-responses", "openai-responses", "codec"),
    ("gemini", "gemini", "codec"),
    ("openai-images", "openai-images", "codec"),
    ("bedrock-converse", "bedrock-converse", "codec"),
    ("sagemaker", "sagemaker", "codec"),
    ("report-json", "json", "reporter"),
    ("report-csv", "csv", "reporter"),
    ("report-markdown", "markdown", "reporter"),
    ("report-html", "html", "reporter"),
    ("dataset-synthetic", "synthetic", "dataset"),
    ("dataset-sharegpt", "sharegpt", "dataset"),
    ("dataset-jsonl", "jsonl", "dataset"),
    ("dataset-csv", "csv", "dataset"),
    ("dataset-shared-prefix", "shared-prefix", "dataset"),
    ("dataset-multi-turn", "multi-turn", "dataset"),
    ("dataset-trace", "trace", "dataset"),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/plugin-host/ sits in the workspace")
        .to_path_buf();
    for dir in ["plugins", "protos", "sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let wasm_dir = build_plugins(&workspace);

    let mut generated = String::from(
        "/// First-party plugins: (name, world, component bytes).\npub static BUILTIN: &[(&str, &str, &[u8])] = &[\n",
    );
    for (package, name, world) in BUILTIN {
        let file = format!("{}.wasm", package.replace('-', "_"));
        let src = wasm_dir.join(&file);
        let dst = out_dir.join(&file);
        std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("plugin {name} was not built at {}: {e}", src.display()));
        writeln!(
            generated,
            "    ({name:?}, {world:?}, include_bytes!({:?})),",
            dst.display().to_string()
        )
        .unwrap();
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), generated).expect("write builtin_plugins.rs");
}

fn build_plugins(workspace: &Path) -> PathBuf {
    check_target_installed();
    let target_dir = workspace.join("target").join("plugins");
    // One cargo invocation per world: features unify within an invocation,
    // and a plugin built with another world's SDK feature switched on would
    // carry that world's bindings too, which makes it no valid component.
    for world in ["codec", "dataset", "reporter"] {
        let packages = BUILTIN.iter().filter(|(_, _, w)| *w == world).map(|(p, _, _)| *p);
        build_wasm(workspace, &target_dir, packages);
    }
    target_dir.join(TARGET).join("plugin")
}

fn build_wasm<'a>(workspace: &Path, target_dir: &Path, packages: impl Iterator<Item = &'a str>) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--locked",
            "--profile",
            "plugin",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers (coverage, a host-only
    // RUSTFLAGS) are not meant for the wasm build. Clippy's is: linted
    // as they are built, the plugins need no `cargo clippy` of their own,
    // whose check build of every wasm dependency took a minute and a half
    // of CI (.ci/run).
    if !lints_only(env::var_os("RUSTC_WORKSPACE_WRAPPER").as_deref()) {
        cmd.env_remove("RUSTC_WORKSPACE_WRAPPER");
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the wasm plugins");
    if !status.success() {
        panic!("building the first-party plugins for {TARGET} failed (see the cargo output above)");
    }
}

/// Whether `wrapper` is clippy-driver, which lints and builds exactly as
/// rustc does.
fn lints_only(wrapper: Option<&std::ffi::OsStr>) -> bool {
    wrapper
        .and_then(|w| Path::new(w).file_stem())
        .is_some_and(|name| name == "clippy-driver")
}

/// Stop with the fix in the message, not with a wall of `can't find crate for std`.
fn check_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        panic!(
            "\n\nThe Rust target {TARGET} is not installed; Barrage's built-in plugins are compiled for it.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}
