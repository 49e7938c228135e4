//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/cli/ is in the workspace")
        .to_path_buf()
}

/// A file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// Cargo for a build a test makes itself, as a plugin author would run it:
/// none of the outer build's target directory or lint wrapper (`.ci/run`
/// lints the workspace by building it through clippy-driver).
pub fn cargo() -> Command {
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    for var in ["CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The test plugins (`tests/plugins/*`) and the SDK example, built for
/// wasm32-wasip2 by cargo, as a plugin author would build them. Cargo makes
/// this a no-op after the first test that asks.
///
/// Under `.ci/run`, whose wrapper is clippy-driver, they are linted as they
/// are built, as the embedded plugins are (`host/plugin-host/build.rs`).
pub fn test_plugin(package: &str) -> PathBuf {
    let ws = workspace();
    let target_dir = ws.join("target/plugins");
    let mut cargo = cargo();
    if let Some(wrapper) = std::env::var_os("RUSTC_WORKSPACE_WRAPPER")
        && Path::new(&wrapper)
            .file_stem()
            .is_some_and(|name| name == "clippy-driver")
    {
        cargo.env("RUSTC_WORKSPACE_WRAPPER", wrapper);
        if let Some(args) = std::env::var_os("CLIPPY_ARGS") {
            cargo.env("CLIPPY_ARGS", args);
        }
    }
    let status = cargo
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
            "misbehaving",
            "-p",
            "wrong-version",
            "-p",
            "ollama-generate",
            "-p",
            "frozen-contract",
            "-p",
            "hostile",
        ])
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the test plugins failed (cargo's output is above; under .ci/run a clippy warning fails it too)"
    );
    // A library's file name has `_` for `-`; a program's (`wasi-command`) keeps it.
    let dir = target_dir.join("wasm32-wasip2/plugin");
    let library = dir.join(format!("{}.wasm", package.replace('-', "_")));
    let path = if library.exists() {
        library
    } else {
        dir.join(format!("{package}.wasm"))
    };
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A `barrage` command with a shared compiled-plugin cache and no
/// installed plugins from the machine.
pub fn barrage() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_barrage"));
    cmd.env("BARRAGE_CACHE_DIR", workspace().join("target/test-compiled-cache"));
    cmd.env("BARRAGE_CACHE_KEY", workspace().join("target/test-cache.key"));
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

/// Let `child` run for `after`, then Ctrl-C it (SIGINT) and wait: its exit
/// code, and how long it took to stop.
pub fn interrupt_after(
    child: &mut std::process::Child,
    after: std::time::Duration,
) -> (Option<i32>, std::time::Duration) {
    std::thread::sleep(after);
    let started = std::time::Instant::now();
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().expect("wait for barrage");
    (status.code(), started.elapsed())
}

/// A `barrage sim` process on a free loopback port; stopped (SIGTERM) on drop.
pub struct SimProcess {
    child: std::process::Child,
    /// host:port it listens on.
    pub addr: std::net::SocketAddr,
}

impl SimProcess {
    /// Start `barrage sim --port 0` with extra arguments and wait until it listens.
    pub fn start(args: &[&str]) -> SimProcess {
        use std::io::BufRead;
        let mut child = barrage()
            .args(["sim", "--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start barrage sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("barrage sim did not start: {line:?}"));
        SimProcess { child, addr }
    }

    /// A `--mode zero` simulator serving HTTPS with a self-signed
    /// certificate for `localhost` and `127.0.0.1`, written to `dir`; also
    /// returns the certificate's PEM file (for `--ca-file`).
    pub fn zero_tls(dir: &Path) -> (SimProcess, PathBuf) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
        let (cert, pem_key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, key.cert.pem()).expect("write the certificate");
        std::fs::write(&pem_key, key.signing_key.serialize_pem()).expect("write the key");
        let sim = SimProcess::start(&[
            "--mode",
            "zero",
            "--tls-cert",
            cert.to_str().expect("a UTF-8 path"),
            "--tls-key",
            pem_key.to_str().expect("a UTF-8 path"),
        ]);
        (sim, cert)
    }

    /// A simulator configured by `yaml`, written to `sim.yaml` in `dir`.
    pub fn from_yaml(dir: &Path, yaml: &str) -> SimProcess {
        let cfg = dir.join("sim.yaml");
        std::fs::write(&cfg, yaml).expect("write the simulator config");
        SimProcess::start(&["--config", cfg.to_str().expect("a UTF-8 path")])
    }

    /// A plain-mode simulator (fixed TTFT and ITL, ms) that writes its ground truth to `truth`.
    pub fn plain_with_truth(ttft_ms: &str, itl_ms: &str, truth: &Path) -> SimProcess {
        let truth = truth.to_str().expect("a UTF-8 path");
        SimProcess::start(&[
            "--mode",
            "plain",
            "--ttft-ms",
            ttft_ms,
            "--itl-ms",
            itl_ms,
            "--ground-truth",
            truth,
        ])
    }

    /// Its `/metrics`, parsed (from a synchronous test).
    pub fn metrics(&self) -> Vec<Sample> {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(async {
            parse_prometheus(&request(&client(), self.addr, "GET", "/metrics", None, &[]).await.text())
        })
    }

    /// Stop with SIGTERM and wait; returns stderr.
    pub fn stop(mut self) -> String {
        self.terminate()
    }

    fn terminate(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        err
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A response as a test sees it: status, and every body chunk with the time it arrived.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub sent: std::time::Instant,
    pub headers_at: std::time::Instant,
    pub chunks: Vec<(std::time::Instant, bytes::Bytes)>,
    /// Set when the body ended in an error (e.g. the connection was cut).
    pub body_error: Option<String>,
}

impl Reply {
    /// The whole body as text.
    pub fn text(&self) -> String {
        self.chunks
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// SSE data payloads, in order, with the time of the read that completed each.
    pub fn sse(&self) -> Vec<(std::time::Instant, String)> {
        let mut framer = barrage_core::framing::Framer::new(barrage_core::framing::Framing::Sse);
        let mut frames = barrage_core::framing::Frames::default();
        for (at, b) in &self.chunks {
            framer.push(b, *at, &mut frames).unwrap();
        }
        framer.finish(std::time::Instant::now(), &mut frames);
        frames
            .iter()
            .map(|f| (f.at, String::from_utf8_lossy(f.data).into_owned()))
            .collect()
    }
}

/// A plain HTTP/1.1 client for tests.
pub type TestClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A client with TCP_NODELAY.
pub fn client() -> TestClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// Send a request and read the whole response, timing each chunk.
pub async fn request(
    client: &TestClient,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> Reply {
    use http_body_util::BodyExt;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let sent = std::time::Instant::now();
    let resp = client.request(req).await.expect("send request");
    let headers_at = std::time::Instant::now();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut chunks = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    chunks.push((std::time::Instant::now(), data));
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    Reply {
        status,
        sent,
        headers_at,
        chunks,
        body_error,
    }
}

/// One sample: metric name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Prometheus text exposition parsed strictly: `name{labels} value` lines
/// and `# HELP` / `# TYPE` comments; panics on anything else.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut typed = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_else(|| panic!("comment without a name: {line}"));
            assert!(kind == "HELP" || kind == "TYPE", "unknown comment: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "bad type: {line}"
                );
                assert!(typed.insert(name.to_string()), "type given twice: {line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("unquoted label: {line}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        assert!(
            name.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())),
            "bad metric name: {line}"
        );
        samples.push((name, labels, value));
    }
    samples
}

/// The value of the sample `name` whose labels include all of `labels`.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// A run's `summary.json`.
pub fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json")).expect("valid JSON")
}

/// A run's `records.jsonl`.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .expect("records.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

/// `barrage run` of `yaml` (written as `name` in `dir`) against `sim`; and
/// its results directory.
pub fn config_run(sim: &SimProcess, dir: &Path, name: &str, yaml: &str) -> (std::process::Command, std::path::PathBuf) {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    let out = dir.join(name);
    let mut cmd = barrage();
    cmd.args([
        "run",
        "--quiet",
        "--target",
        &format!("http://{}", sim.addr),
        "--config",
    ])
    .arg(&cfg)
    .arg("--output")
    .arg(&out);
    (cmd, out)
}

/// `GET path` from `addr` over plain HTTP/1.0: status and body. For
/// third-party servers the tests start (Prometheus, the Pushgateway).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status from {addr}{path}: {head}"));
    (status, body.to_string())
}

/// A loopback port nothing listens on (just freed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server from Debian's packages, started by the test on loopback and
/// killed on drop; its output goes to `log`.
pub struct Daemon {
    child: std::process::Child,
    /// host:port it listens on.
    pub addr: String,
    log: PathBuf,
}

impl Daemon {
    /// Start `program` with `args`, and wait (up to 30 s) until `ready`
    /// answers 200 on `addr`.
    pub fn start(program: &str, args: &[String], addr: String, ready: &str, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} (tests/run installs it): {e}"));
        let daemon = Daemon { child, addr, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(&daemon.addr).is_ok() && http_get(&daemon.addr, ready).0 == 200 {
                return daemon;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{program} did not come up on {}: {}",
                daemon.addr,
                daemon.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Start `command` (its output to `log`), and wait (up to 30 s) until
    /// something accepts connections on `addr`: for servers that answer no
    /// HTTP/1 GET (a gRPC server).
    pub fn start_listening(mut command: Command, addr: String, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let mut daemon = Daemon { child, addr, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&daemon.addr).is_err() {
            let exited = daemon.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && std::time::Instant::now() < deadline,
                "{command:?} did not come up on {} ({exited:?}): {}",
                daemon.addr,
                daemon.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        daemon
    }

    /// What it has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Server-side arrival times (seconds, from the simulator's ground truth), sorted.
pub fn arrivals(truth: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(truth).unwrap();
    let mut t: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["arrived_ns"]
                .as_u64()
                .unwrap() as f64
                / 1e9
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// The accounting identities of a stage (or the total) of `summary.json`:
/// every arrival was sent, dropped, missed or not sent, and every request
/// sent ended one way or another.
pub fn assert_accounted(st: &serde_json::Value) {
    let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
    assert_eq!(
        n("scheduled"),
        n("sent") + n("dropped") + n("missed") + n("not_sent"),
        "{st}"
    );
    assert_eq!(n("sent"), n("succeeded") + n("failed") + n("cancelled"), "{st}");
    assert_eq!(st["accounted"], true, "{st}");
}
