//! The live export against Debian's Prometheus and Pushgateway (installed
//! by tests/run), started on loopback ports: Prometheus scrapes a run and
//! takes its remote writes, the Pushgateway holds its last push, and each
//! answers with the counts in `summary.json` and `records.jsonl`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    Daemon, SimProcess, barrage, free_port, http_get, parse_prometheus, records, run, summary, workspace,
};

const RUN_ID: &str = "export-test";

/// Debian's Prometheus, scraping Barrage at `scrape` and the simulator at
/// `sim` (host:port) every second, with its remote-write receiver on.
fn prometheus(dir: &Path, scrape: &str, sim: &str) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\n\
             scrape_configs:\n  - job_name: barrage\n    static_configs: [{{targets: ['{scrape}']}}]\n\
             \x20 - job_name: sim\n    static_configs: [{{targets: ['{sim}']}}]\n"
        ),
    )
    .unwrap();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
        format!("--web.listen-address={addr}"),
        "--web.enable-remote-write-receiver".into(),
    ];
    Daemon::start("prometheus", &args, addr, "/-/ready", dir.join("prometheus.log"))
}

fn pushgateway(dir: &Path) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port());
    let args = [format!("--web.listen-address={addr}")];
    Daemon::start(
        "prometheus-pushgateway",
        &args,
        addr,
        "/-/ready",
        dir.join("pushgateway.log"),
    )
}

/// `query` percent-encoded for a URL's query string.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant PromQL query that yields one number, if it
/// yields any; the server's error is a panic.
fn promql(prometheus: &Daemon, query: &str) -> Option<f64> {
    let (status, body) = http_get(&prometheus.addr, &format!("/api/v1/query?query={}", encode(query)));
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status}: {body}"));
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    let result = answer["data"]["result"].as_array()?.first()?.clone();
    result["value"][1].as_str()?.parse().ok()
}

/// An instant query's result at Unix time `at`.
fn promql_at(prometheus: &Daemon, query: &str, at: f64) -> serde_json::Value {
    let (status, body) = http_get(
        &prometheus.addr,
        &format!("/api/v1/query?query={}&time={at:.3}", encode(query)),
    );
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status}: {body}"));
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    answer["data"]["result"].clone()
}

/// Every query of the dashboard's panels, rows' panels included.
fn panel_queries(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert!(target["refId"].is_string(), "{title}: refId");
            out.push((title.to_string(), target["expr"].as_str().expect("expr").to_string()));
        }
        panel_queries(&panel["panels"], out);
    }
}

/// Poll `query` until it equals `expected` (Prometheus scrapes every
/// second); what it said last otherwise.
fn promql_until(prometheus: &Daemon, query: &str, expected: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = promql(prometheus, query);
        if value == Some(expected) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The metric names `docs/metrics.md` lists under its live-export table.
fn documented_names() -> std::collections::BTreeSet<String> {
    let doc = std::fs::read_to_string(workspace().join("docs/metrics.md")).unwrap();
    let table = doc
        .split("<!-- live-export-names -->")
        .nth(1)
        .expect("docs/metrics.md marks its table of exported names");
    table
        .lines()
        .take_while(|l| !l.contains("<!-- /live-export-names -->"))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn prometheus_scrapes_a_run_takes_its_remote_writes_and_the_pushgateway_holds_its_last_push() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let sim = SimProcess::start(&["--mode", "zero"]);
    let prometheus = prometheus(tmp.path(), &listen, &sim.addr.to_string());
    let gateway = pushgateway(tmp.path());
    // Prometheus hands its first targets to the scraper up to 5 s after it
    // starts; the run is scraped from its start once it has tried one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(&prometheus.addr, "/api/v1/targets")
        .1
        .contains("\"lastError\":\"Get")
    {
        assert!(Instant::now() < deadline, "{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let config = tmp.path().join("run.yaml");
    std::fs::write(
        &config,
        format!(
            "stages:\n  - {{shape: constant, rate: 30, duration_s: 2}}\n  - {{shape: constant, rate: 60, duration_s: 2}}\n\
             export:\n  pushgateway: http://{}\n  remote_write: http://{}/api/v1/write\n  remote_write_interval_s: 1\n",
            gateway.addr, prometheus.addr
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let stderr_file = tmp.path().join("stderr");
    let mut child = barrage()
        .args([
            "run",
            "--quiet",
            "--target",
            &format!("http://{}", sim.addr),
            "--config",
        ])
        .arg(&config)
        .args([
            "--metrics-listen",
            &listen,
            "--metrics-linger",
            "60",
            "--run-id",
            RUN_ID,
        ])
        .arg("--output")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("summary.json").exists() {
        assert!(Instant::now() < deadline, "the run did not end");
        assert!(
            child.try_wait().unwrap().is_none(),
            "barrage exited while it should linger: {}",
            std::fs::read_to_string(&stderr_file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = summary(&out);
    let recorded = records(&out).len() as f64;
    assert!(recorded >= 150.0, "{recorded} records");
    let output_tokens = f(&s["total"]["output_tokens"]);
    let ttft_count = f(&s["total"]["ttft_ms"]["count"]);

    // Lingering, Barrage serves its final figures to the next scrape.
    let scraped = format!("job=\"barrage\",run_id=\"{RUN_ID}\"");
    for (query, expected) in [
        (format!("sum(barrage_requests_total{{{scraped}}})"), recorded),
        (
            format!("sum(barrage_requests_total{{{scraped},stage=\"1\"}})"),
            f(&s["stages"][1]["sent"]),
        ),
        (
            format!("sum(barrage_requests_scheduled_total{{{scraped}}})"),
            f(&s["total"]["scheduled"]),
        ),
        (format!("sum(barrage_output_tokens_total{{{scraped}}})"), output_tokens),
        (
            format!("sum(barrage_time_to_first_token_seconds_count{{{scraped}}})"),
            ttft_count,
        ),
        (format!("sum(barrage_requests_in_flight{{{scraped}}})"), 0.0),
        (format!("max(barrage_stage{{{scraped}}})"), -1.0),
    ] {
        assert_eq!(
            promql_until(&prometheus, &query, expected),
            Some(expected),
            "{query}\n{}",
            prometheus.log()
        );
    }
    // The series carry the run's identity.
    let identity = format!(
        "count(barrage_requests_total{{{scraped},shard=\"0\",codec=\"openai-chat\",target=\"http://{}\"}})",
        sim.addr
    );
    let labelled = promql(&prometheus, &identity);
    assert!(
        labelled.is_some_and(|n| n >= 2.0),
        "{identity}: {:?}",
        http_get(
            &prometheus.addr,
            &format!("/api/v1/series?match[]={}", encode("barrage_stage"))
        )
    );

    // Every panel of the Grafana dashboard has data for the run: each
    // query, as Grafana sends it (its variables filled in), over the run's
    // last seconds gives finite numbers.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("deploy/grafana/barrage-run.json")).unwrap())
            .unwrap();
    let mut queries = Vec::new();
    panel_queries(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 20, "{queries:?}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    let end = f(&meta["started_unix_ms"]) / 1000.0 + f(&s["duration_s"]) - 0.5;
    for (title, expr) in &queries {
        let query = expr.replace("$run_id", RUN_ID).replace("$__rate_interval", "3s");
        let result = promql_at(&prometheus, &query, end);
        let values: Vec<f64> = result
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            !values.is_empty() && values.iter().all(|v| v.is_finite()),
            "{title}: {query} gave {result}"
        );
    }
    let (_, runs) = http_get(
        &prometheus.addr,
        &format!("/api/v1/label/run_id/values?match[]={}", encode("barrage_stage")),
    );
    assert!(runs.contains(RUN_ID), "the dashboard's run list: {runs}");

    // Every family served is in docs/metrics.md, and every one there is served.
    let (status, body) = http_get(&listen, "/metrics");
    assert_eq!(status, 200);
    let served: std::collections::BTreeSet<String> = parse_prometheus(&body)
        .into_iter()
        .map(|(name, _, _)| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|n| n.ends_with("_seconds")))
                .unwrap_or(&name)
                .to_string()
        })
        .collect();
    assert_eq!(served, documented_names());
    let (status, openmetrics) = http_get(&listen, "/nothing");
    assert_eq!(status, 404, "{openmetrics}");

    // Ctrl-C ends the linger; the run's exit code is unchanged.
    let started = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    assert!(
        stderr.contains(&format!("serving the run's metrics at http://{listen}/metrics")),
        "{stderr}"
    );

    // Remote-written series have no job label: only the scrape adds one.
    let written = format!("job=\"\",run_id=\"{RUN_ID}\"");
    for (query, expected) in [
        (format!("sum(barrage_requests_total{{{written}}})"), recorded),
        (format!("sum(barrage_output_tokens_total{{{written}}})"), output_tokens),
        (
            format!("sum(barrage_time_to_first_token_seconds_count{{{written}}})"),
            ttft_count,
        ),
    ] {
        assert_eq!(
            promql(&prometheus, &query),
            Some(expected),
            "{query}\n{}",
            prometheus.log()
        );
    }

    // The Pushgateway holds the last push: the final figures.
    let (status, pushed) = http_get(&gateway.addr, "/metrics");
    assert_eq!(status, 200);
    let samples = parse_prometheus(&pushed);
    let in_group = |labels: &[(String, String)]| {
        [("job", "barrage"), ("run_id", RUN_ID), ("shard", "0")]
            .iter()
            .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
    };
    let pushed_requests: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == "barrage_requests_total" && in_group(l))
        .map(|s| s.2)
        .sum();
    assert_eq!(pushed_requests, recorded, "{pushed}");

    let export = &s["export"];
    assert_eq!(export["listen"], listen.as_str());
    assert!(f(&export["scrapes"]) >= 2.0, "{export}");
    // A push at each of the two stages' ends and at the run's end.
    assert_eq!(
        (f(&export["pushgateway"]["sent"]), f(&export["pushgateway"]["failed"])),
        (3.0, 0.0),
        "{export}"
    );
    assert!(f(&export["remote_write"]["sent"]) >= 4.0, "{export}");
    assert_eq!(f(&export["remote_write"]["failed"]), 0.0, "{export}");
}

#[test]
fn export_targets_that_fail_are_counted_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let closed = format!("127.0.0.1:{}", free_port());
    let out = tmp.path().join("run");
    // The simulator answers remote write with a 404.
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--quiet", "--target", &format!("http://{}", sim.addr)])
        .args(["--rate", "40", "--duration", "2"])
        .args(["--pushgateway", &format!("http://{closed}")])
        .args(["--remote-write", &format!("http://{}/api/v1/write", sim.addr)])
        .arg("--output")
        .arg(&out));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(records(&out).len() as u64, s["total"]["sent"].as_u64().unwrap());
    let export = &s["export"];
    let gateway = &export["pushgateway"];
    assert_eq!((f(&gateway["sent"]), f(&gateway["failed"])), (0.0, 2.0), "{export}");
    assert!(
        gateway["last_error"].as_str().unwrap().contains("Connection refused"),
        "{export}"
    );
    let written = &export["remote_write"];
    assert_eq!(f(&written["sent"]), 0.0, "{export}");
    assert!(
        written["last_error"].as_str().unwrap().starts_with("HTTP 404"),
        "{export}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: 2 of 2 pushes to the Pushgateway at http://{closed}/metrics/job/barrage/run_id/"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("pushes to the remote write at"), "{stderr}");

    // A port already taken, and settings that cannot work, stop the run before it starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (args, expected) in [
        (
            vec!["--metrics-listen", taken.as_str()],
            format!("export.listen {taken}: "),
        ),
        (
            vec!["--metrics-listen", "localhost"],
            "export.listen `localhost` is not an address and port".to_string(),
        ),
        (
            vec!["--pushgateway", "127.0.0.1:9091"],
            "export.pushgateway `127.0.0.1:9091`: give an http:// or https:// URL".to_string(),
        ),
        (
            vec!["--metrics-listen", "127.0.0.1:0", "--metrics-linger=-1"],
            "export.linger_s must be a number of seconds".to_string(),
        ),
    ] {
        let out = tmp.path().join(format!("bad{}", expected.len()));
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--target", &format!("http://{}", sim.addr)])
            .args(["--rate", "5", "--duration", "1"])
            .args(&args)
            .arg("--output")
            .arg(&out));
        assert_ne!(code, 0, "{args:?}: {stdout}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(
            !out.join("records.jsonl").exists(),
            "{args:?}: no load before the export starts"
        );
    }
    // A sweep's points are runs of their own: no live export there.
    let (code, _, stderr) = run(barrage()
        .args(["sweep", "--quiet", "--target", &format!("http://{}", sim.addr)])
        .args(["--metrics-listen", "127.0.0.1:0"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--metrics-listen, --pushgateway, --remote-write is for a single run"),
        "{stderr}"
    );
}

#[test]
fn stage_figures_come_from_promql_against_a_prometheus_that_scrapes_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    // Nothing listens where Barrage would be scraped: only the simulator is.
    let prometheus = prometheus(tmp.path(), &format!("127.0.0.1:{}", free_port()), &sim.addr.to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while promql(&prometheus, "up{job=\"sim\"}") != Some(1.0) {
        assert!(Instant::now() < deadline, "{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let yaml = |prometheus: &str| {
        format!(
            "stages:\n  - {{shape: constant, rate: 20, duration_s: 4}}\n  - {{shape: constant, rate: 60, duration_s: 4}}\n\
             server_metrics:\n  prometheus: http://{prometheus}\n  interval_s: 1\n  queries:\n    \
             replicas: max(barrage_sim:replicas)\n    \
             completed_per_s: sum(rate(vllm:request_success_total[3s]))\n    \
             broken: sum(rate(vllm:request_success_total[3s])\n"
        )
    };
    let (mut cmd, out) = crate::common::config_run(&sim, tmp.path(), "promql", &yaml(&prometheus.addr));
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    let server = &s["server"];
    assert_eq!(server["url"], format!("http://{}", prometheus.addr), "{server}");
    // The broken query is the server's error, named; the others have points.
    assert_eq!(f(&server["errors"]), 1.0, "{server}");
    let error = server["last_error"].as_str().unwrap();
    assert!(error.starts_with("server_metrics.queries.broken `sum(rate("), "{error}");
    assert!(
        error.contains("Prometheus said bad_data") && error.contains("parse error"),
        "{error}"
    );
    for (i, (low, high)) in [(10.0, 30.0), (40.0, 80.0)].into_iter().enumerate() {
        let stage = &s["stages"][i]["server"];
        assert_eq!(f(&stage["replicas"]["mean"]), 1.0, "stage {i}: {stage}");
        let completed = f(&stage["queries"]["completed_per_s"]["max"]);
        assert!(
            (low..=high).contains(&completed),
            "stage {i}: the server completed at most {completed} requests/s: {stage}"
        );
    }
    // A rebuild needs no Prometheus: the points are in server.jsonl.
    let before = s["stages"][1]["server"].clone();
    drop(prometheus);
    let (code, _, stderr) = run(barrage().arg("report").arg(&out).args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&out)["stages"][1]["server"], before);

    // A Prometheus that is not there: counted per query, and the run goes on.
    let closed = format!("127.0.0.1:{}", free_port());
    let (mut cmd, out) = crate::common::config_run(&sim, tmp.path(), "gone", &yaml(&closed));
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(f(&s["server"]["errors"]), 3.0, "{}", s["server"]);
    assert!(
        s["server"]["last_error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{}",
        s["server"]
    );
    assert_eq!(records(&out).len() as u64, s["total"]["sent"].as_u64().unwrap());
}
