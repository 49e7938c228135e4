//! Prompts with images and audio, through the CLI: synthetic media made in
//! the dataset plugin, and files a jsonl or csv dataset names under its
//! `media_dir`, sent as content parts to the simulator, which counts each
//! image's and clip's tokens from its header (`docs/simulator.md`). The
//! server's usage is the record's prompt count, so a record's prompt tokens
//! say the media arrived whole and of the size made.

use std::path::Path;
use std::process::Command;

use crate::common::{barrage, records, run};

fn run_config(dir: &Path, name: &str, yaml: &str) -> (i32, Vec<serde_json::Value>, String) {
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(&config, yaml).unwrap();
    let out = dir.join(name);
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--quiet", "--reporter", "json", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out));
    let recs = if out.join("records.jsonl").exists() {
        records(&out)
    } else {
        Vec::new()
    };
    (code, recs, format!("{stdout}\n{stderr}"))
}

/// Synthetic PNG and JPEG images and WAV audio, of the sizes asked: the
/// simulator reads 56 × 84 pixels as 2 × 3 patches of 28, 100 × 60 as 4 × 3,
/// and one second of audio as 25 tokens.
#[test]
fn synthetic_images_and_audio_arrive_with_the_sizes_made() {
    let dir = tempfile::tempdir().unwrap();
    for (format, width, height, per_image) in [("png", 56, 84, 6), ("jpeg", 100, 60, 12)] {
        let (code, recs, out) = run_config(
            dir.path(),
            format,
            &format!(
                "codec: openai-chat\nrequest: {{max_tokens: 4}}\n\
                 dataset:\n  plugin: synthetic\n  cache: false\n  config:\n    count: 6\n    prompt_tokens: 10\n\
                 \x20   images: {{count: 2, width: {width}, height: {height}, format: {format}}}\n\
                 \x20   audio: {{seconds: 1, sample_rate: 8000}}\n\
                 stages:\n  - {{shape: constant, rate: 50, requests: 6}}\n"
            ),
        );
        assert_eq!(code, 0, "{out}");
        assert_eq!(recs.len(), 6);
        for r in &recs {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["prompt_tokens"], 10 + 2 * per_image + 25, "{format}: {r}");
            assert_eq!(r["prompt_tokens_source"], "usage", "{r}");
        }
    }
}

/// A PNG header for `width` × `height` (the simulator reads no further).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b
}

/// Files under `media_dir`, named by jsonl records and csv cells; what
/// cannot be read is refused naming the record's file and line.
#[test]
fn dataset_files_name_images_under_their_media_dir() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("cats")).unwrap();
    std::fs::write(media.join("cats/1.png"), png(280, 56)).unwrap();
    std::fs::write(media.join("2.png"), png(28, 28)).unwrap();
    std::fs::write(
        dir.path().join("p.jsonl"),
        "{\"prompt\": \"what is this\", \"images\": [\"cats/1.png\", \"2.png\"]}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"and this\"}, {\"type\": \"image\", \"path\": \"2.png\"}]}]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.csv"),
        "prompt,image\nwhat is this,cats/1.png|2.png\n",
    )
    .unwrap();
    let yaml = |plugin: &str, file: &str, extra: &str| {
        format!(
            "codec: openai-chat\nrequest: {{max_tokens: 4}}\n\
             dataset: {{plugin: {plugin}, files: [{file}], media_dir: media, cache: false{extra}}}\n\
             stages:\n  - {{shape: constant, rate: 50, requests: 2}}\n"
        )
    };
    let (code, recs, out) = run_config(dir.path(), "jsonl", &yaml("jsonl", "p.jsonl", ""));
    assert_eq!(code, 0, "{out}");
    let mut tokens: Vec<u64> = recs.iter().map(|r| r["prompt_tokens"].as_u64().unwrap()).collect();
    tokens.sort();
    // 10 × 2 patches and 1; 3 words. 1 patch; 2 words.
    assert_eq!(tokens, [3, 3 + 20 + 1], "{out}");
    let (code, recs, out) = run_config(dir.path(), "csv", &yaml("csv", "p.csv", ""));
    assert_eq!(code, 0, "{out}");
    assert!(recs.iter().all(|r| r["prompt_tokens"] == 24), "{recs:?}");

    let bad = [
        (
            "{\"prompt\": \"x\"}\n{\"prompt\": \"x\", \"images\": \"gone.png\"}\n",
            "p.jsonl:2",
            "image `gone.png`: `gone.png`: no such file in media_dir",
        ),
        (
            "{\"prompt\": \"x\", \"images\": \"../p.jsonl.png\"}\n",
            "p.jsonl:1",
            "must be a path inside media_dir",
        ),
        (
            "{\"prompt\": \"x\", \"images\": \"cats/1.png\"}\n",
            "p.jsonl:1",
            "is 33 bytes, more than max_media_mib (0.00001 MiB)",
        ),
    ];
    for (i, (data, at, message)) in bad.iter().enumerate() {
        std::fs::write(dir.path().join("p.jsonl"), data).unwrap();
        let limit = if i == 2 {
            ", config: {max_media_mib: 0.00001}"
        } else {
            ""
        };
        let (code, _, out) = run_config(dir.path(), &format!("bad{i}"), &yaml("jsonl", "p.jsonl", limit));
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(at) && out.contains(message), "{at} {message}: {out}");
    }
    // A link out of the media directory is refused like `..`.
    std::os::unix::fs::symlink(dir.path().join("p.csv"), media.join("out.png")).unwrap();
    std::fs::write(
        dir.path().join("p.jsonl"),
        "{\"prompt\": \"x\", \"images\": \"out.png\"}\n",
    )
    .unwrap();
    let (code, _, out) = run_config(dir.path(), "link", &yaml("jsonl", "p.jsonl", ""));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("leads out of media_dir"), "{out}");
}

/// The PNG the synthetic dataset writes is one zlib and a PNG reader
/// accept: `barrage dataset prepare` writes the samples, Python's zlib
/// checks every chunk's CRC and inflates the image data to its pixels.
#[test]
fn a_synthetic_png_inflates_to_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("samples.jsonl");
    let (code, _, stderr) = run(barrage()
        .args([
            "dataset",
            "prepare",
            "--no-dataset-cache",
            "--dataset",
            "synthetic",
            "--dataset-config",
            r#"{"count": 2, "prompt_tokens": 3, "images": {"width": 300, "height": 200, "format": "png"}}"#,
            "--output",
        ])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let check = r#"
import base64, json, struct, sys, zlib
for line in open(sys.argv[1]):
    part = json.loads(line)["prompt"]["messages"][0]["content"][1]["image"]
    b = base64.b64decode(part["source"]["inline"])
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat = 8, b""
    while i < len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        kind, data = b[i + 4:i + 8], b[i + 8:i + 8 + n]
        assert zlib.crc32(kind + data) == struct.unpack(">I", b[i + 8 + n:i + 12 + n])[0], kind
        if kind == b"IHDR":
            w, h = struct.unpack(">II", data[:8])
        if kind == b"IDAT":
            idat += data
        i += 12 + n
    print(w, h, len(zlib.decompress(idat)))
"#;
    let output = Command::new("python3").args(["-c", check]).arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let want = format!("300 200 {}\n", (300 * 3 + 1) * 200);
    assert_eq!(text, want.repeat(2));
}

/// Every codec that sends images sends them whole, each in its API's
/// shape (a data URL, a base64 block, Bedrock's bytes, Gemini's
/// `inlineData`): the simulator measures each 100 × 60 JPEG as 4 × 3
/// patches from the bytes it received.
#[test]
fn every_image_codec_sends_the_images_whole() {
    let dir = tempfile::tempdir().unwrap();
    for codec in [
        "openai-chat",
        "anthropic-messages",
        "openai-responses",
        "gemini",
        "bedrock-converse",
        "sagemaker",
    ] {
        let (code, recs, out) = run_config(
            dir.path(),
            codec,
            &format!(
                "codec: {codec}\nrequest: {{max_tokens: 4}}\n\
                 dataset:\n  plugin: synthetic\n  config:\n    count: 3\n    prompt_tokens: 10\n\
                 \x20   images: {{count: 2, width: 100, height: 60}}\n\
                 stages:\n  - {{shape: constant, rate: 50, requests: 3}}\n"
            ),
        );
        assert_eq!(code, 0, "{codec}: {out}");
        assert_eq!(recs.len(), 3, "{codec}");
        for r in &recs {
            assert_eq!(r["prompt_tokens"], 10 + 2 * 12, "{codec}: {r}");
            assert_eq!(r["prompt_tokens_source"], "usage", "{codec}: {r}");
        }
    }
}
