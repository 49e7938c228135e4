//! Every shipped example parses and validates; examples run as documented.

use crate::common::{barrage, run, workspace};

#[test]
fn every_example_config_is_valid() {
    let dir = workspace().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // examples/data: the dataset examples' input files.
            continue;
        }
        if name.starts_with("sim-") {
            barrage_sim::SimConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        } else {
            let config = barrage_engine::config::RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(sim) = &config.sim {
                sim.validate().unwrap_or_else(|e| panic!("{name}: sim: {e}"));
            }
        }
        seen += 1;
    }
    assert!(seen >= 10, "{seen} examples");
}

#[test]
fn a_shape_example_runs_against_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["constant.yaml", "concurrency.yaml", "ramp.yaml"] {
        let out = dir.path().join(example);
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--duration", "1", "--max-tokens", "4", "--config"])
            .arg(workspace().join("examples").join(example))
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{example}: {stderr}");
        assert!(stdout.contains("results:"), "{stdout}");
        assert!(out.join("summary.json").exists());
    }
}

#[test]
fn every_dataset_example_runs_against_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let mut ran = Vec::new();
    for entry in std::fs::read_dir(workspace().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("dataset-") {
            continue;
        }
        let out = dir.path().join(&name);
        // From another directory: data files are found relative to the config.
        let (code, stdout, stderr) = run(barrage()
            .current_dir(dir.path())
            .args(["run", "--quiet", "--duration", "1", "--config"])
            .arg(&path)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stderr.contains(" samples"), "{name}: {stderr}");
        assert!(stdout.contains("results:"), "{stdout}");
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
        assert!(meta["dataset"]["samples"].as_u64().unwrap() > 0, "{name}");
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert!(s["total"]["succeeded"].as_u64().unwrap() > 0, "{name}: {s}");
        ran.push(meta["dataset"]["plugin"].as_str().unwrap().to_string());
    }
    ran.sort();
    ran.dedup();
    assert_eq!(
        ran,
        [
            "csv",
            "jsonl",
            "multi-turn",
            "shared-prefix",
            "sharegpt",
            "synthetic",
            "trace"
        ]
    );
}

#[test]
fn every_codec_example_runs_against_the_embedded_simulator() {
    // The simulator answers in each codec's protocol, so an example with its
    // target left out runs as written.
    let dir = tempfile::tempdir().unwrap();
    let mut ran = Vec::new();
    for entry in std::fs::read_dir(workspace().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("codec-") {
            continue;
        }
        let out = dir.path().join(&name);
        let (code, stdout, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--duration",
                "1",
                "--rate",
                "20",
                "--max-tokens",
                "4",
                "--config",
            ])
            .arg(&path)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{name}: {stdout}\n{stderr}");
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        // Every arrival sent and answered, but for those a client starved
        // of CPU missed and counted.
        let total = &s["total"];
        let sent = total["sent"].as_u64().unwrap();
        assert_eq!(sent + total["missed"].as_u64().unwrap(), 20, "{name}: {s}");
        assert_eq!(total["succeeded"].as_u64(), Some(sent), "{name}: {s}");
        // Exact counts: four tokens a request, or four vectors of an
        // embeddings batch, four documents ranked or four images made.
        match total["items"].as_u64() {
            Some(items) => assert_eq!(items, 4 * sent, "{name}: {s}"),
            None => assert_eq!(
                total["output_tokens"].as_u64(),
                Some(4 * sent),
                "{name}: exact counts: {s}"
            ),
        }
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
        ran.push(meta["plugin"]["name"].as_str().unwrap().to_string());
    }
    ran.sort();
    ran.dedup();
    assert_eq!(
        ran,
        [
            "anthropic-messages",
            "bedrock-converse",
            "gemini",
            "jetstream",
            "kserve-v2-grpc",
            "kserve-v2-http",
            "openai-embeddings",
            "openai-images",
            "openai-responses",
            "rerank",
            "sagemaker",
            "sglang-native",
            "tgi",
            "vllm-grpc"
        ]
    );
}
