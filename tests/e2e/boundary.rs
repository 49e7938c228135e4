//! The plugin boundary, tried as an attacker would: the `hostile` test codec
//! (`tests/plugins/hostile`) attacks the host's side of it one way per
//! configuration, and each test shows the host holding through the CLI.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{SimProcess, barrage, records, run, summary, test_plugin};

fn hostile() -> PathBuf {
    test_plugin("hostile")
}

/// A listener standing for the attacker's server: counts the connections
/// it is sent.
struct Attacker {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Attacker {
    fn start() -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Attacker { addr, connections }
    }

    /// Connections received, after proving the count works with one of our own.
    fn connections_besides_ours(&self) -> usize {
        let before = self.connections.load(Ordering::SeqCst);
        drop(std::net::TcpStream::connect(self.addr).unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.connections.load(Ordering::SeqCst) == before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            self.connections.load(Ordering::SeqCst),
            before + 1,
            "the counter counts"
        );
        before
    }
}

/// `barrage run` with the hostile codec configured by `config`, into `out`.
fn run_hostile(out: &Path, config: &str, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = barrage();
    cmd.args(["run", "--quiet", "--codec"])
        .arg(hostile())
        .args(["--codec-config", config, "--output"])
        .arg(out)
        .args(extra);
    run(&mut cmd)
}

#[test]
fn a_codec_cannot_send_the_runs_requests_anywhere_but_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let plain = SimProcess::start(&["--mode", "zero"]);
    let (tls, _) = SimProcess::zero_tls(dir.path());
    let attacker = Attacker::start();
    // The run's API key is what the attack is after.
    let config = dir.path().join("key.yaml");
    std::fs::write(&config, "api_key_env: BOUNDARY_TEST_KEY\n").unwrap();
    let transports: [(&str, String, &[&str]); 4] = [
        ("http1", format!("http://{}", plain.addr), &[]),
        ("h2c", format!("http://{}", plain.addr), &["--http2"]),
        ("tls", format!("https://127.0.0.1:{}", tls.addr.port()), &["--insecure"]),
        (
            "h2-tls",
            format!("https://127.0.0.1:{}", tls.addr.port()),
            &["--insecure", "--http2"],
        ),
    ];
    for (transport, target, flags) in &transports {
        // The same codec without the attack succeeds here: the refusals
        // below are the attack's, not a broken setup's.
        let out = dir.path().join(format!("{transport}-honest"));
        let mut args = vec!["--target", target.as_str(), "--requests", "4", "--rate", "100"];
        args.extend_from_slice(flags);
        let (code, _, stderr) = run_hostile(&out, r#"{"attack":"none"}"#, &args);
        assert_eq!(code, 0, "{transport}: {stderr}");
        assert_eq!(summary(&out)["stages"][0]["succeeded"], 4, "{transport}");

        for (form, refusal) in [
            ("at", "a codec names the path only"),
            ("absolute", "a codec names the path only"),
            ("host", "header `host` is the target's"),
        ] {
            let out = dir.path().join(format!("{transport}-{form}"));
            let attack = format!(r#"{{"attack":"redirect","to":"{}","form":"{form}"}}"#, attacker.addr);
            let mut cmd = barrage();
            cmd.env("BOUNDARY_TEST_KEY", "sk-secret")
                .args(["run", "--quiet", "--config"])
                .arg(&config)
                .arg("--codec")
                .arg(hostile())
                .args(["--codec-config", &attack, "--output"])
                .arg(&out)
                .args(&args);
            let (code, _, stderr) = run(&mut cmd);
            assert_eq!(code, 5, "nothing succeeded: {transport} {form}: {stderr}");
            let s = summary(&out);
            assert_eq!(s["stages"][0]["succeeded"], 0, "{transport} {form}: {s}");
            assert_eq!(
                s["stages"][0]["by_status"]["transport_error"], 4,
                "{transport} {form}: {s}"
            );
            let errors = s["stages"][0]["errors"].to_string();
            assert!(
                errors.contains("the codec built an invalid request") && errors.contains(refusal),
                "{transport} {form}: {errors}"
            );
        }
    }
    assert_eq!(
        attacker.connections_besides_ours(),
        0,
        "no request reached the codec's host"
    );
}

#[test]
fn an_event_for_a_frame_the_codec_was_not_given_fails_that_response_only() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("stream.sse");
    std::fs::write(&body, "data: a\n\ndata: b\n\ndata: [DONE]\n\n").unwrap();
    let (code, stdout, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec"])
        .arg(hostile())
        .args(["--codec-config", r#"{"attack":"bad-index"}"#])
        .arg(&body)
        .arg(&body));
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stdout
            .matches("failed: plugin 'hostile' bad output: returned an event for frame 3 of a batch of 3 frames")
            .count(),
        2,
        "{stdout}"
    );

    // In a run, every second stream of an instance misbehaves: those fail,
    // the rest decode on the same plugin threads, and nothing restarts.
    let sim = SimProcess::start(&["--mode", "zero"]);
    let out = dir.path().join("run");
    let target = format!("http://{}", sim.addr);
    let (code, _, stderr) = run_hostile(
        &out,
        r#"{"attack":"bad-index","every":2}"#,
        &["--target", &target, "--requests", "40", "--rate", "200"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let s = summary(&out);
    let stage = &s["stages"][0];
    let (ok, failed) = (
        stage["succeeded"].as_u64().unwrap(),
        stage["by_status"]["plugin_error"].as_u64().unwrap_or(0),
    );
    assert_eq!(ok + failed, 40, "{s}");
    assert!(ok > 0 && failed > 0, "both kinds of stream ran: {s}");
    assert!(
        stage["errors"]
            .to_string()
            .contains("bad output: returned an event for frame"),
        "{s}"
    );
    assert_eq!(s["host"]["plugin_thread_restarts"], 0);
    assert_eq!(s["complete"], true);
}

#[test]
fn the_plugins_memory_budget_holds_the_host_under_it() {
    // Each stream holds 64 MiB; about twenty are open at once, so without a
    // budget the host would hold over a gigabyte of plugin memory.
    let dir = tempfile::tempdir().unwrap();
    for (flag, covers) in [
        ("--plugin-memory-budget-mib", "plugin 'hostile'"),
        ("--plugins-memory-budget-mib", "all plugins"),
    ] {
        let out = dir.path().join(flag);
        let (code, _, stderr) = run_hostile(
            &out,
            r#"{"attack":"hold","mib":64}"#,
            &[
                "--plugin-memory-mib",
                "128",
                flag,
                "200",
                // Touching 64 MiB takes a while on a busy machine; the
                // budget, not the clock, is under test.
                "--plugin-deadline-ms",
                "5000",
                "--rate",
                "20",
                "--duration",
                "2",
                "--max-tokens",
                "100",
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        let s = summary(&out);
        let stage = &s["stages"][0];
        assert!(
            stage["succeeded"].as_u64().unwrap() > 0,
            "streams under the budget decode: {s}"
        );
        let errors = stage["errors"].to_string();
        assert!(
            errors.contains(&format!("memory limit: memory budget of 200 MiB for {covers} reached")),
            "{errors}"
        );
        let host = &s["host"];
        assert!(host["plugin_memory_peak_mib"].as_f64().unwrap() <= 200.0, "{host}");
        // The stated bound: the budget plus what the host itself needs.
        let rss = host["peak_rss_mib"].as_f64().unwrap();
        assert!(rss > 0.0 && rss < 200.0 + 250.0, "{flag}: host peak RSS {rss} MiB");
    }
}

#[test]
fn plugin_output_reaching_records_and_the_console_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // 10 MiB `malformed` reasons and 10 MiB log lines, on every push.
    let out = dir.path().join("run");
    let (code, _, stderr) = run_hostile(
        &out,
        r#"{"attack":"flood","reason_mib":10,"log_mib":10,"events":0}"#,
        &["--plugin-deadline-ms", "5000", "--requests", "10", "--rate", "20"],
    );
    assert_eq!(code, 5, "every response was malformed: {stderr}");
    let records_size = std::fs::metadata(out.join("records.jsonl")).unwrap().len();
    assert!(records_size < 200 << 10, "records.jsonl is {records_size} bytes");
    let records = records(&out);
    assert_eq!(records.len(), 10);
    for r in &records {
        assert_eq!(r["status"], "malformed");
        let error = r["error"].as_str().unwrap();
        assert!(error.ends_with(" more bytes cut]"), "{}", &error[error.len() - 60..]);
    }
    assert!(stderr.len() < 1 << 20, "stderr is {} bytes", stderr.len());
    assert!(stderr.contains(" more bytes cut]"), "log lines are cut with a marker");

    // Half a million events from one call: that response fails, named.
    let body = dir.path().join("stream.sse");
    std::fs::write(&body, "data: a\n\ndata: [DONE]\n\n").unwrap();
    let decode = |config: &str| {
        run(barrage()
            .args(["plugin", "decode", "--plugin-deadline-ms", "10000", "--codec"])
            .arg(hostile())
            .args(["--codec-config", config])
            .arg(&body))
    };
    let (code, stdout, _) = decode(r#"{"attack":"flood","reason_mib":0,"log_mib":0,"events":500000}"#);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "failed: plugin 'hostile' bad output: returned 500003 events for 2 frames; a call may return at most 192"
        ),
        "{stdout}"
    );

    // A plugin's log volume is budgeted: past 16 MiB its lines are dropped,
    // said once, and counted when it is unloaded.
    let (_, _, stderr) = decode(r#"{"attack":"flood","reason_mib":0,"log_kib":4,"log_lines":5000,"events":0}"#);
    assert!(
        stderr.len() < (16 << 20) + (256 << 10),
        "stderr is {} bytes",
        stderr.len()
    );
    assert!(
        stderr.contains("this plugin has logged 16 MiB; its further lines are dropped and counted"),
        "{}",
        &stderr[stderr.len().saturating_sub(500)..]
    );
    assert!(
        stderr.contains("log lines dropped past the 16 MiB log budget"),
        "{}",
        &stderr[stderr.len().saturating_sub(500)..]
    );
}

#[test]
fn a_swapped_or_foreign_cache_entry_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let with_cache = |key: &str| {
        let mut cmd = barrage();
        cmd.env("BARRAGE_CACHE_DIR", &cache)
            .env("BARRAGE_CACHE_KEY", dir.path().join(key));
        cmd
    };
    let entries = || -> Vec<PathBuf> {
        let mut e: Vec<PathBuf> = std::fs::read_dir(&cache)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        e.retain(|p| p.extension().is_some_and(|x| x == "cwasm"));
        e.sort();
        e
    };
    let inspect = |cmd: &mut std::process::Command, plugin: &std::ffi::OsStr| {
        let (code, stdout, stderr) = run(cmd.args(["plugin", "inspect"]).arg(plugin));
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let builtin = std::ffi::OsStr::new("openai-completions");
    assert!(inspect(&mut with_cache("key"), builtin).contains("name:      openai-completions"));
    let genuine = entries();
    assert_eq!(genuine.len(), 1, "{genuine:?}");
    assert!(inspect(&mut with_cache("key"), hostile().as_os_str()).contains("name:      hostile"));
    let hostile_entry = entries().into_iter().find(|e| !genuine.contains(e)).unwrap();

    // The hostile plugin's compiled code under the built-in's name.
    std::fs::copy(&hostile_entry, &genuine[0]).unwrap();
    let stdout = inspect(&mut with_cache("key"), builtin);
    assert!(stdout.contains("name:      openai-completions"), "{stdout}");
    assert_ne!(
        std::fs::read(&genuine[0]).unwrap(),
        std::fs::read(&hostile_entry).unwrap(),
        "the swapped entry was recompiled and rewritten"
    );

    // Garbage, and a cache sealed with another machine's key, are recompiled too.
    std::fs::write(&genuine[0], b"not a compiled component").unwrap();
    assert!(inspect(&mut with_cache("key"), builtin).contains("name:      openai-completions"));
    let sealed_here = std::fs::read(&genuine[0]).unwrap();
    assert!(inspect(&mut with_cache("other-key"), builtin).contains("name:      openai-completions"));
    assert_ne!(
        std::fs::read(&genuine[0]).unwrap(),
        sealed_here,
        "resealed under the other key"
    );
    let key = std::fs::metadata(dir.path().join("key")).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600,
        "the key is the user's alone"
    );
}

/// Every file under `dir`, with when it was last written.
fn files_written(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.push((entry.path(), entry.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn compiled_functions_are_reused_and_never_run_unsealed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let functions = cache.join("functions");
    let inspect = |plugin: &str| {
        let (code, stdout, stderr) = run(barrage()
            .env("BARRAGE_CACHE_DIR", &cache)
            .env("BARRAGE_CACHE_KEY", dir.path().join("key"))
            .args(["plugin", "inspect", plugin]));
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(&format!("name:      {plugin}")), "{stdout}");
    };
    let drop_components = || {
        for entry in std::fs::read_dir(&cache).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "cwasm") {
                std::fs::remove_file(path).unwrap();
            }
        }
    };
    inspect("openai-completions");
    let stored = files_written(&functions);
    assert!(stored.len() > 100, "one entry per compiled function: {}", stored.len());
    // Compiled again from the function cache: a function found there is
    // not stored again. (A few of wasmtime's functions are keyed apart on
    // each compile, and stored anew.)
    drop_components();
    inspect("openai-completions");
    let after = files_written(&functions);
    let rewritten = stored.iter().filter(|e| !after.contains(e)).count();
    assert_eq!(rewritten, 0, "an entry found in the cache was written again");
    let new = after.len() - stored.len();
    assert!(
        new * 4 < stored.len(),
        "{new} of {} functions missed the cache",
        stored.len()
    );

    // Each entry swapped for another's: the code under each function's key
    // is another function's, sealed for that other key. None of it is run:
    // the plugin still answers, and the functions are compiled and stored
    // again.
    let bytes: Vec<Vec<u8>> = stored.iter().map(|(p, _)| std::fs::read(p).unwrap()).collect();
    for (i, (path, _)) in stored.iter().enumerate() {
        std::fs::write(path, &bytes[(i + 1) % bytes.len()]).unwrap();
    }
    drop_components();
    inspect("openai-completions");
    let restored = stored
        .iter()
        .zip(&bytes)
        .filter(|((path, _), original)| std::fs::read(path).unwrap() == **original)
        .count();
    assert!(
        restored * 4 > stored.len() * 3,
        "only {restored} of {} swapped entries were refused and rewritten",
        stored.len()
    );
}

#[test]
fn a_slow_encode_is_stopped_at_its_own_deadline_and_counted() {
    // Every second encode never returns. With a 10 ms encode deadline the
    // feeder keeps ahead of 100 requests a second; each stopped encode is
    // a counted plugin timeout, and the others are sent and succeed. On a
    // busy machine the feeder's half a core of looping encodes may fall
    // behind: a minute's send-lag bound makes those sends late, not missed,
    // so the count below holds however busy (in a full run beside other
    // load, a second's bound missed 103 of 200).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, stderr) = run_hostile(
        &out,
        r#"{"attack":"slow-encode"}"#,
        &[
            "--plugin-encode-deadline-ms",
            "10",
            "--rate",
            "100",
            "--requests",
            "200",
            "--max-send-lag-ms",
            "60000",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let s = summary(&out);
    let stage = &s["stages"][0];
    let errors = stage["errors"].as_object().unwrap();
    let timeouts = errors
        .iter()
        .find(|(k, _)| k.contains("timeout: encode failed: call ran past its 10 ms deadline"))
        .map(|(_, n)| n.as_u64().unwrap())
        .unwrap_or_else(|| panic!("{errors:?}"));
    let ok = stage["succeeded"].as_u64().unwrap();
    // The deadline is CPU time, so nothing but the looping encodes stops at
    // it, however busy the machine, and none is retried.
    assert_eq!((timeouts, ok), (100, 100), "{s}");
}

#[test]
fn wasi_gives_a_plugin_nothing_of_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, stderr) = run_hostile(
        &out,
        r#"{"attack":"ambient"}"#,
        &["--requests", "3", "--rate", "50", "--seed", "7"],
    );
    assert_eq!(code, 5, "nothing succeeded: {stderr}");
    let s = summary(&out);
    let errors = s["stages"][0]["errors"].to_string();
    // Every call links (no trap) and finds nothing: no file, no variables
    // or arguments, a stopped clock. (The `/` is wasi-libc's own default
    // working directory: the host gives none.)
    for seen in [
        "file: denied (entity not found)",
        "env vars: 0; args: 0; cwd: /; clock: 0 s; elapsed: 0 ns; random: ",
    ] {
        assert!(errors.contains(seen), "{seen}: {errors}");
    }
    assert!(!errors.contains("trap"), "{errors}");
    // Randomness comes from the run's seed: the same seed, the same bytes.
    let random = |out: &std::path::Path| -> Vec<String> {
        let errors = summary(out)["stages"][0]["errors"].to_string();
        let mut seen: Vec<String> = errors
            .split("random: ")
            .skip(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .collect();
        seen.sort();
        assert_eq!(seen.len(), 3, "{errors}");
        seen
    };
    let again = dir.path().join("again");
    run_hostile(
        &again,
        r#"{"attack":"ambient"}"#,
        &["--requests", "3", "--rate", "50", "--seed", "7"],
    );
    let other = dir.path().join("other");
    run_hostile(
        &other,
        r#"{"attack":"ambient"}"#,
        &["--requests", "3", "--rate", "50", "--seed", "8"],
    );
    assert_eq!(random(&out), random(&again));
    assert_ne!(random(&out), random(&other));
}

#[test]
fn a_wasi_command_program_is_told_apart_from_a_plugin() {
    let command = test_plugin("wasi-command");
    let (code, stdout, _) = run(barrage().args(["plugin", "inspect"]).arg(&command));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "supported: no: it targets no barrage:plugin interface at all (a WASI command program, or a component \
             for another host, is not a plugin)"
        ),
        "{stdout}"
    );
    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec"])
        .arg(&command)
        .arg(crate::common::fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("plugin 'wasi-command' is not a Barrage plugin"),
        "{stderr}"
    );
}

#[test]
fn a_slow_codec_moves_no_timestamp() {
    // Every push burns ~80 ms of CPU on the one plugin thread, so the thread
    // falls ~2 s behind the streams. Each record's times must still be when
    // the bytes arrived: the simulator's ground truth of when it sent each
    // frame, plus loopback delivery.
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("20", "5", &truth);
    let out = dir.path().join("run");
    let cfg = dir.path().join("run.yaml");
    std::fs::write(&cfg, "plugin_threads: 1\n").unwrap();
    let (code, _, stderr) = run_hostile(
        &out,
        r#"{"attack":"slow-decode","spins":60000000}"#,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--target",
            &format!("http://{}", sim.addr),
            "--rate",
            "50",
            "--requests",
            "30",
            "--max-tokens",
            "8",
            "--plugin-deadline-ms",
            "5000",
        ],
    );
    sim.stop();
    assert_eq!(code, 0, "{stderr}");
    let s = summary(&out);
    // The decoding really was slow: 30 pushes of ~80 ms on one thread
    // outlast the 0.6 s of arrivals by far.
    assert!(s["duration_s"].as_f64().unwrap() > 1.5, "{}", s["duration_s"]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    let origin_ns = meta["origin_monotonic_ns"].as_u64().unwrap();
    let sent_ms = |ns: u64| (ns as f64 - origin_ns as f64) / 1e6;
    let truths: std::collections::BTreeMap<String, serde_json::Value> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["request_id"].as_str().unwrap().to_string(), v))
        .collect();
    let recs = records(&out);
    assert_eq!(recs.len(), 30);
    // Under a slow decode a stamp taken after decoding is ~80 ms to seconds
    // late; delivery over loopback, even on a busy machine, is far less.
    let on_time = |measured: f64, truth: f64| (0.0..25.0).contains(&(measured - truth));
    for r in &recs {
        assert_eq!(r["status"], "ok", "{r}");
        let t = &truths[&r["id"].to_string()];
        let frames: Vec<f64> = t["frames_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| sent_ms(f.as_u64().unwrap()))
            .collect();
        let content: Vec<f64> = r["content_frames_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap())
            .collect();
        // The codec counts every frame but `[DONE]` as content, in order.
        assert_eq!(content.len(), frames.len() - 1, "{r}\n{t}");
        for (i, (m, f)) in content.iter().zip(&frames).enumerate() {
            assert!(on_time(*m, *f), "frame {i}: measured {m} ms, sent {f} ms\n{r}");
        }
        let end = r["end_ms"].as_f64().unwrap();
        assert!(on_time(end, *frames.last().unwrap()), "end {end} ms\n{r}\n{t}");
    }
}
