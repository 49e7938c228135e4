//! Datasets through the CLI: each first-party dataset plugin prepared by the
//! real plugin host (`barrage dataset prepare`) and sent by `barrage run`
//! against a real simulator.

use std::path::{Path, PathBuf};

use crate::common::{SimProcess, barrage, metric, records, run, summary, workspace};

/// A byte-level BPE `tokenizer.json` trained here on the synthetic
/// dataset's corpus, with a ChatML `tokenizer_config.json` beside it.
fn trained_tokenizer(dir: &Path) -> PathBuf {
    use tokenizers::models::bpe::{BPE, BpeTrainer};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, Tokenizer};
    let corpus = workspace().join("plugins/dataset-common/src/corpus.txt");
    let mut trainer: tokenizers::models::TrainerWrapper = BpeTrainer::builder()
        .vocab_size(800)
        .min_frequency(1)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![
            AddedToken::from("<|im_start|>", true),
            AddedToken::from("<|im_end|>", true),
        ])
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default()));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer
        .train_from_files(&mut trainer, vec![corpus.display().to_string()])
        .expect("train a tokenizer");
    let path = dir.join("tokenizer.json");
    tokenizer.save(&path, false).expect("save tokenizer.json");
    let template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::json!({"chat_template": template, "eos_token": "<|im_end|>"}).to_string(),
    )
    .unwrap();
    path
}

/// `barrage dataset prepare` with `args`; returns the samples written.
fn prepare(dir: &Path, args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let out = dir.join(format!("samples-{}.jsonl", rand_suffix()));
    let (code, stdout, stderr) = run(barrage()
        .args(["dataset", "prepare"])
        .args(args)
        .arg("--output")
        .arg(&out));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let samples = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (samples, stderr)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn text(sample: &serde_json::Value) -> String {
    sample["prompt"]["text"].as_str().expect("a text prompt").to_string()
}

#[test]
fn synthetic_prompts_have_the_asked_lengths_with_a_real_tokenizer_and_seeds_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    let tok = trained_tokenizer(dir.path());
    let tok_arg = tok.to_str().unwrap();
    let config = r#"{"count": 300, "prompt_tokens": {"dist": "normal", "mean": 200, "stddev": 40, "min": 20}, "output_tokens": {"dist": "uniform", "min": 10, "max": 30}}"#;
    let args = [
        "--dataset",
        "synthetic",
        "--dataset-config",
        config,
        "--tokenizer",
        tok_arg,
        "--seed",
        "5",
    ];
    let (a, stderr) = prepare(dir.path(), &args);
    assert!(stderr.contains("synthetic: 300 samples"), "{stderr}");
    let t = barrage_plugin_host::tokenizer::load(tok_arg).unwrap();
    assert!(t.exact());
    let lens: Vec<f64> = a
        .iter()
        .map(|s| {
            let n = t.count(&text(s));
            assert_eq!(Some(n as u64), s["prompt_tokens"].as_u64(), "prompt {:?}", text(s));
            n as f64
        })
        .collect();
    let mean = lens.iter().sum::<f64>() / lens.len() as f64;
    let sd = (lens.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / lens.len() as f64).sqrt();
    assert!(
        (mean - 200.0).abs() < 8.0 && (sd - 40.0).abs() < 8.0,
        "mean {mean} sd {sd}"
    );
    assert!(
        a.iter()
            .all(|s| (10..=30).contains(&s["output_tokens"].as_u64().unwrap()))
    );
    // Real words, not a repeated token.
    assert!(
        text(&a[0])
            .split_whitespace()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 20
    );

    // The same seed gives the same prompts (from the cache this time); another seed others.
    let (b, stderr) = prepare(dir.path(), &args);
    assert!(stderr.contains("(from cache)"), "{stderr}");
    assert_eq!(a, b);
    let (c, stderr) = prepare(
        dir.path(),
        &[
            "--dataset",
            "synthetic",
            "--dataset-config",
            config,
            "--tokenizer",
            tok_arg,
            "--seed",
            "5",
            "--no-dataset-cache",
        ],
    );
    assert!(!stderr.contains("from cache"), "{stderr}");
    assert_eq!(a, c, "prepared afresh, the same seed gives the same samples");
    let (d, _) = prepare(
        dir.path(),
        &[
            "--dataset",
            "synthetic",
            "--dataset-config",
            config,
            "--tokenizer",
            tok_arg,
            "--seed",
            "6",
        ],
    );
    assert_ne!(a, d);
}

#[test]
fn a_chat_template_counts_and_renders_chat_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let tok = trained_tokenizer(dir.path());
    let data = workspace().join("examples/data/sharegpt-small.json");
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        format!(
            "tokenizer: {}\ndataset:\n  plugin: sharegpt\n  files: [{}]\n  chat_template: auto\n  apply_chat_template: true\n",
            tok.display(),
            data.display()
        ),
    )
    .unwrap();
    let (samples, _) = prepare(dir.path(), &["--config", config.to_str().unwrap()]);
    let t = barrage_plugin_host::tokenizer::load(tok.to_str().unwrap()).unwrap();
    assert_eq!(samples.len(), 10);
    for s in &samples {
        let text = text(s);
        assert!(
            text.starts_with("<|im_start|>user\n") && text.ends_with("<|im_start|>assistant\n"),
            "{text:?}"
        );
        assert_eq!(Some(t.count(&text) as u64), s["prompt_tokens"].as_u64());
    }
    // The special tokens count as one token each.
    assert_eq!(t.count("<|im_start|><|im_end|>"), 2);
    // A template that does not parse is refused up front, naming the problem.
    std::fs::write(dir.path().join("bad.jinja"), "{% for m in messages %}").unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["dataset", "prepare", "--dataset", "sharegpt", "--dataset-file"])
        .arg(&data)
        .arg("--config")
        .arg({
            let c = dir.path().join("bad.yaml");
            std::fs::write(&c, "dataset:\n  plugin: sharegpt\n  chat_template: bad.jinja\n").unwrap();
            c
        }));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("chat template") && stderr.contains("does not parse"),
        "{stderr}"
    );
}

#[test]
fn sharegpt_runs_with_each_samples_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "2", "--itl-ms", "1"]);
    let data = workspace().join("examples/data/sharegpt-small.json");
    let (samples, _) = prepare(
        dir.path(),
        &["--dataset", "sharegpt", "--dataset-file", data.to_str().unwrap()],
    );
    let out = dir.path().join("run");
    let (code, _, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--rate",
            "50",
            "--requests",
            "20",
            "--dataset",
            "sharegpt",
            "--dataset-file",
        ])
        .arg(&data)
        .args(["--target", &format!("http://{}", sim.addr), "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let recs = records(&out);
    assert_eq!(recs.len(), 20);
    for r in &recs {
        let s = &samples[r["sample"].as_u64().unwrap() as usize];
        // The simulator counts words, the run's default tokenizer too.
        assert_eq!(r["prompt_tokens"], s["prompt_tokens"], "{r}");
        assert_eq!(r["output_tokens"], s["output_tokens"], "{r}");
    }
    // Twenty requests cycle through the ten samples twice.
    let mut ids: Vec<u64> = recs.iter().map(|r| r["sample"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..10).flat_map(|i| [i, i]).collect::<Vec<_>>());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["dataset"]["plugin"], "sharegpt");
    assert_eq!(meta["dataset"]["samples"], 10);
}

#[test]
fn custom_files_report_bad_lines_or_skip_them() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("p.jsonl");
    std::fs::write(
        &jsonl,
        "{\"prompt\": \"a b c\", \"output_tokens\": 4}\n{\"prompt\": 12}\n{\"messages\": []}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["dataset", "prepare", "--dataset", "jsonl", "--dataset-file"])
        .arg(&jsonl));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("p.jsonl:2:") && stderr.contains("invalid type"),
        "{stderr}"
    );
    let (samples, stderr) = prepare(
        dir.path(),
        &[
            "--dataset",
            "jsonl",
            "--dataset-file",
            jsonl.to_str().unwrap(),
            "--dataset-config",
            r#"{"on_error": "skip"}"#,
        ],
    );
    assert_eq!(samples.len(), 1);
    assert!(
        stderr.contains("2 input records skipped") && stderr.contains("p.jsonl:3: `messages` is empty"),
        "{stderr}"
    );

    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "prompt,output_tokens\nhello there,3\n\"unclosed, 4\n").unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["dataset", "prepare", "--dataset", "csv", "--dataset-file"])
        .arg(&csv));
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("p.csv:3"), "{stderr}");
    let (code, _, stderr) = run(barrage()
        .args(["dataset", "prepare", "--dataset", "csv", "--dataset-file"])
        .arg(dir.path().join("missing.csv")));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("missing.csv") && stderr.contains("no such file"),
        "{stderr}"
    );
    let (code, _, stderr) = run(barrage().args([
        "dataset",
        "prepare",
        "--dataset",
        "csv",
        "--dataset-config",
        r#"{"delimeter": ";"}"#,
    ]));
    assert_ne!(code, 0);
    assert!(stderr.contains("delimeter"), "{stderr}");

    // Per-request fields reach the server: the example's rows through `barrage run`.
    let sim = SimProcess::start(&["--mode", "zero"]);
    let out = dir.path().join("run");
    let (code, _, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--rate",
            "100",
            "--requests",
            "4",
            "--codec",
            "openai-completions",
            "--dataset",
            "csv",
            "--dataset-file",
        ])
        .arg(workspace().join("examples/data/prompts.csv"))
        .args(["--target", &format!("http://{}", sim.addr), "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let mut outs: Vec<u64> = records(&out)
        .iter()
        .map(|r| r["output_tokens"].as_u64().unwrap())
        .collect();
    outs.sort();
    assert_eq!(outs, vec![10, 12, 24, 40]);
}

#[test]
fn shared_prefix_groups_hit_the_prefix_cache() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::from_yaml(dir.path(), "mode: batching\nseed: 1\n");
    let run_with = |ratio: f64, name: &str| {
        let out = dir.path().join(name);
        let config = format!(
            r#"{{"groups": 2, "prompts_per_group": 10, "prompt_tokens": 600, "share_ratio": {ratio}, "output_tokens": 4}}"#
        );
        let before = metric(&sim.metrics(), "vllm:prefix_cache_hits_total", &[]);
        let (code, _, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--rate",
                "20",
                "--requests",
                "20",
                "--dataset",
                "shared-prefix",
                "--dataset-config",
                &config,
            ])
            .args(["--target", &format!("http://{}", sim.addr), "--output"])
            .arg(&out));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            records(&out).iter().all(|r| r["prompt_tokens"] == 600),
            "every prompt is 600 tokens"
        );
        metric(&sim.metrics(), "vllm:prefix_cache_hits_total", &[]) - before
    };
    let shared = run_with(0.9, "shared");
    let unshared = run_with(0.0, "unshared");
    // 18 of 20 requests find their group's 540-token prefix (less the partial last block).
    assert!(shared >= 18.0 * 400.0, "hits with 90% shared: {shared}");
    assert!(unshared < shared / 10.0, "hits with nothing shared: {unshared}");
}

#[test]
fn multi_turn_sessions_send_turns_in_order_after_think_time() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "5", "--itl-ms", "2"]);
    let out = dir.path().join("run");
    let config = r#"{"sessions": 6, "turns": 3, "user_tokens": 10, "assistant_tokens": 6, "think_time_ms": 150}"#;
    let (code, _, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--rate",
            "20",
            "--requests",
            "6",
            "--dataset",
            "multi-turn",
            "--dataset-config",
            config,
        ])
        .args(["--target", &format!("http://{}", sim.addr), "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let recs = records(&out);
    assert_eq!(recs.len(), 18, "6 sessions of 3 turns");
    let s = summary(&out);
    assert_eq!(s["stages"][0]["scheduled"], 18);
    assert_eq!(s["stages"][0]["sent"], 18);
    for session in 0..6u64 {
        let mut turns: Vec<&serde_json::Value> = recs.iter().filter(|r| r["session"] == session).collect();
        turns.sort_by(|a, b| a["sent_ms"].as_f64().partial_cmp(&b["sent_ms"].as_f64()).unwrap());
        assert_eq!(turns.len(), 3);
        for (k, pair) in turns.windows(2).enumerate() {
            let gap = pair[1]["sent_ms"].as_f64().unwrap() - pair[0]["end_ms"].as_f64().unwrap();
            assert!(
                (149.0..200.0).contains(&gap),
                "session {session} turn {}: think gap {gap} ms",
                k + 1
            );
            // The history grows: the earlier prompt and answer are resent.
            assert_eq!(
                pair[1]["prompt_tokens"].as_u64().unwrap(),
                pair[0]["prompt_tokens"].as_u64().unwrap() + 6 + 10,
                "session {session}"
            );
        }
    }
}

/// Replay `file` with the trace dataset; returns the records sorted by send time and the samples.
fn replay(dir: &Path, file: &Path, config: &str, sim: &SimProcess) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let (samples, _) = prepare(
        dir,
        &[
            "--dataset",
            "trace",
            "--dataset-file",
            file.to_str().unwrap(),
            "--dataset-config",
            config,
        ],
    );
    let run_config = dir.join(format!("trace-{}.yaml", rand_suffix()));
    std::fs::write(
        &run_config,
        format!(
            "target: http://{}\ndataset:\n  plugin: trace\n  files: [{}]\n  config: {config}\nstages:\n  - shape: trace\n",
            sim.addr,
            file.display()
        ),
    )
    .unwrap();
    let out = dir.join(format!("run-{}", rand_suffix()));
    let (code, _, stderr) = run(barrage()
        .args(["run", "--quiet", "--config"])
        .arg(&run_config)
        .arg("--output")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let mut recs = records(&out);
    recs.sort_by(|a, b| a["sent_ms"].as_f64().partial_cmp(&b["sent_ms"].as_f64()).unwrap());
    (recs, samples)
}

/// Each request was scheduled at its sample's time after the first one, and
/// went out then: the first of each group of simultaneous arrivals within a
/// few ms (the rest of a burst goes out right behind it).
fn assert_sent_at_trace_times(recs: &[serde_json::Value], samples: &[serde_json::Value]) {
    assert_eq!(recs.len(), samples.len());
    let t0 = recs[0]["scheduled_ms"].as_f64().unwrap();
    let mut first_lag: std::collections::BTreeMap<u64, f64> = Default::default();
    for r in recs {
        let s = &samples[r["sample"].as_u64().unwrap() as usize];
        let at = s["at_ms"].as_f64().unwrap();
        assert!(
            (r["scheduled_ms"].as_f64().unwrap() - t0 - at).abs() < 0.5,
            "scheduled at the trace's time: {r}"
        );
        assert_eq!(r["output_tokens"], s["output_tokens"], "{r}");
        let lag = r["sent_ms"].as_f64().unwrap() - t0 - at;
        assert!(lag > -0.5, "sent before its time: {r}");
        let e = first_lag.entry((at * 1000.0) as u64).or_insert(f64::MAX);
        *e = e.min(lag);
    }
    // Exact times are checked above (scheduled_ms); this checks that the
    // pacer waits for them and then goes. A loaded machine delays some
    // sends by more than a few ms, which the run reports as send lag, so
    // only the median burst is held to a bound.
    let mut lags: Vec<f64> = first_lag.into_values().collect();
    lags.sort_by(f64::total_cmp);
    let median = lags[lags.len() / 2];
    assert!(
        median < 20.0,
        "send - trace time of each burst's first request: median {median} ms of {lags:?}"
    );
}

#[test]
fn dataset_values_past_what_the_engine_can_send_are_refused_naming_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    // Three hours apart: scaled by 1,000 the second is 125 days out.
    let trace = dir.path().join("long.csv");
    std::fs::write(
        &trace,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-01-15 09:00:00.0,20,5\n2024-01-15 12:00:00.0,20,5\n",
    )
    .unwrap();
    let huge_prompt = dir.path().join("huge.csv");
    std::fs::write(
        &huge_prompt,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-01-15 09:00:00.0,4000000000,5\n",
    )
    .unwrap();
    let huge_output = dir.path().join("huge.jsonl");
    std::fs::write(&huge_output, "{\"prompt\": \"hi\", \"output_tokens\": 20000000}\n").unwrap();
    let trace_stage = "stages:\n  - shape: trace\n";
    let rate_stage = "stages:\n  - {shape: constant, rate: 10, requests: 1}\n";
    for (plugin, file, config, stages, message) in [
        (
            "trace",
            &trace,
            "{time_scale: 1e300}",
            trace_stage,
            "time_scale must be from 0.000001 to 1000000, got 1e300",
        ),
        (
            "trace",
            &trace,
            "{time_scale: 1000}",
            trace_stage,
            "sample 1 (id 1): at_ms is 10800000000.0, not a time from 0 to 10000000000 ms",
        ),
        (
            "trace",
            &huge_prompt,
            "{}",
            trace_stage,
            "huge.csv:2: 4000000000 prompt tokens; at most 10000000 per request",
        ),
        (
            "jsonl",
            &huge_output,
            "{}",
            rate_stage,
            "sample 0 (id 0): output_tokens is 20000000; at most 10000000",
        ),
    ] {
        let cfg = dir.path().join("run.yaml");
        std::fs::write(
            &cfg,
            format!(
                "dataset:\n  plugin: {plugin}\n  files: [{}]\n  config: {config}\n{stages}",
                file.display()
            ),
        )
        .unwrap();
        let (code, _, stderr) = run(barrage()
            .args(["run", "--quiet", "--config"])
            .arg(&cfg)
            .arg("--output")
            .arg(dir.path().join("run")));
        assert_eq!(code, 2, "{plugin} {config}: {stderr}");
        assert!(stderr.contains(message), "{plugin} {config}: {stderr}");
    }
}

#[test]
fn an_azure_trace_is_replayed_at_its_timestamps_time_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let file = workspace().join("examples/data/azure-trace-small.csv");
    let (recs, samples) = replay(dir.path(), &file, r#"{"time_scale": 0.5, "end_s": 2.5}"#, &sim);
    assert_sent_at_trace_times(&recs, &samples);
    // The window cut the 40-row trace; offsets are halved.
    assert!(samples.len() > 10 && samples.len() < 40, "{}", samples.len());
    let last = samples.last().unwrap()["at_ms"].as_f64().unwrap();
    assert!(last < 1250.0, "{last}");
    // The prompts have the trace's context lengths.
    let rows: Vec<u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        recs.iter()
            .map(|r| r["prompt_tokens"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        rows[..recs.len()].to_vec()
    );
}

#[test]
fn the_public_azure_trace_is_windowed_and_scaled() {
    // The public trace from ../shared/data when this machine has it, the
    // hand-made one otherwise; the expected rows are worked out here from the file.
    let public = workspace().join("../shared/data/azure-llm-inference-trace-2023-conv.csv");
    let (file, from, until) = if public.is_file() {
        (public, 5.0, 65.0)
    } else {
        (workspace().join("examples/data/azure-trace-small.csv"), 1.0, 3.0)
    };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(r#"{{"start_s": {from}, "end_s": {until}, "time_scale": 2}}"#);
    let (samples, _) = prepare(
        dir.path(),
        &[
            "--dataset",
            "trace",
            "--dataset-file",
            file.to_str().unwrap(),
            "--dataset-config",
            &config,
        ],
    );
    // Seconds since midnight is enough: the window is within the first minutes.
    let rows: Vec<(f64, u64, u64)> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let hms: Vec<f64> = c[0]
                .split(' ')
                .nth(1)
                .unwrap()
                .split(':')
                .map(|x| x.parse().unwrap())
                .collect();
            (
                hms[0] * 3600.0 + hms[1] * 60.0 + hms[2],
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
            )
        })
        .collect();
    let t0 = rows.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    let mut window: Vec<&(f64, u64, u64)> = rows.iter().filter(|r| r.0 - t0 >= from && r.0 - t0 < until).collect();
    window.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(window.len() > 5, "{} rows in the window", window.len());
    assert_eq!(samples.len(), window.len());
    for (s, r) in samples.iter().zip(window) {
        let at = (r.0 - t0 - from) * 2000.0;
        assert!((s["at_ms"].as_f64().unwrap() - at).abs() < 0.01, "{s} vs {r:?}");
        assert_eq!(s["prompt_tokens"].as_u64(), Some(r.1));
        assert_eq!(s["output_tokens"].as_u64(), Some(r.2.max(1)));
    }
}

#[test]
fn the_mooncake_trace_is_replayed_with_its_prefix_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::from_yaml(dir.path(), "mode: batching\nseed: 1\n");
    // The public trace from ../shared/data when this machine has it, the
    // hand-made one in examples/ otherwise: both are in the same format.
    let public = workspace().join("../shared/data/mooncake-conversation-trace.jsonl");
    let (file, config) = if public.is_file() {
        (public, r#"{"end_s": 7, "time_scale": 0.3, "max_output_tokens": 16}"#)
    } else {
        (
            workspace().join("examples/data/mooncake-small.jsonl"),
            r#"{"max_output_tokens": 16}"#,
        )
    };
    let (recs, samples) = replay(dir.path(), &file, config, &sim);
    assert_sent_at_trace_times(&recs, &samples);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .take(samples.len())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (s, row) in samples.iter().zip(&rows) {
        assert_eq!(s["prompt_tokens"], row["input_length"], "prompt length from the trace");
    }
    // Requests that share hash ids share prompt blocks: the server's prefix cache hits.
    let hits = metric(&sim.metrics(), "vllm:prefix_cache_hits_total", &[]);
    assert!(hits >= 512.0, "prefix cache hits {hits}");
}

#[test]
fn a_trace_stage_needs_timed_samples() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "dataset:\n  plugin: synthetic\n  config: {count: 3}\nstages:\n  - shape: trace\n",
    )
    .unwrap();
    let (code, _, stderr) = run(barrage().args(["run", "--quiet", "--config"]).arg(&config));
    assert_ne!(code, 0);
    assert!(stderr.contains("stages[0]") && stderr.contains("at_ms"), "{stderr}");
    std::fs::write(&config, "stages:\n  - shape: trace\n").unwrap();
    let (code, _, stderr) = run(barrage().args(["run", "--quiet", "--config"]).arg(&config));
    assert_ne!(code, 0);
    assert!(stderr.contains("dataset:"), "{stderr}");
}

#[test]
fn ctrl_c_does_not_wait_out_a_sessions_think_time() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "5", "--itl-ms", "2"]);
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        format!(
            "target: http://{}\ngrace_period_s: 0.5\ndataset:\n  plugin: multi-turn\n  config: {{sessions: 4, turns: 3, user_tokens: 5, assistant_tokens: 4, think_time_ms: 60000}}\nstages:\n  - {{shape: constant, rate: 10, requests: 4}}\n",
            sim.addr
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let mut child = barrage()
        .args(["run", "--quiet", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, took) = crate::common::interrupt_after(&mut child, std::time::Duration::from_millis(1500));
    assert_eq!(code, Some(3));
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    // Each session's first turn went out; the later turns, a minute away, did not.
    let s = summary(&out);
    assert_eq!(s["stages"][0]["sent"], 4);
    assert_eq!(s["stages"][0]["scheduled"], 4);
    assert_eq!(records(&out).len(), 4);
}
