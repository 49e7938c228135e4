//! The guest SDK as a plugin author outside this repository gets it: the
//! crate `cargo package` makes, carrying its own copy of the contract.

use std::process::Command;

use crate::common::{barrage, cargo, run, workspace};

const CODEC: &str = r#"
use barrage_sdk::prelude::*;

pub struct Lines;

impl Codec for Lines {
    type Decoder = LineDecoder;

    fn info() -> PluginInfo {
        PluginInfo::new("outside-lines", "0.1.0", "text lines")
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        let Prompt::Text(prompt) = spec.prompt else { return Err("text prompts only".into()) };
        Ok(EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path: "/generate".into(),
                headers: vec![],
                body: prompt.into_bytes(),
            }),
            streaming: true,
            framing: Framing::Ndjson,
            output: OutputKind::Tokens,
            prompt_tokens: None,
        })
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> LineDecoder {
        LineDecoder
    }

    fn decode_unary(_head: ResponseHead, _body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(vec![])
    }
}

pub struct LineDecoder;

impl Decoder for LineDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(frames
            .iter()
            .enumerate()
            .map(|(i, f)| FrameEvent {
                frame: i as u32,
                event: Event::Content(ContentDelta { bytes: f.data.len() as u32, tokens: Some(1), text: None }),
            })
            .collect())
    }
}

barrage_sdk::export_codec!(Lines);
"#;

#[test]
fn the_packaged_sdk_builds_a_codec_outside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let package_target = dir.path().join("package-target");
    let status = cargo()
        .current_dir(workspace())
        .args([
            "package",
            "--quiet",
            "-p",
            "barrage-sdk",
            "--no-verify",
            "--allow-dirty",
            "--target-dir",
        ])
        .arg(&package_target)
        .status()
        .unwrap();
    assert!(status.success(), "cargo package -p barrage-sdk failed");
    let version = env!("CARGO_PKG_VERSION");
    let crate_file = package_target.join(format!("package/barrage-sdk-{version}.crate"));
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&crate_file)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", crate_file.display());
    let sdk = dir.path().join(format!("barrage-sdk-{version}"));
    assert!(sdk.join("wit/codec.wit").exists(), "the crate carries the contract");

    let codec = dir.path().join("outside-codec");
    std::fs::create_dir_all(codec.join("src")).unwrap();
    std::fs::write(
        codec.join("Cargo.toml"),
        format!(
            "[package]\nname = \"outside-codec\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nbarrage-sdk = {{ path = {:?}, features = [\"codec\"] }}\n\n[workspace]\n\n\
             [profile.plugin]\ninherits = \"release\"\nopt-level = 3\ndebug = false\nstrip = true\nlto = true\n\
             codegen-units = 1\npanic = \"abort\"\n",
            sdk.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(codec.join("src/lib.rs"), CODEC).unwrap();
    // The dependencies are the workspace's own, already in cargo's cache;
    // at the workspace's versions (its lock), with its plugin profile and in
    // the test plugins' target directory, what they compiled is reused: a
    // build of its own took a minute of the suite.
    std::fs::copy(workspace().join("Cargo.lock"), codec.join("Cargo.lock")).unwrap();
    let target_dir = workspace().join("target/plugins");
    let wasm = target_dir.join("wasm32-wasip2/plugin/outside_codec.wasm");
    // Built now, not left from an earlier run.
    std::fs::remove_file(&wasm).ok();
    let status = cargo()
        .current_dir(&codec)
        .args([
            "build",
            "--quiet",
            "--offline",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "the codec did not build against the packaged SDK");
    let (code, stdout, stderr) = run(barrage().args(["plugin", "inspect"]).arg(&wasm));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("outside-lines"), "{stdout}");
    assert!(stdout.contains("codec"), "{stdout}");
}
