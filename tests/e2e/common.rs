//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf()
}

/// A file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// The test plugins (`tests/plugins/*`) and the SDK example, built for
/// wasm32-wasip2 by cargo, as a plugin author would build them. Cargo makes
/// this a no-op after the first test that asks.
pub fn test_plugin(package: &str) -> PathBuf {
    let ws = workspace();
    let target_dir = ws.join("target/plugins");
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .current_dir(&ws)
        .args([
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .args([
            "-p",
            "loop-forever",
            "-p",
            "memory-hog",
            "-p",
            "wrong-version",
            "-p",
            "ollama-generate",
        ])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the test plugins failed");
    let path = target_dir
        .join("wasm32-wasip2/plugin")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A `barrage` command with a shared compiled-plugin cache and no
/// installed plugins from the machine.
pub fn barrage() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_barrage"));
    cmd.env("BARRAGE_CACHE_DIR", workspace().join("target/test-compiled-cache"));
    cmd.env("BARRAGE_PLUGIN_DIR", workspace().join("target/no-installed-plugins"));
    cmd
}

/// Run `cmd`, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run barrage");
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}
