//! `barrage sweep` and `barrage search` against the simulator's batching
//! model, whose capacity follows from its parameters: at full batch a
//! replica serves `max_num_seqs / (output_tokens × step)` requests/s.

use std::path::Path;

use crate::common::{barrage, interrupt_after, run};

/// A batching simulator embedded in the run (no --target).
struct Profile {
    max_num_seqs: usize,
    step_base_ms: f64,
    step_per_seq_ms: f64,
    tokens: u32,
}

impl Profile {
    fn capacity(&self) -> f64 {
        let step_full_ms = self.step_base_ms + self.step_per_seq_ms * self.max_num_seqs as f64;
        self.max_num_seqs as f64 / (f64::from(self.tokens) * step_full_ms / 1000.0)
    }

    fn write(&self, dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "request: {{max_tokens: {}, prompt_tokens: 16}}\n\
                 sim:\n  mode: batching\n  batching: {{max_num_seqs: {}, step_base_ms: {}, step_per_seq_ms: {}, prefill_per_token_ms: 0}}\n{extra}",
                self.tokens, self.max_num_seqs, self.step_base_ms, self.step_per_seq_ms
            ),
        )
        .unwrap();
        path
    }
}

/// 8 sequences of 10 tokens in 10 ms steps: 80 requests/s.
const EIGHTY: Profile = Profile {
    max_num_seqs: 8,
    step_base_ms: 8.0,
    step_per_seq_ms: 0.25,
    tokens: 10,
};

const SHORT: &[&str] = &["--point-duration", "5", "--warmup", "1", "--probe-duration", "3"];

/// `barrage sweep` or `search` (`command`, with its flags first) of
/// `config` into `out`, with short runs and `extra` flags.
fn answer(command: &[&str], config: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = barrage();
    cmd.args(command)
        .args(["--quiet", "--config"])
        .arg(config)
        .arg("--output")
        .arg(out)
        .args(SHORT)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Requests sent by every run under `dir`, from their own summaries.
fn sent_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path().join("summary.json");
            p.exists().then(|| json(&p)["total"]["sent"].as_u64().unwrap())
        })
        .sum()
}

#[test]
fn sweep_finds_the_knee_the_batching_model_implies_on_two_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let profiles = [
        EIGHTY,
        Profile {
            max_num_seqs: 16,
            step_base_ms: 10.0,
            step_per_seq_ms: 0.5,
            tokens: 8,
        },
    ];
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = profiles
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let config = p.write(tmp.path(), &format!("profile{i}"), "");
                let out = tmp.path().join(format!("sweep{i}"));
                scope.spawn(move || {
                    let outcome = run(&mut answer(&["sweep"], &config, &out, &[]));
                    (outcome, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (profile, ((code, stdout, stderr), out)) in profiles.iter().zip(outcomes) {
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let report = json(&out.join("sweep.json"));
        let capacity = profile.capacity();
        let knee = f(&report["knee"]["rate"]);
        assert!(
            (knee - capacity).abs() <= 0.1 * capacity,
            "knee {knee:.1}/s vs the model's capacity {capacity:.1}/s\n{stdout}"
        );
        let points = report["points"].as_array().unwrap();
        eprintln!(
            "capacity {capacity:.1}/s: knee {knee:.2} ± {:.2}/s from {} rates, {} requests",
            f(&report["knee"]["uncertainty"]),
            points.len(),
            report["requests_spent"]
        );
        let (past, served): (Vec<_>, Vec<_>) = points.iter().partition(|p| p["saturated"] == true);
        assert!(!past.is_empty() && !served.is_empty(), "{stdout}");
        // Denser near the knee: the rates bracketing it are within the precision.
        let below = f(&report["knee"]["below"]);
        let above = f(&report["knee"]["above"]);
        assert!((above - below) / above <= 0.05 + 1e-9, "{below} .. {above}");
        // Every request spent is in a run of the sweep's own.
        assert_eq!(report["requests_spent"].as_u64().unwrap(), sent_under(&out));
        assert!(stdout.contains("**Knee: "), "{stdout}");
        assert!(
            std::fs::read_to_string(out.join("sweep.md"))
                .unwrap()
                .contains("| offered req/s |")
        );
    }
}

/// A loopback TCP proxy to `upstream` that can hold back the server's
/// bytes for a while: a stalled second as a busy machine makes one.
struct StallingProxy {
    addr: std::net::SocketAddr,
    until: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl StallingProxy {
    fn start(upstream: std::net::SocketAddr) -> StallingProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let until = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
        let held = until.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (mut c_in, mut c_out) = (client.try_clone().unwrap(), client);
                let (mut s_in, mut s_out) = (server.try_clone().unwrap(), server);
                let held = held.clone();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = s_in.read(&mut buf) {
                        let until = *held.lock().unwrap();
                        if let Some(until) = until {
                            std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(Shutdown::Write);
                });
            }
        });
        StallingProxy { addr, until }
    }

    fn stall(&self, d: std::time::Duration) {
        *self.until.lock().unwrap() = Some(std::time::Instant::now() + d);
    }
}

#[test]
fn sweep_measures_again_a_point_a_stall_made_look_past_the_knee() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = Profile {
        max_num_seqs: 16,
        step_base_ms: 10.0,
        step_per_seq_ms: 0.5,
        tokens: 8,
    };
    let sim = crate::common::SimProcess::from_yaml(
        tmp.path(),
        &format!(
            "mode: batching\nbatching: {{max_num_seqs: {}, step_base_ms: {}, step_per_seq_ms: {}, prefill_per_token_ms: 0}}\n",
            profile.max_num_seqs, profile.step_base_ms, profile.step_per_seq_ms
        ),
    );
    let proxy = StallingProxy::start(sim.addr);
    let config = tmp.path().join("run.yaml");
    std::fs::write(
        &config,
        format!(
            "target: http://{}\nrequest: {{max_tokens: {}, prompt_tokens: 16}}\n",
            proxy.addr, profile.tokens
        ),
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    // Five runs: the first, the one above it, the first again, one past
    // the knee and one more bisecting.
    let mut child = answer(&["sweep"], &config, &out, &["--max-points", "5"])
        .spawn()
        .unwrap();
    // The first point (half the probe's estimate, well below the knee)
    // loses its last seconds: nothing reaches the client for 4 s from
    // 1.5 s into it. The next one, at 85 %, is served.
    let first = loop {
        let started = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("rate-00-"));
        if let Some(e) = started {
            break e.file_name().to_string_lossy().into_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before its first point"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    proxy.stall(std::time::Duration::from_secs(4));
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report = json(&out.join("sweep.json"));
    let remeasured = report["remeasured"].as_array().unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(remeasured.len(), 1, "{stdout}");
    assert_eq!(remeasured[0]["name"], first.as_str());
    assert_eq!(remeasured[0]["saturated"], true);
    let load = f(&remeasured[0]["load"]);
    let again = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| f(&p["load"]) == load)
        .unwrap();
    assert_eq!(again["saturated"], false, "{stdout}");
    assert_ne!(again["name"], first.as_str());
    let (knee, capacity) = (f(&report["knee"]["rate"]), profile.capacity());
    assert!(
        (knee - capacity).abs() <= 0.1 * capacity,
        "knee {knee:.1}/s vs the model's capacity {capacity:.1}/s\n{stdout}"
    );
    assert_eq!(report["requests_spent"].as_u64().unwrap(), sent_under(&out));
    assert!(
        stdout.contains(&format!(
            "Measured again: {load:.2} requests/s; its first run (`{first}`)"
        )),
        "{stdout}"
    );
}

#[test]
fn search_finds_the_highest_rate_meeting_an_objective_with_fewer_requests_than_doubling_and_bisection() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = EIGHTY;
    let config = profile.write(tmp.path(), "profile", "");
    let out = tmp.path().join("search");
    let objective = ["--slo", "ttft < 100ms", "--attainment", "95%"];
    let (code, stdout, stderr) = run(&mut answer(&["search"], &config, &out, &objective));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report = json(&out.join("search.json"));
    let best = f(&report["best"]);
    let failed_at = f(&report["failed_at"]);
    assert!(
        best < failed_at && (failed_at - best) / failed_at <= 0.05 + 1e-9,
        "{best} .. {failed_at}"
    );
    let spent = report["requests_spent"].as_u64().unwrap();
    assert_eq!(spent, sent_under(&out));

    // The answer holds up: three runs at it meet the objective, one 10 % above does not.
    let share_at = |rate: f64, name: &str| {
        let dir = tmp.path().join(name);
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--config"])
            .arg(&config)
            .args(["--rate", &rate.to_string(), "--duration", "5", "--output"])
            .arg(&dir)
            .args(&objective[..2])
            .args(["--reporter", "json"]));
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let total = &crate::common::summary(&dir)["total"];
        (f(&total["goodput"]["share"]), total["sent"].as_u64().unwrap())
    };
    // Run side by side: four short runs at once still leave the simulator idle.
    let shares: Vec<(f64, u64)> = std::thread::scope(|scope| {
        let runs: Vec<_> = [
            (best, "again0"),
            (best, "again1"),
            (best, "again2"),
            (best * 1.1, "above"),
        ]
        .into_iter()
        .map(|(rate, name)| scope.spawn(move || share_at(rate, name)))
        .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (share, _)) in shares[..3].iter().enumerate() {
        assert!(*share >= 0.95, "rerun {i} at {best:.2}/s: {share}");
    }
    assert!(shares[3].0 < 0.95, "10 % above {best:.2}/s: {}", shares[3].0);

    // guidellm's method, written here and run on the same simulator:
    // double from 1 request/s until the objective fails, then bisect to
    // the same precision, each rate for the same 5 s, judged by its
    // measured attainment.
    let (mut lo, mut hi, mut rate, mut requests) = (0.0, f64::INFINITY, 1.0, 0u64);
    for step in 0..20 {
        let (share, sent) = share_at(rate, &format!("doubling{step}"));
        requests += sent;
        if share >= 0.95 {
            lo = rate;
        } else {
            hi = rate;
        }
        if hi.is_infinite() {
            rate *= 2.0;
        } else if lo == 0.0 {
            rate /= 2.0;
        } else if (hi - lo) / hi > 0.05 {
            rate = (lo + hi) / 2.0;
        } else {
            break;
        }
    }
    assert!((hi - lo) / hi <= 0.05, "doubling and bisection ended at {lo}..{hi}");
    eprintln!(
        "search: {spent} requests for {best:.2}..{failed_at:.2}; doubling and bisection: {requests} for {lo:.2}..{hi:.2}"
    );
    assert!(spent < requests, "{spent} requests, doubling and bisection {requests}");
}

#[test]
fn a_search_over_users_finds_the_batch_the_model_serves_without_a_queue() {
    let tmp = tempfile::tempdir().unwrap();
    // Eight sequences run at once, so up to eight users never wait for a
    // slot (TTFT is one 10 ms step); past some more, the queue for slots
    // makes TTFT miss 50 ms.
    let profile = EIGHTY;
    let config = profile.write(tmp.path(), "profile", "");
    let out = tmp.path().join("users");
    let (code, stdout, stderr) = run(&mut answer(
        &["search", "--over", "users"],
        &config,
        &out,
        &["--slo", "ttft < 50ms", "--attainment", "95%"],
    ));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report = json(&out.join("search.json"));
    let (best, failed_at) = (f(&report["best"]), f(&report["failed_at"]));
    assert_eq!(failed_at, best + 1.0, "pinned down to one user: {stdout}");
    assert!(best >= 8.0 && failed_at <= 16.0, "{stdout}");
    assert!(
        stdout.contains(&format!("**Highest load that meets it: {best:.2} users**")),
        "{stdout}"
    );
    let combined = json(&out.join("summary.json"));
    assert!(
        combined["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["requested_concurrency"].is_u64())
    );
}

#[test]
fn sweeps_and_searches_refuse_bad_input_stop_on_a_dead_target_and_keep_their_points() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = EIGHTY;
    let config = profile.write(tmp.path(), "profile", "");
    for (args, expected) in [
        (
            vec!["sweep", "--rate", "5"],
            "--rate is for a single run; a sweep chooses its own runs",
        ),
        (
            vec!["search", "--junit", "j.xml"],
            "--junit is for a single run; a search chooses its own runs",
        ),
        (
            vec!["search", "--status-file", "s.json"],
            "--status-file is for run, sweep, merge and report",
        ),
        (
            vec!["search", "--attainment", "150%"],
            "--attainment `150%`: give a share",
        ),
        (
            vec!["search", "--slo", "latency < 3ms"],
            "`latency` in `latency < 3ms` is not a metric",
        ),
        (
            vec!["sweep", "--warmup", "9", "--point-duration", "5"],
            "--warmup (9) must be shorter",
        ),
    ] {
        let (code, stdout, stderr) = run(barrage()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .arg("--output")
            .arg(tmp.path().join("never")));
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(!tmp.path().join("never").exists());

    // A target that fails every request: the sweep stops at once, says why, keeps its file.
    let dead = profile.write(tmp.path(), "dead", "  faults: {http_500: 1.0}\n");
    let out = tmp.path().join("dead-sweep");
    let (code, stdout, stderr) = run(&mut answer(&["sweep"], &dead, &out, &[]));
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    assert!(stderr.contains("every request failed at 1 users"), "{stderr}");
    assert_eq!(
        json(&out.join("sweep.json"))["probe"]["levels"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An objective no rate meets: the search says so, with the lowest rate tried.
    let out = tmp.path().join("impossible");
    let (code, stdout, stderr) = run(&mut answer(
        &["search"],
        &config,
        &out,
        &["--slo", "ttft < 1ms", "--min-rate", "20", "--max-points", "4"],
    ));
    assert_eq!(code, 7, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no load meets the objective: the lowest tried, 20.00 requests/s"),
        "{stderr}"
    );

    // Ctrl-C in the middle of a search, then of a sweep: every run so far
    // is kept, and the answer's page is written.
    let out = tmp.path().join("interrupted-search");
    let mut child = answer(&["search"], &config, &out, &["--slo", "ttft < 100ms"])
        .spawn()
        .unwrap();
    let (code, _) = interrupt_after(&mut child, std::time::Duration::from_secs(4));
    assert_eq!(code, Some(3));
    assert_eq!(
        json(&out.join("search.json"))["note"],
        "interrupted: the points so far are kept"
    );
    assert!(out.join("search.md").exists());

    let out = tmp.path().join("interrupted");
    let mut child = answer(&["sweep"], &config, &out, &[]).spawn().unwrap();
    let (code, _) = interrupt_after(&mut child, std::time::Duration::from_secs(5));
    assert_eq!(code, Some(3));
    let report = json(&out.join("sweep.json"));
    assert_eq!(report["note"], "interrupted: the points so far are kept");
    let levels = report["probe"]["levels"].as_array().unwrap();
    assert!(!levels.is_empty());
    for level in levels {
        let name = level["name"].as_str().unwrap();
        assert!(out.join(name).join("summary.json").exists(), "{name} kept");
    }
    assert!(out.join("sweep.md").exists());
}
